//! How long a run trains (its plan) and what training did (its summary).

use crate::config::{Regime, RunConfig, ScheduleHorizon};
use serde::{Deserialize, Serialize};

/// How long a run trains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainPlan {
    /// Passes over the data: N for standard and PGD, ceil(N / m) for free training (with
    /// `train.steps`, as many as that many steps need; the last may stop part-way).
    pub passes: usize,
    /// Batches per pass.
    pub batches_per_pass: usize,
    /// Optimiser steps per batch (m for free training, else 1).
    pub steps_per_batch: usize,
    /// Every optimiser step the run takes.
    pub total_steps: usize,
    /// The learning-rate schedule's horizon.
    pub horizon: usize,
}

/// The plan of `config` with `batches_per_pass` batches per pass over the data.
pub fn plan(config: &RunConfig, batches_per_pass: usize) -> TrainPlan {
    let train = &config.train;
    let (passes, steps_per_batch) = match train.regime {
        Regime::Free => (
            train.epochs.div_ceil(train.free.replays),
            train.free.replays,
        ),
        _ => (train.epochs, 1),
    };
    let per_pass = batches_per_pass * steps_per_batch;
    let (passes, total_steps) = if train.steps > 0 && per_pass > 0 {
        // an exact step budget: the last pass stops part-way
        (train.steps.div_ceil(per_pass), train.steps)
    } else {
        (passes, passes * per_pass)
    };
    let horizon = match config.optim.horizon {
        ScheduleHorizon::AllSteps => total_steps,
        ScheduleHorizon::Batches => total_steps.div_ceil(steps_per_batch.max(1)),
    };
    TrainPlan {
        passes,
        batches_per_pass,
        steps_per_batch,
        total_steps,
        horizon,
    }
}

/// What training did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainSummary {
    /// The method's name.
    pub method: String,
    /// The regime.
    pub regime: Regime,
    /// The plan that was followed.
    pub plan: TrainPlan,
    /// The budget N in standard epochs (`train.epochs`).
    pub epochs_budget: usize,
    /// Passes over the data made.
    pub epochs: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Encoder forward passes.
    pub forward_passes: u64,
    /// Encoder backward passes.
    pub backward_passes: u64,
    /// Wall-clock seconds of training: from the first batch request to the last optimiser step
    /// (checkpoints included, evaluation not), summed over resumed sessions.
    pub seconds: f64,
    /// The part of `seconds` spent waiting for the loader's batches.
    #[serde(default)]
    pub loader_wait_seconds: f64,
    /// Seconds the online monitor took, kept out of `seconds` (0 when it is off).
    #[serde(default)]
    pub monitor_seconds: f64,
    /// The objective at the last step.
    pub final_loss: Option<f64>,
    /// Views processed per second, over the whole run.
    pub images_per_s: f64,
    /// The device.
    pub device: String,
    /// `false` when training stopped early as asked (the run can be resumed).
    #[serde(default = "yes")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

impl TrainSummary {
    /// Passes over the data completed (fewer than planned when stopped early).
    pub fn epochs_done(&self) -> usize {
        if self.plan.batches_per_pass == 0 || self.plan.steps_per_batch == 0 {
            return self.epochs;
        }
        self.steps / (self.plan.batches_per_pass * self.plan.steps_per_batch)
    }
}
