//! The study file: arms, seeds, a budget, sweep axes, shared overlays and executor settings.
//!
//! ```toml
//! [study]
//! name = "free-vs-pgd"
//! seeds = [0, 1, 2]
//! overlays = ["../scale/cpu.toml"]      # after each arm's configs, relative to this file
//! set = ["train.max_batches = 12"]       # every run
//!
//! [budget]
//! mode = "passes"                        # steps | passes | time
//! reference = "PGD-5"                    # the arm whose configured cost every arm gets
//!
//! [[arm]]
//! label = "PGD-5"
//! configs = ["../methods/emp-ssl-pgd.toml"]
//! set = ["train.attack.pgd-linf.steps = 5"]
//!
//! [sweep]                                # the cartesian product with the arms (optional)
//! "train.free.step" = [0.005, 0.01]
//!
//! [slurm]
//! cpus_per_task = 2
//! ```

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use rossl_api::provenance::from_figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `[study]` says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StudyInfo {
    /// Short name (folder and titles).
    pub name: String,
    /// One line saying what the study asks.
    pub description: String,
    /// Seeds: every arm runs once with each.
    pub seeds: Vec<u64>,
    /// Config files applied after each arm's own (e.g. a scale overlay), relative to the study
    /// file.
    pub overlays: Vec<PathBuf>,
    /// `key=value` overrides for every run (TOML values), after the overlays.
    pub set: Vec<String>,
    /// Root folder of the study's runs and reports (relative to the current folder).
    pub out: PathBuf,
}

impl Default for StudyInfo {
    fn default() -> Self {
        StudyInfo {
            name: "study".into(),
            description: String::new(),
            seeds: vec![0],
            overlays: Vec::new(),
            set: Vec::new(),
            out: PathBuf::from("runs/studies"),
        }
    }
}

/// One arm: a method as config files and overrides.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Its label in tables and plots.
    pub label: String,
    /// Its config files, in order, relative to the study file.
    pub configs: Vec<PathBuf>,
    /// Its overrides (TOML values).
    #[serde(default)]
    pub set: Vec<String>,
}

/// What every arm gets the same of.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetMode {
    /// Each arm trains as configured.
    #[default]
    Steps,
    /// The same number of encoder forward and backward passes: the machine-independent cost.
    Passes,
    /// The same training wall-clock time on this machine (calibrated).
    Time,
}

impl BudgetMode {
    /// Its name in study files.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetMode::Steps => "steps",
            BudgetMode::Passes => "passes",
            BudgetMode::Time => "time",
        }
    }
}

/// `[budget]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// What every arm gets the same of.
    pub mode: BudgetMode,
    /// The arm whose configured cost is the budget (when `passes`/`seconds` are not given).
    pub reference: Option<String>,
    /// The budget in encoder passes (forward + backward), for `passes`.
    pub passes: Option<u64>,
    /// The budget in training seconds, for `time`.
    pub seconds: Option<f64>,
    /// Timed steps of each arm's calibration (after one untimed step).
    pub calibration_steps: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            mode: BudgetMode::Steps,
            reference: None,
            passes: None,
            seconds: None,
            calibration_steps: 3,
        }
    }
}

/// `[local]`: the local executor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSettings {
    /// Runs at a time (the cores are split between them).
    pub jobs: usize,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings { jobs: 1 }
    }
}

/// `[slurm]`: the job array's resources.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSettings {
    /// Partition (`--partition`); unset: the cluster's default.
    pub partition: Option<String>,
    /// CPUs per task (`--cpus-per-task`); each run uses that many threads.
    pub cpus_per_task: usize,
    /// GPUs per task (`--gres=gpu:N`; 0: none).
    pub gpus: usize,
    /// Memory per task (`--mem`).
    pub mem: String,
    /// Time limit per task (`--time`).
    pub time: String,
    /// Extra `#SBATCH` lines, without the prefix (e.g. `--qos=normal`).
    pub extra: Vec<String>,
    /// Seconds between `squeue` polls.
    pub poll_seconds: u64,
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            partition: None,
            cpus_per_task: 1,
            gpus: 0,
            mem: "2G".into(),
            time: "01:00:00".into(),
            extra: Vec::new(),
            poll_seconds: 5,
        }
    }
}

/// A whole study file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StudyFile {
    /// `[study]`.
    pub study: StudyInfo,
    /// `[[arm]]`.
    #[serde(rename = "arm")]
    pub arms: Vec<Arm>,
    /// `[sweep]`: key -> values.
    pub sweep: BTreeMap<String, Vec<toml::Value>>,
    /// `[budget]`.
    pub budget: Budget,
    /// `[local]`.
    pub local: LocalSettings,
    /// `[slurm]`.
    pub slurm: SlurmSettings,
}

impl StudyFile {
    /// Reads `path` (over the defaults); errors name the key and the file. Config and overlay
    /// paths become relative to the current folder.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if !path.is_file() {
            anyhow::bail!("study file `{}` not found", path.display());
        }
        let figment =
            Figment::from(Serialized::defaults(StudyFile::default())).merge(Toml::file_exact(path));
        let mut study: StudyFile = figment.extract().map_err(|e| from_figment(e, ""))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        study.study.overlays.iter_mut().for_each(rebase);
        for arm in &mut study.arms {
            arm.configs.iter_mut().for_each(rebase);
        }
        study.check(path)?;
        Ok(study)
    }

    /// Checks what serde cannot: arms, labels, seeds, the budget's reference.
    pub fn check(&self, path: &Path) -> anyhow::Result<()> {
        let at = path.display();
        if self.arms.is_empty() {
            anyhow::bail!("{at}: the study has no `[[arm]]`");
        }
        if self.study.seeds.is_empty() {
            anyhow::bail!("{at}: `study.seeds` is empty");
        }
        if self.local.jobs == 0 {
            anyhow::bail!("{at}: `local.jobs` is 0; it must be at least 1 (runs at a time)");
        }
        let mut labels = std::collections::BTreeSet::new();
        for arm in &self.arms {
            if !labels.insert(&arm.label) {
                anyhow::bail!("{at}: two arms are labelled `{}`", arm.label);
            }
            if arm.configs.is_empty() {
                anyhow::bail!("{at}: arm `{}` has no `configs`", arm.label);
            }
            for file in arm.configs.iter().chain(&self.study.overlays) {
                if !file.is_file() {
                    anyhow::bail!("{at}: config file `{}` not found", file.display());
                }
            }
        }
        if let Some((key, _)) = self.sweep.iter().find(|(_, v)| v.is_empty()) {
            anyhow::bail!("{at}: `sweep.\"{key}\"` has no values");
        }
        let b = &self.budget;
        if let Some(reference) = &b.reference {
            if !labels.contains(reference) {
                anyhow::bail!(
                    "{at}: `budget.reference` names `{reference}`, which is not an arm (arms: {})",
                    labels
                        .iter()
                        .map(|l| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let needs_amount = match b.mode {
            BudgetMode::Steps => false,
            BudgetMode::Passes => b.passes.is_none(),
            BudgetMode::Time => b.seconds.is_none(),
        };
        if needs_amount && b.reference.is_none() {
            anyhow::bail!(
                "{at}: a `{:?}` budget needs an amount (`budget.passes` / `budget.seconds`) or a `budget.reference` arm",
                b.mode
            );
        }
        if b.calibration_steps == 0 {
            anyhow::bail!("{at}: `budget.calibration_steps` must be at least 1");
        }
        Ok(())
    }
}
