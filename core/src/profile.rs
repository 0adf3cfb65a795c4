//! A light profiler for the benchmark: time accumulated per named phase, off unless enabled.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<&'static str, (f64, u64)>> = Mutex::new(BTreeMap::new());

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

/// (phase, seconds, calls) accumulated so far, by phase name.
pub fn totals() -> Vec<(&'static str, f64, u64)> {
    TOTALS
        .lock()
        .map(|t| t.iter().map(|(k, (s, n))| (*k, *s, *n)).collect())
        .unwrap_or_default()
}

/// Adds `seconds` to `phase`.
pub fn add(phase: &'static str, seconds: f64) {
    if let Ok(mut t) = TOTALS.lock() {
        let e = t.entry(phase).or_insert((0.0, 0));
        e.0 += seconds;
        e.1 += 1;
    }
}

/// A guard that adds its lifetime to `phase` when profiling is on.
pub struct Scope {
    phase: &'static str,
    start: Option<Instant>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            add(self.phase, start.elapsed().as_secs_f64());
        }
    }
}

/// Times the rest of the enclosing block as `phase`.
pub fn scope(phase: &'static str) -> Scope {
    Scope {
        phase,
        start: ENABLED.load(Ordering::Relaxed).then(Instant::now),
    }
}
