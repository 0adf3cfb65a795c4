//! A light profiler for the benchmark: wall time and process CPU time accumulated per named phase,
//! off unless enabled. CPU time over wall time shows how many cores a phase kept busy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<&'static str, PhaseTotal>> = Mutex::new(BTreeMap::new());

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

/// Clears the totals.
pub fn reset() {
    if let Ok(mut t) = TOTALS.lock() {
        t.clear();
    }
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
        }
    }
}

/// Times the rest of the enclosing block as `phase`.
pub fn scope(phase: &'static str) -> Scope {
    Scope {
        phase,
        start: ENABLED
            .load(Ordering::Relaxed)
            .then(|| (Instant::now(), process_cpu_seconds())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_accumulates_wall_and_cpu_time_only_when_enabled() {
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
