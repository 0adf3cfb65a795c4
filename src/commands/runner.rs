//! One configuration, trained (or its finished run reused, or an interrupted one resumed) and
//! evaluated (or its current results reused): what `rossl run`, `rossl compare` and studies do
//! for each run.

use crate::commands::session::Session;
use crate::terminal;
use rossl_runtime::assembly::Assembly;
use rossl_runtime::checkpoint;
use rossl_runtime::eval::{evaluate_run, Results};
use rossl_runtime::monitor::Monitor;
use rossl_runtime::run_dir::{files, RunDir};
use rossl_runtime::train::{
    restore_encoder, train_observed, StepObserver, TrainOptions, TrainSummary,
};
use std::path::PathBuf;

/// How one configuration is run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue the interrupted run in this folder.
    pub resume: Option<PathBuf>,
    /// Train again even when the run folder holds a finished or interrupted run.
    pub force: bool,
    /// Skip the evaluation.
    pub no_eval: bool,
    /// Stop after this many passes over the data in total.
    pub stop_after: Option<usize>,
    /// Point `<out>/latest` at the run folder.
    pub mark_latest: bool,
    /// Continue an interrupted run found in the run folder instead of refusing (studies).
    pub resume_interrupted: bool,
}

/// What a finished run produced.
pub struct RunOutcome {
    /// The run folder.
    pub run_dir: RunDir,
    /// The training summary.
    pub summary: TrainSummary,
    /// The evaluation, if it ran.
    pub results: Option<Results>,
}

/// The run's results, if they were computed with the current training and evaluation settings.
fn read_results(run_dir: &RunDir, asm: &Assembly) -> anyhow::Result<Option<Results>> {
    let Ok(Some(results)) = run_dir.read_results() else {
        return Ok(None);
    };
    let current = results.config_digest == asm.config.digest()?
        && results.eval_digest == asm.config.eval_digest()?;
    Ok(current.then_some(results))
}

/// The run folder: the one to resume, or the configuration's own (created).
fn run_folder(asm: &Assembly, options: &RunOptions) -> anyhow::Result<RunDir> {
    let run_dir = match &options.resume {
        Some(dir) => RunDir::open(dir)?,
        None => RunDir::for_config(&asm.config)?,
    };
    run_dir.create()?;
    if options.mark_latest {
        run_dir.mark_latest()?;
    }
    Ok(run_dir)
}

/// Trains, resumes, or reuses the finished training in `run_dir`; `true` with the summary when
/// it was reused.
fn train_or_reuse(
    asm: &Assembly,
    run_dir: &RunDir,
    options: &RunOptions,
) -> anyhow::Result<(TrainSummary, bool)> {
    let checkpoint_path = run_dir.file(files::CHECKPOINT);
    let train_options = TrainOptions {
        stop_after_passes: options.stop_after,
    };
    let shown = run_dir.path().display();
    let mut monitor = Monitor::for_run(asm)?;
    let train = |resume: Option<&checkpoint::Checkpoint>, monitor: &mut Option<Monitor>| {
        let observer = monitor.as_mut().map(|m| m as &mut dyn StepObserver);
        train_observed(asm, run_dir, resume, &train_options, observer)
    };
    let resume = options.resume.clone().or_else(|| {
        // a study resumes its interrupted runs by itself
        (options.resume_interrupted && checkpoint_path.exists())
            .then(|| run_dir.path().to_path_buf())
    });
    match (run_dir.read_summary()?, options.force, &resume) {
        (Some(summary), false, _) => {
            let ckpt = checkpoint::load(&checkpoint_path, &asm.device.device)?;
            restore_encoder(asm.encoder.as_ref(), &ckpt.tensors)?;
            eprintln!("{shown}: already trained ({} steps); reusing it", summary.steps);
            Ok((summary, true))
        }
        (None, false, None) if checkpoint_path.exists() => anyhow::bail!(
            "{shown} holds an interrupted run of this configuration: continue it with `--resume {shown}`, or start over with `--force`"
        ),
        (_, _, Some(_)) => {
            let ckpt = checkpoint::load(&checkpoint_path, &asm.device.device)?;
            if ckpt.config != asm.config.to_toml(false)? {
                anyhow::bail!(
                    "the configuration differs from the one {shown} was trained with; resume with the run's own config ({}) and no overrides",
                    run_dir.file(files::CONFIG).display()
                );
            }
            Ok((train(Some(&ckpt), &mut monitor)?, false))
        }
        _ => {
            run_dir.write(files::CONFIG, &asm.config.to_toml(true)?)?;
            Ok((train(None, &mut monitor)?, false))
        }
    }
}

/// Evaluates the run, or reuses its results when training was reused and the evaluation
/// settings are unchanged.
fn evaluate_or_reuse(
    asm: &Assembly,
    run_dir: &RunDir,
    summary: &TrainSummary,
    reused: bool,
) -> anyhow::Result<Results> {
    if reused {
        if let Some(results) = read_results(run_dir, asm)? {
            eprintln!(
                "{}: already evaluated with these settings; reusing results.json",
                run_dir.path().display()
            );
            return Ok(results);
        }
    }
    Ok(evaluate_run(asm, run_dir, summary)?)
}

/// Trains (or reuses) and evaluates the configuration of `session`.
pub fn run_one(session: &Session, options: &RunOptions) -> anyhow::Result<RunOutcome> {
    let asm = &session.assembly;
    let run_dir = run_folder(asm, options)?;
    let (summary, reused) = train_or_reuse(asm, &run_dir, options)?;
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
    terminal::print_summary(&run_dir, &summary);
    let results = if options.no_eval || !asm.config.run.eval.after_training {
        None
    } else {
        let results = evaluate_or_reuse(asm, &run_dir, &summary, reused)?;
        terminal::print_results(&results);
        Some(results)
    };
    Ok(RunOutcome {
        run_dir,
        summary,
        results,
    })
}

/// Restores `asm`'s encoder from the checkpoint in `run_dir`, warning (with `what`, the command's
/// verb) when the run is unfinished.
pub fn restore_trained(asm: &Assembly, run_dir: &RunDir, what: &str) -> anyhow::Result<()> {
    let ckpt = checkpoint::load(&run_dir.file(files::CHECKPOINT), &asm.device.device)?;
    if !ckpt.state.complete {
        eprintln!(
            "warning: {} holds an unfinished run ({} passes); {what} its last checkpoint",
            run_dir.path().display(),
            ckpt.state.epochs_done
        );
    }
    restore_encoder(asm.encoder.as_ref(), &ckpt.tensors)?;
    Ok(())
}
