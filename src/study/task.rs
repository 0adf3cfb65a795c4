//! One task of a study: the run at one index of the plan, trained (or reused, or resumed) and
//! evaluated, its status written for the executor that started it.

use super::plan::{StudyDir, TaskStatus};
use crate::commands::runner::{run_one, RunOptions};
use crate::commands::session::build;
use rossl_runtime::config::ConfigSources;
use rossl_runtime::run_dir::RunDir;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The file beside a run's results that records how a study's budget fixed its length.
pub const CALIBRATION_FILE: &str = "calibration.json";

/// Runs task `index` of the plan in `dir`.
pub fn run_task(dir: &StudyDir, index: usize) -> anyhow::Result<ExitCode> {
    let plan = dir
        .read_plan()?
        .ok_or_else(|| anyhow::anyhow!("no study plan at {}", dir.plan().display()))?;
    let run = plan.runs.get(index).ok_or_else(|| {
        anyhow::anyhow!(
            "the plan {} has {} tasks; there is no task {index}",
            dir.plan().display(),
            plan.runs.len()
        )
    })?;
    dir.clear_status(index);
    let started = Instant::now();
    let mut run_dir: Option<PathBuf> = None;
    let mut results_dir: Option<PathBuf> = None;
    let result = (|| -> anyhow::Result<()> {
        let session = build(ConfigSources::new(run.files.clone(), run.sets.clone()))?;
        // a student of a teacher named as a configuration gets its folder once the teacher is
        // trained (its configuration then names the teacher's folder)
        if crate::commands::teacher::teacher_sources(&session)?.is_none() {
            let folder = RunDir::for_config(&session.assembly.config)?;
            run_dir = Some(folder.path().to_path_buf());
        }
        let options = RunOptions {
            resume_interrupted: true,
            ..RunOptions::default()
        };
        let outcome = run_one(&session, &options)?;
        run_dir = Some(outcome.run_dir.path().to_path_buf());
        results_dir = outcome
            .results_dir
            .clone()
            .filter(|d| d.as_path() != outcome.run_dir.path());
        if let Some(c) = plan
            .budget
            .calibration
            .iter()
            .find(|c| c.group == run.group)
        {
            let record = serde_json::json!({ "budget": plan.budget.mode, "amount": plan.budget.amount, "calibration": c });
            outcome
                .run_dir
                .write(CALIBRATION_FILE, &serde_json::to_string_pretty(&record)?)?;
        }
        if outcome.results.is_none() {
            anyhow::bail!("the run was not evaluated (`eval.after_training = false`?)");
        }
        Ok(())
    })();
    let status = TaskStatus {
        index,
        ok: result.is_ok(),
        run_dir,
        results_dir,
        error: result.as_ref().err().map(|e| format!("{e:#}")),
        seconds: started.elapsed().as_secs_f64(),
    };
    dir.write_status(&status)?;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.context(format!(
            "study task {index} ({}, seed {})",
            run.group, run.seed
        ))),
    }
}
