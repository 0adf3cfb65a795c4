//! The study's plan (`plan.json` in its folder): every run with its final sources and the
//! budget's calibration, written once so that every task (a local process or a Slurm array
//! task) runs exactly what was planned, and a killed study resumes with the same plan. Each task
//! leaves a status file (`tasks/task-N.json`).

use super::budget::BudgetPlan;
use super::expand::PlannedRun;
use super::spec::{LocalSettings, SlurmSettings};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A study's plan.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// The study's name.
    pub name: String,
    /// What it asks.
    pub description: String,
    /// The study file.
    pub study_file: PathBuf,
    /// A digest of what the plan was made from (the study file's text and the command line's
    /// overrides): the same inputs reuse the plan.
    pub inputs: String,
    /// The budget and its calibration.
    pub budget: BudgetPlan,
    /// The runs.
    pub runs: Vec<PlannedRun>,
    /// The local executor's settings.
    pub local: LocalSettings,
    /// The Slurm executor's settings.
    pub slurm: SlurmSettings,
}

/// How one task ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskStatus {
    /// The task (run) number.
    pub index: usize,
    /// Whether it trained and evaluated its run.
    pub ok: bool,
    /// Its run folder, when it got that far.
    pub run_dir: Option<PathBuf>,
    /// The folder of its results when not the run folder (one of the run's evaluation folders:
    /// the run was evaluated before with other settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_dir: Option<PathBuf>,
    /// What went wrong.
    pub error: Option<String>,
    /// Seconds it took.
    pub seconds: f64,
}

/// The files of a study folder.
pub struct StudyDir {
    /// The folder.
    pub root: PathBuf,
}

impl StudyDir {
    /// The plan file.
    pub fn plan(&self) -> PathBuf {
        self.root.join("plan.json")
    }

    /// Task `index`'s status file.
    pub fn status(&self, index: usize) -> PathBuf {
        self.root.join("tasks").join(format!("task-{index}.json"))
    }

    /// Task `index`'s log.
    pub fn log(&self, index: usize) -> PathBuf {
        self.root.join("logs").join(format!("task-{index}.log"))
    }

    /// Writes `plan`.
    pub fn write_plan(&self, plan: &Plan) -> anyhow::Result<()> {
        for folder in [self.root.join("tasks"), self.root.join("logs")] {
            std::fs::create_dir_all(&folder).map_err(|e| {
                anyhow::anyhow!("cannot create the study folder {}: {e}", folder.display())
            })?;
        }
        write_json(&self.plan(), plan)
    }

    /// The plan, if one was written.
    pub fn read_plan(&self) -> anyhow::Result<Option<Plan>> {
        read_json(&self.plan())
    }

    /// Task `index`'s status, if it finished.
    pub fn read_status(&self, index: usize) -> anyhow::Result<Option<TaskStatus>> {
        read_json(&self.status(index))
    }

    /// Records how task `index` ended.
    pub fn write_status(&self, status: &TaskStatus) -> anyhow::Result<()> {
        write_json(&self.status(status.index), status)
    }

    /// Removes task `index`'s status (before it runs again).
    pub fn clear_status(&self, index: usize) {
        let _ = std::fs::remove_file(self.status(index));
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)?)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("{} is not readable: {e}", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A short digest of `parts` (FNV-1a).
pub fn digest(parts: &[&str]) -> String {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for &b in part.as_bytes().iter().chain(b"\0") {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}
