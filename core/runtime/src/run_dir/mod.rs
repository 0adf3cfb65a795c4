//! Run folders: where a run writes its configuration, metrics, checkpoint and results.
//!
//! ```text
//! <out>/<method>-<digest>/
//!   config.toml             the resolved configuration, each value with its source
//!   metrics.jsonl           one JSON object per logged optimiser step, plus epoch summaries
//!   checkpoint.safetensors  weights, buffers, optimiser state, configuration (every epoch)
//!   summary.json            the training summary (written when training ends)
//!   results.json            the evaluation (written by evaluation)
//!   robustbench.json        the result card: RobustBench's fields and robust SSL's
//!   probe-<evaluator>.safetensors  the classifier head each evaluator attacked
//!   evaluations/<eval digest>/      each evaluation under other settings than config.toml's
//!                                   (`rossl eval RUN --set ...`): its results.json,
//!                                   robustbench.json and probe heads
//! <out>/latest              a link to the folder of the most recent `rossl run`
//! ```
//!
//! This module owns the types of those files, each reader next to its writer: [`TrainSummary`]
//! (`summary.json`), [`Results`] (`results.json`), [`MetricsRecord`] (`metrics.jsonl`, written by
//! [`MetricsWriter`], read by [`read_metrics`]) and the probe heads. Nothing else names a run
//! file or parses one.

mod card;
mod claim;
mod evaluations;
mod fresh;
mod metrics;
mod probes;
mod protect;
pub(crate) mod results;
mod summary;

pub use card::{CardEntry, SslFields};
pub use claim::TrainingClaim;
pub use evaluations::{run_of_evaluation, EvaluationPlace};
pub use fresh::FreshRun;
pub use metrics::{
    parse_metrics, read_metrics, EpochRecord, MetricsRecord, MetricsWriter, MonitorRecord,
    StepRecord,
};
pub use protect::{is_run_file_name, is_run_folder, refuse_run_file};
pub use results::{
    eps_in_norm, eps_label, CheckResult, EvaluationReport, Results, RobustResult, TrainResults,
    WorstCase,
};
pub use summary::{TrainPlan, TrainSummary};

use crate::config::ResolvedConfig;
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A run folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

/// File names inside a run folder.
pub mod files {
    /// The resolved configuration with sources.
    pub const CONFIG: &str = "config.toml";
    /// Training metrics, JSON lines.
    pub const METRICS: &str = "metrics.jsonl";
    /// The latest checkpoint.
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// The training summary.
    pub const SUMMARY: &str = "summary.json";
    /// The evaluation results.
    pub const RESULTS: &str = "results.json";

    /// The result card (RobustBench's fields and robust SSL's).
    pub const ROBUSTBENCH: &str = "robustbench.json";

    /// The folder inside a run folder that holds its evaluations under other settings.
    pub const EVALUATIONS: &str = "evaluations";

    /// Every file of a run folder with a fixed name (the probe heads are named per evaluator).
    pub const OWNED: &[&str] = &[CONFIG, METRICS, CHECKPOINT, SUMMARY, RESULTS, ROBUSTBENCH];

    /// The classifier tensors (probe head, kNN bank) that evaluator `evaluator` attacked.
    pub fn probe(evaluator: &str) -> String {
        format!("{PROBE_PREFIX}{}{PROBE_SUFFIX}", super::slug(evaluator))
    }

    const PROBE_PREFIX: &str = "probe-";
    const PROBE_SUFFIX: &str = ".safetensors";

    /// Whether `name` is the file name of a probe head.
    pub fn is_probe(name: &str) -> bool {
        name.starts_with(PROBE_PREFIX) && name.ends_with(PROBE_SUFFIX)
    }
}

/// The link beside the run folders to the most recent one.
pub const LATEST: &str = "latest";

/// A folder-name-safe version of `name`.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "run".into()
    } else {
        s
    }
}

impl RunDir {
    /// The folder a configuration's run lives in: `<out>/<method>-<digest prefix>`.
    pub fn for_config(config: &ResolvedConfig) -> Result<Self> {
        let digest = config.digest()?;
        let method = if config.run.method.name.is_empty() {
            "run"
        } else {
            config.run.method.name.as_str()
        };
        Ok(RunDir {
            path: config
                .run
                .out
                .join(format!("{}-{}", slug(method), &digest[..10])),
        })
    }

    /// An existing run folder: it must hold a run's `config.toml`.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(Error::data(
                path,
                if path.exists() {
                    "not a run folder (it is a file)"
                } else {
                    "not a run folder (it does not exist)"
                },
            ));
        }
        if !path.join(files::CONFIG).is_file() {
            return Err(Error::data(
                path,
                format!(
                    "not a run folder: it has no `{}` (run folders are made by `rossl run`)",
                    files::CONFIG
                ),
            ));
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// Creates the folder (and its parents).
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.path)
            .map_err(|e| Error::io(format!("creating run folder {}", self.path.display()), e))
    }

    /// Points `latest` beside the folder (`<out>/latest`) at it, so that the most recent run is
    /// reachable without its digest: `rossl eval runs/latest`. The link is relative and replaced
    /// atomically.
    pub fn mark_latest(&self) -> Result<()> {
        let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(());
        };
        let link = parent.join(LATEST);
        let tmp = parent.join(format!(".{LATEST}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(name, &tmp)
            .and_then(|()| std::fs::rename(&tmp, &link))
            .map_err(|e| {
                Error::io(
                    format!("pointing {} at {}", link.display(), self.path.display()),
                    e,
                )
            })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file inside it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether the run (or evaluation folder) has been evaluated (it holds `results.json`).
    pub fn is_evaluated(&self) -> bool {
        self.file(files::RESULTS).is_file()
    }

    /// Writes `contents` to file `name` atomically.
    pub fn write(&self, name: &str, contents: &str) -> Result<()> {
        let target = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        std::fs::write(&tmp, contents)
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &target)
            .map_err(|e| Error::io(format!("writing {}", target.display()), e))
    }

    /// Reads file `name`, if it exists.
    pub fn read(&self, name: &str) -> Result<Option<String>> {
        let path = self.file(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Reads file `name` as JSON of type `T`, if it exists; an error naming the file and the
    /// field when it does not parse (a run folder of an incompatible rossl).
    fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let Some(text) = self.read(name)? else {
            return Ok(None);
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::data(
                self.file(name),
                format!("not a {name} this rossl can read: {e}"),
            )
        })
    }

    /// Writes `value` as pretty JSON to file `name` atomically.
    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| Error::msg(format!("{name}: {e}")))?;
        self.write(name, &text)
    }
}
