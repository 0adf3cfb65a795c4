//! `rossl compare` and the baselines of `rossl run` (filled in by the comparison issue).

use crate::commands::run::{RunArgs, RunOutcome};
use crate::commands::session::Session;
use std::process::ExitCode;

/// Runs the `[compare]` baselines of a run's configuration, if it has any.
pub fn run_baselines(
    _session: &Session,
    _args: &RunArgs,
    _outcome: &RunOutcome,
) -> anyhow::Result<Option<ExitCode>> {
    Ok(None)
}
