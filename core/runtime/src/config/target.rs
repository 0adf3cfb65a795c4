//! The `[train.target]` table: the target network of losses that use one.

use serde::{Deserialize, Serialize};

/// The target network that a loss such as BYOL's regresses onto: an exponential moving average
/// of the online encoder, built only when a loss term uses it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    /// Base momentum tau of the average, cosine-annealed to 1 over the run's steps:
    /// tau(k) = 1 - (1 - tau) (cos(pi k / K) + 1) / 2 (BYOL; solo-learn's CIFAR configs: 0.99).
    pub momentum: f64,
    /// A finished run folder whose encoder is a frozen teacher instead of the average (DeACL's
    /// second stage): built from the folder's `config.toml`, restored from its checkpoint, in
    /// evaluation mode, never updated. Or an exported weights file (`rossl export`), built as
    /// this run's encoder. Empty: the moving average. Not written when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// The teacher named as a configuration instead (DeACL's first stage): config files, layered
    /// in order, followed by the student's own files after its first (scale overlays such as
    /// `configs/scale/cpu.toml`), with the student's `seed` and `out`. `rossl run`, `compare` and
    /// studies train it first (without evaluating it), or reuse its finished run, and set `from`
    /// to its run folder; a `from` already set takes precedence. Paths are relative to the
    /// working directory. Not written when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teacher_config: Vec<std::path::PathBuf>,
    /// Start the encoder from the teacher's weights (DeACL's student; the architectures must
    /// match). Not written when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub init_from_teacher: bool,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            momentum: 0.99,
            from: String::new(),
            teacher_config: Vec::new(),
            init_from_teacher: false,
        }
    }
}

impl TargetConfig {
    /// Whether a frozen teacher is named, as a run folder or as a configuration.
    pub fn names_teacher(&self) -> bool {
        !self.from.is_empty() || !self.teacher_config.is_empty()
    }

    /// Whether these are the defaults (then not written into resolved configurations, so that
    /// configurations without a target network keep their digests).
    pub fn is_default(&self) -> bool {
        self == &TargetConfig::default()
    }
}
