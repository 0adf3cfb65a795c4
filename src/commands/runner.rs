//! One configuration, trained (or its finished run reused, or an interrupted one resumed) and
//! evaluated (or its current results reused): what `rossl run`, `rossl compare` and studies do
//! for each run.

use crate::commands::session::Session;
use crate::commands::teacher;
use crate::terminal;
use rossl_runtime::assembly::Assembly;
use rossl_runtime::checkpoint;
use rossl_runtime::eval::{ensure_card, evaluate_run_into, Results};
use rossl_runtime::monitor::Monitor;
use rossl_runtime::run_dir::{files, EvaluationPlace, RunDir, TrainingClaim};
use rossl_runtime::train::{
    restore_encoder, train_loaded, StepObserver, TrainOptions, TrainSummary, TrainingData,
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
    /// Wait while another process trains the run folder, then reuse or continue it (a teacher
    /// that two students, or a student and a run of its own, need), instead of refusing.
    pub wait_if_busy: bool,
}

/// What a finished run produced.
pub struct RunOutcome {
    /// The run folder.
    pub run_dir: RunDir,
    /// The training summary.
    pub summary: TrainSummary,
    /// The evaluation, if it ran.
    pub results: Option<Results>,
    /// The folder of that evaluation's `results.json`: the run folder, or one of its
    /// `evaluations/` folders when the run was evaluated before with other settings.
    pub results_dir: Option<PathBuf>,
}

/// Where the evaluation of `run_dir` under `asm`'s settings goes (the run folder when the
/// settings are those of its own `config.toml`, else one of its `evaluations/` folders), and its
/// results if it already finished there (its result card written again if it was lost): nothing
/// replaces a run's own results.
pub fn evaluation_place(asm: &Assembly, run_dir: &RunDir) -> anyhow::Result<EvaluationPlace> {
    // the run's own settings are its config.toml's alone, whatever `ROSSL_` variables say now
    let own = rossl_runtime::plugins::resolve(&rossl_runtime::config::ConfigSources {
        files: vec![run_dir.file(files::CONFIG)],
        sets: Vec::new(),
        use_env: false,
    })?;
    // results an earlier build recorded under these settings are found as well
    let (digest, earlier) = (
        asm.config.eval_digest()?,
        asm.config.eval_digest_of_earlier_builds()?,
    );
    let place = run_dir.evaluation_place(
        &asm.config.digest()?,
        &[digest.as_str(), earlier.as_str()],
        &own.eval_digest()?,
    )?;
    if let Some(results) = &place.finished {
        ensure_card(asm, run_dir, &place.dir, results)?;
    }
    Ok(place)
}

/// The run folder: the one to resume, or the configuration's own (not created here: a fresh
/// run creates it once its data is loaded).
fn run_folder(asm: &Assembly, options: &RunOptions) -> anyhow::Result<RunDir> {
    Ok(match &options.resume {
        Some(dir) => RunDir::open(dir)?,
        None => RunDir::for_config(&asm.config)?,
    })
}

/// Refuses to continue or reuse the run in `run_dir` under a configuration that trains another
/// encoder, naming both digests and the first differing key.
fn check_same_training(
    asm: &Assembly,
    run_dir: &RunDir,
    ckpt: &checkpoint::Checkpoint,
) -> anyhow::Result<()> {
    let what = run_dir.file(files::CHECKPOINT).display().to_string();
    let Some(difference) = asm
        .config
        .training_difference_from_text(&ckpt.config, &what)?
    else {
        return Ok(());
    };
    let recorded = rossl_runtime::plugins::resolve(&rossl_runtime::config::ConfigSources::new(
        vec![run_dir.file(files::CONFIG)],
        vec![],
    ))
    .and_then(|own| own.digest())
    .unwrap_or_else(|_| "unknown".into());
    anyhow::bail!(
        "the configuration differs from the one {} was trained with (digest {recorded}; this configuration's: {}): {}; resume with the run's own config ({}) and no training overrides",
        run_dir.path().display(),
        asm.config.digest()?,
        difference.between("this configuration", "the run"),
        run_dir.file(files::CONFIG).display()
    )
}

/// Claims `run_dir` for training: while another live process trains it, waits
/// (`options.wait_if_busy`) or refuses, naming that process.
fn claim(run_dir: &RunDir, options: &RunOptions) -> anyhow::Result<TrainingClaim> {
    let mut told = false;
    loop {
        if let Some(claim) = run_dir.try_claim_training()? {
            return Ok(claim);
        }
        let shown = run_dir.path().display();
        if !options.wait_if_busy {
            anyhow::bail!(
                "{shown} is being trained by {}: wait for it to finish (this command then reuses it), or remove that file if the process is gone",
                run_dir.claim_holder()
            );
        }
        if !told {
            eprintln!(
                "{shown} is being trained by {}; waiting for it",
                run_dir.claim_holder()
            );
            told = true;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// Trains, resumes, or reuses the finished training in `run_dir`; returns its summary. The
/// folder is claimed for the whole of it ([`claim`]).
fn train_or_reuse(
    asm: &Assembly,
    run_dir: &RunDir,
    options: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    let _claim = claim(run_dir, options)?;
    let checkpoint_path = run_dir.file(files::CHECKPOINT);
    let shown = run_dir.path().display();
    let resume = options.resume.clone().or_else(|| {
        // a study resumes its interrupted runs by itself
        (options.resume_interrupted && checkpoint_path.exists())
            .then(|| run_dir.path().to_path_buf())
    });
    let ckpt = match &resume {
        Some(_) => {
            let ckpt = checkpoint::load(&checkpoint_path, &asm.device.device)?;
            check_same_training(asm, run_dir, &ckpt)?;
            Some(ckpt)
        }
        None => None,
    };
    match (run_dir.read_summary()?, options.force, ckpt) {
        (Some(_), true, _) => anyhow::bail!(
            "{shown} holds a finished run, which is never trained over: `--force` only restarts an interrupted run; to train this configuration again, move the folder away or choose another `--out`"
        ),
        (Some(summary), false, _) => {
            let ckpt = checkpoint::load(&checkpoint_path, &asm.device.device)?;
            check_same_training(asm, run_dir, &ckpt)?;
            restore_encoder(asm.encoder.as_ref(), &ckpt.tensors)?;
            if options.mark_latest {
                run_dir.mark_latest()?;
            }
            eprintln!("{shown}: already trained ({} steps); reusing it", summary.steps);
            Ok(summary)
        }
        (None, false, None) if checkpoint_path.exists() => anyhow::bail!(
            "{shown} holds an interrupted run of this configuration: continue it with `--resume {shown}`, or start over with `--force`"
        ),
        (None, _, Some(ckpt)) => {
            if options.mark_latest {
                run_dir.mark_latest()?;
            }
            let (data, monitor) = (TrainingData::load(asm)?, Monitor::for_run(asm)?);
            let summary = train_monitored(asm, data, monitor, run_dir, Some(&ckpt), options)?;
            Ok(summary)
        }
        (None, _, None) => train_fresh(asm, run_dir, options),
    }
}

/// Trains from scratch: loads the data (and the monitor's) first, then creates the run folder
/// (and moves `latest`), so that a run that cannot start leaves nothing behind.
fn train_fresh(
    asm: &Assembly,
    run_dir: &RunDir,
    options: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    let data = TrainingData::load(asm)?;
    let monitor = Monitor::for_run(asm)?;
    let fresh = run_dir.create_fresh(options.mark_latest)?;
    run_dir.write(files::CONFIG, &asm.config.to_toml(true)?)?;
    let summary = train_monitored(asm, data, monitor, run_dir, None, options)?;
    fresh.keep();
    Ok(summary)
}

/// Trains on loaded `data`, from `resume` when given, observed by the online `monitor` when the
/// configuration asks for one.
fn train_monitored(
    asm: &Assembly,
    data: TrainingData,
    mut monitor: Option<Monitor>,
    run_dir: &RunDir,
    resume: Option<&checkpoint::Checkpoint>,
    options: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    let observer = monitor.as_mut().map(|m| m as &mut dyn StepObserver);
    let train_options = TrainOptions {
        stop_after_passes: options.stop_after,
    };
    Ok(train_loaded(
        asm,
        data,
        run_dir,
        resume,
        &train_options,
        observer,
    )?)
}

/// Evaluates the run, or reuses its results when it was evaluated with these settings; returns
/// them with the folder they are in ([`evaluation_place`]).
fn evaluate_or_reuse(
    asm: &Assembly,
    run_dir: &RunDir,
    summary: &TrainSummary,
) -> anyhow::Result<(Results, RunDir)> {
    let place = evaluation_place(asm, run_dir)?;
    if let Some(results) = place.finished {
        eprintln!(
            "{}: already evaluated with these settings; reusing {}",
            run_dir.path().display(),
            place.dir.file(files::RESULTS).display()
        );
        return Ok((results, place.dir));
    }
    if place.is_additional() {
        eprintln!(
            "{}: these evaluation settings are not those of its {} (or its own results hold others); this evaluation goes to {}, beside its own, which are kept as they are",
            run_dir.path().display(),
            files::CONFIG,
            place.dir.path().display()
        );
    }
    Ok((
        evaluate_run_into(asm, run_dir, &place.dir, summary)?,
        place.dir,
    ))
}

/// Trains (or reuses) and evaluates the configuration of `session`; a teacher named as a
/// configuration (`train.target.teacher_config`) is trained (or reused) first.
pub fn run_one(session: &Session, options: &RunOptions) -> anyhow::Result<RunOutcome> {
    if let Some(teacher) = teacher::teacher_session(session)? {
        // trained (or reused, or continued) without evaluation; a student waits while another
        // process trains the same teacher
        let teacher_options = RunOptions {
            no_eval: true,
            resume_interrupted: true,
            wait_if_busy: true,
            ..RunOptions::default()
        };
        let trained = run_one(&teacher, &teacher_options)?;
        let student = teacher::student_of(session, trained.run_dir.path())?;
        return run_one(&student, options);
    }
    let asm = &session.assembly;
    let run_dir = run_folder(asm, options)?;
    let summary = train_or_reuse(asm, &run_dir, options)?;
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
            results_dir: None,
        });
    }
    terminal::print_summary(&run_dir, &summary);
    let no_evaluators = asm.config.run.eval.evaluators.is_empty();
    if no_evaluators && !options.no_eval && asm.config.run.eval.after_training {
        eprintln!(
            "not evaluating: `eval.evaluators` is empty (in {}); name at least one (`rossl plugins` lists them)",
            asm.config.source_of("eval.evaluators")
        );
    }
    let results = if options.no_eval || !asm.config.run.eval.after_training || no_evaluators {
        None
    } else {
        let (results, dir) = evaluate_or_reuse(asm, &run_dir, &summary)?;
        terminal::print_results(&results);
        Some((results, dir.path().to_path_buf()))
    };
    let (results, results_dir) = results.unzip();
    Ok(RunOutcome {
        run_dir,
        summary,
        results,
        results_dir,
    })
}

/// Restores `asm`'s encoder from the checkpoint in `run_dir`, warning (with `what`, the command's
/// verb) when the run is unfinished.
pub fn restore_trained(asm: &Assembly, run_dir: &RunDir, what: &str) -> anyhow::Result<()> {
    let ckpt = checkpoint::load(&run_dir.file(files::CHECKPOINT), &asm.device.device)?;
    let recorded = run_dir.file(files::CHECKPOINT).display().to_string();
    if let Some(difference) = asm
        .config
        .training_difference_from_text(&ckpt.config, &recorded)?
    {
        anyhow::bail!(
            "{} does not match the configuration embedded in {recorded}, the one the run was trained with: {}. The folder was edited after training; restore its `{}` (the checkpoint's configuration is the record), or train the edited configuration as a new run",
            run_dir.file(files::CONFIG).display(),
            difference.between("the folder's config", "the checkpoint"),
            files::CONFIG
        );
    }
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
