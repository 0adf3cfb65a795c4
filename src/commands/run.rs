//! `rossl run`: train, evaluate, and (with `[compare]`) put the run next to its baselines.

use crate::cli::ConfigArgs;
use crate::commands::session::{prepare, Session};
use crate::report;
use clap::Args;
use rossl_runtime::checkpoint;
use rossl_runtime::eval::evaluate_run;
use rossl_runtime::run_dir::{files, RunDir};
use rossl_runtime::train::{train_with, TrainOptions, TrainSummary};
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
    /// Point `<out>/latest` at this run's folder (not for the baselines of `[compare]`).
    #[arg(skip = true)]
    pub mark_latest: bool,
}

/// What a finished `run` produced.
pub struct RunOutcome {
    /// The run folder.
    pub run_dir: RunDir,
    /// The training summary.
    pub summary: TrainSummary,
    /// The evaluation, if it ran.
    pub results: Option<rossl_runtime::eval::Results>,
}

fn read_summary(run_dir: &RunDir) -> anyhow::Result<Option<TrainSummary>> {
    Ok(match run_dir.read(files::SUMMARY)? {
        Some(text) => Some(serde_json::from_str(&text)?),
        None => None,
    })
}

/// The run's results, if they were computed with the current training and evaluation settings.
fn read_results(
    run_dir: &RunDir,
    asm: &rossl_runtime::assembly::Assembly,
) -> anyhow::Result<Option<rossl_runtime::eval::Results>> {
    let Some(text) = run_dir.read(files::RESULTS)? else {
        return Ok(None);
    };
    let Ok(results) = serde_json::from_str::<rossl_runtime::eval::Results>(&text) else {
        return Ok(None);
    };
    let current = results.config_digest == asm.config.digest()?
        && results.eval_digest == asm.config.eval_digest()?;
    Ok(current.then_some(results))
}

/// Trains (or reuses) and evaluates one configuration.
pub fn run_one(session: &Session, args: &RunArgs) -> anyhow::Result<RunOutcome> {
    let asm = &session.assembly;
    let run_dir = match &args.resume {
        Some(dir) => RunDir::open(dir)?,
        None => RunDir::for_config(&asm.config)?,
    };
    run_dir.create()?;
    if args.mark_latest {
        run_dir.mark_latest()?;
    }
    let checkpoint_path = run_dir.file(files::CHECKPOINT);
    let finished = read_summary(&run_dir)?;
    let options = TrainOptions {
        stop_after_passes: args.stop_after,
    };
    let reused = finished.is_some() && !args.force;
    let summary = match (finished, args.force, &args.resume) {
        (Some(summary), false, _) => {
            let ckpt = checkpoint::load(&checkpoint_path, &asm.device.device)?;
            rossl_runtime::train::restore_encoder(asm.encoder.as_ref(), &ckpt.tensors)?;
            eprintln!(
                "{}: already trained ({} steps); reusing it",
                run_dir.path().display(),
                summary.steps
            );
            summary
        }
        (None, false, None) if checkpoint_path.exists() => {
            anyhow::bail!(
                "{} holds an interrupted run of this configuration: continue it with `--resume {}`, or start over with `--force`",
                run_dir.path().display(),
                run_dir.path().display()
            );
        }
        (_, _, Some(_)) => {
            let ckpt = checkpoint::load(&checkpoint_path, &asm.device.device)?;
            let ours = asm.config.to_toml(false)?;
            if ckpt.config != ours {
                anyhow::bail!(
                    "the configuration differs from the one {} was trained with; resume with the run's own config ({}) and no overrides",
                    run_dir.path().display(),
                    run_dir.file(files::CONFIG).display()
                );
            }
            train_with(asm, &run_dir, Some(&ckpt), &options)?
        }
        _ => {
            run_dir.write(files::CONFIG, &asm.config.to_toml(true)?)?;
            train_with(asm, &run_dir, None, &options)?
        }
    };
    if !summary.complete {
        println!(
            "stopped after {} of {} passes; continue with: rossl run --resume {}",
            summary.epochs_done(),
            summary.plan.passes,
            run_dir.path().display()
        );
        return Ok(RunOutcome {
            run_dir,
            summary,
            results: None,
        });
    }
    report::print_summary(&run_dir, &summary);
    let results = if args.no_eval || !asm.config.run.eval.after_training {
        None
    } else {
        let previous = if reused {
            read_results(&run_dir, asm)?
        } else {
            None
        };
        let results = match previous {
            Some(results) => {
                eprintln!(
                    "{}: already evaluated with these settings; reusing results.json",
                    run_dir.path().display()
                );
                results
            }
            None => evaluate_run(asm, &run_dir, &summary)?,
        };
        report::print_results(&results);
        Some(results)
    };
    Ok(RunOutcome {
        run_dir,
        summary,
        results,
    })
}

/// Runs `rossl run`.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let session = prepare(&args.config, args.out.as_deref(), args.resume.as_deref())?;
    let outcome = run_one(&session, args)?;
    let strict = args.strict || session.assembly.config.run.eval.strict;
    let failed = outcome
        .results
        .as_ref()
        .map(report::failed_checks)
        .unwrap_or(0);
    if let Some(code) = crate::commands::compare::run_baselines(&session, args, &outcome)? {
        return Ok(code);
    }
    if strict && failed > 0 {
        eprintln!("error: {failed} sanity check(s) failed (strict mode)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
