//! How long a run trains: its plan (the plan's type, with the summary's, lives in
//! [`crate::run_dir`], which owns every file of a run folder).

use crate::config::{Regime, RunConfig, ScheduleHorizon};
use crate::run_dir::TrainPlan;

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
