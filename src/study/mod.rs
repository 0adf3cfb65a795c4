//! `rossl study`: many runs (arms x sweep points x seeds) at an equal budget, executed locally or
//! as a Slurm job array, aggregated over seeds with intervals and paired differences.
//!
//! A study expands into ordinary runs whose folders are content-addressed as any run's, so
//! finished runs are reused and a killed study resumes where it stopped. The plan (every run's
//! sources and the budget's calibration) is written once into the study folder; each task, local
//! process or Slurm array task, runs one entry of it and leaves a status file.

pub mod budget;
pub mod expand;
mod local;
pub mod plan;
pub mod report;
mod slurm;
pub mod spec;
pub mod task;

use crate::report::stats::RunMetrics;
use crate::report::Row;
use clap::{Args, ValueEnum};
use plan::{digest, Plan, StudyDir};
use rossl_runtime::run_dir::RunDir;
use spec::StudyFile;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where a study's runs are executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// On this machine, `--jobs` processes at a time.
    Local,
    /// As one Slurm job array (`sbatch`, followed with `squeue`).
    Slurm,
}

/// Arguments of `rossl study`.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// The study file.
    #[arg(value_name = "FILE", required_unless_present = "plan")]
    pub file: Option<PathBuf>,
    /// Override a key of every run (TOML value; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// The study folder (default: the study's `out`/`name`); runs go in its `runs/`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where the runs are executed.
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// The budget mode, instead of the study file's `budget.mode`.
    #[arg(long, value_enum, value_name = "MODE")]
    pub budget: Option<spec::BudgetMode>,
    /// Runs at a time with the local executor (default: the study's `local.jobs`).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub jobs: Option<usize>,
    /// Print the plan (local) or the batch script (Slurm) without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Run again only the tasks that failed (or never reported) in the study folder's plan.
    #[arg(long)]
    pub resubmit_failed: bool,
    /// Run one task of a written plan (what the executors start).
    #[arg(long, hide = true, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// The task to run with `--plan`.
    #[arg(long, hide = true, requires = "plan")]
    pub task: Option<usize>,
}

/// The plan of the study: the one in its folder when it was made from the same inputs (a
/// resumed study), else a new one (expanded and calibrated).
fn plan_of(args: &StudyArgs, file: &std::path::Path, dir: &StudyDir) -> anyhow::Result<Plan> {
    let study = load(args, file)?;
    let text = std::fs::read_to_string(file)?;
    let inputs = digest(&[
        &text,
        &args.sets.join("\n"),
        &dir.root.display().to_string(),
        study.budget.mode.as_str(),
    ]);
    if let Some(plan) = dir.read_plan()? {
        if plan.inputs == inputs {
            tracing::info!("resuming the study planned in {}", dir.plan().display());
            return Ok(plan);
        }
    }
    refuse_parallel_time_budget(study.budget.mode, args, study.local.jobs)?;
    if study.budget.mode == spec::BudgetMode::Time && args.executor == Executor::Slurm {
        tracing::warn!(
            "a time budget is calibrated where `rossl study` runs ({}): start it on a node like \
             the compute nodes (inside `salloc`, say), or the step counts will not give equal \
             times there",
            budget::host()
        );
    }
    let root = std::path::absolute(&dir.root)?;
    let mut runs = expand::expand(&study, &args.sets, &runs_folder(args, &study, &root));
    let budget = if args.dry_run {
        budget::BudgetPlan {
            mode: study.budget.mode,
            amount: None,
            calibration: Vec::new(),
        }
    } else {
        budget::apply(&study.budget, &mut runs, &root.join("calibration"))?
    };
    let plan = Plan {
        name: study.study.name.clone(),
        description: study.study.description.clone(),
        study_file: file.to_path_buf(),
        inputs,
        budget,
        runs,
        local: study.local.clone(),
        slurm: study.slurm.clone(),
    };
    if !args.dry_run {
        dir.write_plan(&plan)?;
    }
    Ok(plan)
}

/// The study file with the command line's budget mode, if it gives one.
fn load(args: &StudyArgs, file: &std::path::Path) -> anyhow::Result<StudyFile> {
    let mut study = StudyFile::load(file)?;
    if let Some(mode) = args.budget {
        study.budget.mode = mode;
        study.check(file)?;
    }
    Ok(study)
}

/// Where the study's runs go: `<--out>/runs`, else `<study.out>/<name>/runs`, shared by the
/// budget modes of one study (a reference arm trained as configured is trained once).
fn runs_folder(args: &StudyArgs, study: &StudyFile, root: &std::path::Path) -> PathBuf {
    if args.out.is_some() {
        return root.join("runs");
    }
    let shared = study
        .study
        .out
        .join(rossl_runtime::run_dir::slug(&study.study.name))
        .join("runs");
    std::path::absolute(&shared).unwrap_or(shared)
}

/// The study folder: `--out`, else the study's `out` joined with its name and budget mode
/// (`runs/studies/free-vs-pgd-passes`).
fn study_dir(args: &StudyArgs, file: &std::path::Path) -> anyhow::Result<StudyDir> {
    if let Some(out) = &args.out {
        return Ok(StudyDir { root: out.clone() });
    }
    let study = load(args, file)?;
    let name = format!("{}-{}", study.study.name, study.budget.mode.as_str());
    Ok(StudyDir {
        root: study.study.out.join(rossl_runtime::run_dir::slug(&name)),
    })
}

/// The tasks to run: every task without a successful status (a fresh study: all of them), and
/// every task whose run folder has lost its results since (moved or deleted to be run again).
fn pending(dir: &StudyDir, plan: &Plan) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for run in &plan.runs {
        let finished = dir.read_status(run.index)?.is_some_and(|s| {
            let evaluated = |d: &PathBuf| match &s.results_dir {
                Some(results) => RunDir::open_evaluation(results).is_ok_and(|r| r.is_evaluated()),
                None => RunDir::open(d).is_ok_and(|r| r.is_evaluated()),
            };
            s.ok && s.run_dir.as_ref().is_some_and(evaluated)
        });
        if !finished {
            out.push(run.index);
        }
    }
    Ok(out)
}

/// Prints the runs of a plan (the local dry run).
fn print_plan(plan: &Plan) {
    println!("study {}: {} run(s)", plan.name, plan.runs.len());
    for run in &plan.runs {
        let files: Vec<String> = run.files.iter().map(|f| f.display().to_string()).collect();
        let sets: Vec<String> = run.sets.iter().map(|s| format!("--set '{s}'")).collect();
        println!(
            "  task {} [{}, seed {}]: rossl run {} {}",
            run.index,
            run.group,
            run.seed,
            files.join(" "),
            sets.join(" ")
        );
    }
}

/// Reads the finished runs, writes the report and plots, prints the table.
fn aggregate(dir: &StudyDir, plan: &Plan) -> anyhow::Result<usize> {
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    for run in &plan.runs {
        let status = dir.read_status(run.index)?;
        match status {
            Some(s) if s.ok => {
                // the evaluation folder of a run evaluated before with other settings
                let folder = s
                    .results_dir
                    .clone()
                    .or(s.run_dir.clone())
                    .unwrap_or_default();
                match Row::read(&folder, Some(run.group.clone())) {
                    Ok(row) => runs.push(RunMetrics::of(
                        &row, &run.group, &run.arm, &run.point, run.seed,
                    )),
                    Err(e) => failed.push((run.index, format!("{e:#}"))),
                }
            }
            Some(s) => failed.push((
                run.index,
                format!(
                    "{} (log: {})",
                    s.error.unwrap_or_default(),
                    dir.log(run.index).display()
                ),
            )),
            None => failed.push((
                run.index,
                format!(
                    "no status: the task never finished (log: {})",
                    dir.log(run.index).display()
                ),
            )),
        }
    }
    let sweep_keys: Vec<String> = plan
        .runs
        .iter()
        .flat_map(|r| r.point.iter().map(|(k, _)| k.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let md = report::write_report(dir, plan, &runs, &failed)?;
    let plots = crate::report::plots::write_study_plots(&dir.root, &runs, &sweep_keys)?;
    println!("{md}");
    println!(
        "study written to {} (study.md, study.json, {})",
        dir.root.display(),
        plots.join(", ")
    );
    Ok(failed.len())
}

/// Refuses a time budget with more than one local job: the calibration measures each group's step
/// time with the whole machine for one run, and `--jobs N` would split the cores between N runs,
/// so no run would get the time per step it was calibrated for.
fn refuse_parallel_time_budget(
    mode: spec::BudgetMode,
    args: &StudyArgs,
    study_jobs: usize,
) -> anyhow::Result<()> {
    let jobs = args.jobs.unwrap_or(study_jobs);
    anyhow::ensure!(
        mode != spec::BudgetMode::Time || args.executor != Executor::Local || jobs <= 1,
        "a time budget cannot run {jobs} jobs at once: its calibration timed each arm alone on \
         the whole machine, and {jobs} jobs would split the cores (and the memory bandwidth) \
         between runs. Run it with --jobs 1 (or `local.jobs = 1` in the study file), or use the \
         `passes` budget, which does not depend on the machine"
    );
    Ok(())
}

/// Runs `rossl study`.
pub fn run(args: &StudyArgs) -> anyhow::Result<ExitCode> {
    if let (Some(plan), Some(task)) = (&args.plan, args.task) {
        let root = plan.parent().map(PathBuf::from).unwrap_or_default();
        return task::run_task(&StudyDir { root }, task);
    }
    let file = args
        .file
        .clone()
        .ok_or_else(|| anyhow::anyhow!("name a study file"))?;
    let dir = study_dir(args, &file)?;
    let plan = if args.resubmit_failed {
        dir.read_plan()?.ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no plan to resubmit from: run the study first",
                dir.root.display()
            )
        })?
    } else {
        plan_of(args, &file, &dir)?
    };
    let tasks = pending(&dir, &plan)?;
    if args.dry_run && args.executor == Executor::Local {
        print_plan(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    if tasks.is_empty() {
        tracing::info!("every task of the study has finished");
    }
    refuse_parallel_time_budget(plan.budget.mode, args, plan.local.jobs)?;
    let failed = match args.executor {
        Executor::Local => {
            local::run_local(&dir, &plan, &tasks, args.jobs.unwrap_or(plan.local.jobs))?
        }
        Executor::Slurm => slurm::run_slurm(&dir, &plan, &tasks, args.dry_run)?,
    };
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let unfinished = aggregate(&dir, &plan)?;
    if !failed.is_empty() || unfinished > 0 {
        eprintln!(
            "error: {} task(s) failed; see the logs above, then `rossl study {} --resubmit-failed{}`",
            unfinished.max(failed.len()),
            file.display(),
            if args.executor == Executor::Slurm { " --executor slurm" } else { "" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `--jobs`: a whole number of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 jobs would run nothing: give 1 or more".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{text}` is not a number of jobs: {e}")),
    }
}
