//! The paper's optimiser: SGD with momentum, Nesterov and weight decay, wrapped in LARS, with a
//! learning-rate schedule evaluated at every optimiser step.

mod adam;
mod config;
mod inplace;
mod schedule;
mod sgd_lars;

pub use adam::Adam;
pub use config::{LarsConfig, OptimConfig, ScheduleHorizon, ScheduleKind};
pub use schedule::LrSchedule;
pub use sgd_lars::{SgdLars, StepReport};
