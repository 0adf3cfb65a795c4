//! What a training call takes besides the run's configuration: options, and an observer called
//! after every step (the online monitor).

use crate::run_dir::MonitorRecord;
use crate::Result;

/// Something that watches training (the online monitor): called after every optimiser step with
/// the encoder as it is then. The report it returns goes into `metrics.jsonl`; the time it takes is
/// kept out of the training wall time.
pub trait StepObserver {
    /// Called after optimiser step `step` (counted from 1).
    fn after_step(
        &mut self,
        encoder: &dyn rossl_api::components::Encoder,
        step: usize,
    ) -> Result<Option<MonitorRecord>>;
}

/// Options of a training call that are not part of the run's configuration.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Stop (as if interrupted) after this many passes over the data in total; the run can be
    /// continued with `--resume`.
    pub stop_after_passes: Option<usize>,
}
