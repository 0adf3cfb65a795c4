//! `rossl run`: train, evaluate, and (with `[compare]`) put the run next to its baselines.

use crate::commands::args::ConfigArgs;
use crate::commands::runner::{run_one, RunOptions};
use crate::commands::session::prepare;
use crate::terminal;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rossl run`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Config files and overrides.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Root folder of the run folders (same as --set out=DIR).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the interrupted run in RUN_DIR (same final weights as an uninterrupted run).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Train again even when the run folder holds a finished or interrupted run.
    #[arg(long)]
    pub force: bool,
    /// Skip the evaluation at the end.
    #[arg(long)]
    pub no_eval: bool,
    /// Make a failed sanity check an error exit.
    #[arg(long)]
    pub strict: bool,
    /// Stop after this many passes over the data in total (continue later with --resume).
    #[arg(long, value_name = "PASSES")]
    pub stop_after: Option<usize>,
    /// With `[compare]` baselines: put rows evaluated with different settings in one table,
    /// marked, instead of refusing.
    #[arg(long)]
    pub allow_mixed: bool,
}

impl RunArgs {
    /// How the configuration is run.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            resume: self.resume.clone(),
            force: self.force,
            no_eval: self.no_eval,
            stop_after: self.stop_after,
            mark_latest: true,
            resume_interrupted: false,
            wait_if_busy: false,
        }
    }
}

/// Runs `rossl run`.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let session = prepare(&args.config, args.out.as_deref(), args.resume.as_deref())?;
    let outcome = run_one(&session, &args.options())?;
    let strict = args.strict || session.assembly.config.run.eval.strict;
    let failed = outcome
        .results
        .as_ref()
        .map(terminal::failed_checks)
        .unwrap_or(0);
    // a resumed run finishes itself; its baselines come with the next plain `rossl run`
    let baselines = if args.resume.is_none() {
        crate::commands::compare::run_baselines(&session, args.strict, args.allow_mixed, &outcome)?
    } else {
        None
    };
    if let Some(code) = baselines {
        return Ok(code);
    }
    if strict && failed > 0 {
        eprintln!("error: {failed} sanity check(s) failed (strict mode)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
