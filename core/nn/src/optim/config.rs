//! The settings of the optimiser and its schedule (the `[optim]` table of a run's configuration).

use serde::{Deserialize, Serialize};

/// The learning-rate schedule's shape.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// Cosine annealing from `lr` to `min_lr`, evaluated per optimiser step.
    Cosine,
    /// A constant learning rate.
    Constant,
}

/// What the cosine schedule's horizon counts.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleHorizon {
    /// Every optimiser step that will be taken (free training: replays x batches x epochs).
    AllSteps,
    /// Batches x epochs, as the reference code: free training then restarts the cosine.
    Batches,
}

/// LARS (layer-wise adaptive rate scaling) around SGD, as the solo-learn wrapper.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LarsConfig {
    /// Whether LARS wraps the optimiser.
    pub enabled: bool,
    /// Trust coefficient eta.
    pub eta: f64,
    /// Clip the adaptive rate at the global one (`min(new_lr / lr, 1)`).
    pub clip: bool,
    /// Exclude biases and normalisation parameters from LARS scaling and weight decay.
    pub exclude_bias_and_norm: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            enabled: true,
            eta: 0.005,
            clip: true,
            exclude_bias_and_norm: true,
        }
    }
}

/// SGD with momentum, Nesterov and weight decay, wrapped in LARS, with a per-step schedule.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay (L2, added to the gradient).
    pub weight_decay: f64,
    /// The LARS wrapper.
    pub lars: LarsConfig,
    /// Schedule shape.
    pub schedule: ScheduleKind,
    /// Linear warm-up steps before the schedule.
    pub warmup_steps: usize,
    /// Final learning rate of the cosine.
    pub min_lr: f64,
    /// What the cosine's horizon counts.
    pub horizon: ScheduleHorizon,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 0.3,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
            lars: LarsConfig::default(),
            schedule: ScheduleKind::Cosine,
            warmup_steps: 0,
            min_lr: 0.0,
            horizon: ScheduleHorizon::AllSteps,
        }
    }
}
