//! `summary.json`: what training did (its plan and its cost), written when training ends.

use super::{files, RunDir};
use crate::config::Regime;
use crate::Result;
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

impl RunDir {
    /// The training summary, if training has ended (`None` when there is no `summary.json`);
    /// an error naming the file and the field when it does not parse.
    pub fn read_summary(&self) -> Result<Option<TrainSummary>> {
        self.read_json(files::SUMMARY)
    }

    /// Writes the training summary (atomically).
    pub fn write_summary(&self, summary: &TrainSummary) -> Result<()> {
        self.write_json(files::SUMMARY, summary)
    }
}
