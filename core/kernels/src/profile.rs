//! A light profiler for the benchmark: wall time and process CPU time accumulated per named phase,
//! off unless enabled. CPU time over wall time shows how many cores a phase kept busy. It also
//! records the idle gaps between profiled phases (the time no profiled phase ran on any thread),
//! during which the pool's workers may park.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<&'static str, PhaseTotal>> = Mutex::new(BTreeMap::new());
/// Profiled phases running now, on any thread.
static DEPTH: AtomicUsize = AtomicUsize::new(0);
/// When the last phase ended with no other running, and the gaps (seconds) between such an end
/// and the next phase's start.
static GAPS: Mutex<(Option<Instant>, Vec<f64>)> = Mutex::new((None, Vec::new()));

/// What one phase accumulated.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTotal {
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// CPU seconds of the whole process (every thread) over the same intervals.
    pub cpu_s: f64,
    /// Number of timed intervals.
    pub calls: u64,
}

/// Turns accumulation on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Clears the totals and the gaps.
pub fn reset() {
    if let Ok(mut t) = TOTALS.lock() {
        t.clear();
    }
    if let Ok(mut g) = GAPS.lock() {
        *g = (None, Vec::new());
    }
}

/// The idle gaps recorded since the last [`reset`], in seconds: from the end of a profiled phase
/// that left none running to the start of the next one. A step with `n` outermost phases has
/// `n - 1` of them.
pub fn gaps() -> Vec<f64> {
    GAPS.lock().map(|g| g.1.clone()).unwrap_or_default()
}

/// The totals accumulated so far, by phase name.
pub fn totals() -> Vec<(&'static str, PhaseTotal)> {
    TOTALS
        .lock()
        .map(|t| t.iter().map(|(k, v)| (*k, *v)).collect())
        .unwrap_or_default()
}

/// Adds one interval of `wall_s` wall seconds and `cpu_s` process CPU seconds to `phase`.
pub fn add(phase: &'static str, wall_s: f64, cpu_s: f64) {
    if let Ok(mut t) = TOTALS.lock() {
        let e = t.entry(phase).or_default();
        e.wall_s += wall_s;
        e.cpu_s += cpu_s;
        e.calls += 1;
    }
}

/// CPU seconds (user + system, every thread) this process has used so far.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: clock_gettime writes into the zeroed struct it is given.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
        ts
    };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// A guard that adds its lifetime to `phase` when profiling is on.
pub struct Scope {
    phase: &'static str,
    start: Option<(Instant, f64)>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some((start, cpu)) = self.start {
            add(
                self.phase,
                start.elapsed().as_secs_f64(),
                process_cpu_seconds() - cpu,
            );
            if DEPTH.fetch_sub(1, Ordering::AcqRel) == 1 {
                if let Ok(mut g) = GAPS.lock() {
                    g.0 = Some(Instant::now());
                }
            }
        }
    }
}

/// Times the rest of the enclosing block as `phase`.
pub fn scope(phase: &'static str) -> Scope {
    let start = ENABLED.load(Ordering::Relaxed).then(|| {
        let now = Instant::now();
        if DEPTH.fetch_add(1, Ordering::AcqRel) == 0 {
            if let Ok(mut g) = GAPS.lock() {
                if let Some(end) = g.0.take() {
                    g.1.push(now.duration_since(end).as_secs_f64());
                }
            }
        }
        (now, process_cpu_seconds())
    });
    Scope { phase, start }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profiler is global: its tests run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn spin(ms: u64) {
        let t = Instant::now();
        while t.elapsed().as_millis() < u128::from(ms) {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn gaps_are_the_idle_time_between_outermost_phases() {
        let _serial = SERIAL.lock();
        reset();
        enable(true);
        {
            let _a = scope("test.a");
            spin(1);
        }
        spin(3);
        {
            let _b = scope("test.b");
            spin(1);
            // a phase inside another leaves no gap
            drop(scope("test.inner"));
            spin(2);
        }
        spin(1);
        drop(scope("test.c"));
        enable(false);
        let gaps = gaps();
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(
            gaps[0] >= 0.003 && gaps[1] >= 0.001 && gaps[1] < gaps[0] + 0.05,
            "{gaps:?}"
        );
        reset();
        assert!(super::gaps().is_empty());
    }

    #[test]
    fn a_scope_accumulates_wall_and_cpu_time_only_when_enabled() {
        let _serial = SERIAL.lock();
        reset();
        {
            let _s = scope("test.disabled");
        }
        enable(true);
        {
            let _s = scope("test.busy");
            // Spin so that both clocks advance measurably.
            let t = Instant::now();
            let mut x = 0u64;
            while t.elapsed().as_millis() < 20 {
                x = x.wrapping_add(1);
            }
            std::hint::black_box(x);
        }
        enable(false);
        let totals = totals();
        assert!(!totals.iter().any(|(k, _)| *k == "test.disabled"));
        let busy = totals
            .iter()
            .find(|(k, _)| *k == "test.busy")
            .map(|(_, v)| *v)
            .expect("the enabled scope was recorded");
        assert_eq!(busy.calls, 1);
        assert!(busy.wall_s >= 0.02, "wall {}", busy.wall_s);
        // A spinning thread uses CPU time; other tests' threads may add to the process clock.
        assert!(busy.cpu_s > 0.005, "cpu {}", busy.cpu_s);
    }
}
