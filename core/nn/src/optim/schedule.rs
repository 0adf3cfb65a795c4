//! Learning-rate schedules evaluated per optimiser step.

use crate::optim::{OptimConfig, ScheduleKind};

/// The learning rate at every optimiser step.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSchedule {
    base: f64,
    min: f64,
    kind: ScheduleKind,
    warmup: usize,
    horizon: usize,
}

impl LrSchedule {
    /// A schedule over `horizon` optimiser steps. The cosine is evaluated in closed form
    /// (PyTorch's `CosineAnnealingLR`), so steps beyond the horizon follow the cosine back up, as
    /// PyTorch's does: that is the reference code's restart when its horizon is too short.
    pub fn new(config: &OptimConfig, horizon: usize) -> Self {
        LrSchedule {
            base: config.lr,
            min: config.min_lr,
            kind: config.schedule,
            warmup: config.warmup_steps,
            horizon: horizon.max(1),
        }
    }

    /// The horizon in steps.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// The learning rate of optimiser step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.base * (step + 1) as f64 / self.warmup as f64;
        }
        match self.kind {
            ScheduleKind::Constant => self.base,
            ScheduleKind::Cosine => {
                let t = (step - self.warmup) as f64;
                let span = self.horizon.saturating_sub(self.warmup).max(1) as f64;
                self.min
                    + (self.base - self.min) * (1.0 + (std::f64::consts::PI * t / span).cos()) / 2.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_by_hand_and_the_reference_restart() {
        let config = OptimConfig::default(); // lr 0.3, min 0, cosine, no warm-up
        let s = LrSchedule::new(&config, 100);
        assert!((s.lr(0) - 0.3).abs() < 1e-12);
        assert!((s.lr(50) - 0.15).abs() < 1e-12);
        assert!(s.lr(99) > 0.0 && s.lr(99) < 1e-3);
        // 3 replays stepped against a horizon of 100 batches: back at 0.3 at step 200, as PyTorch
        assert!(s.lr(100).abs() < 1e-12);
        assert!((s.lr(150) - 0.15).abs() < 1e-12);
        assert!((s.lr(200) - 0.3).abs() < 1e-12);
        assert!(s.lr(300).abs() < 1e-12);
        let warm = LrSchedule::new(
            &OptimConfig {
                warmup_steps: 10,
                ..OptimConfig::default()
            },
            110,
        );
        assert!((warm.lr(4) - 0.15).abs() < 1e-12);
        assert!((warm.lr(10) - 0.3).abs() < 1e-12);
    }
}
