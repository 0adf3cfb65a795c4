//! The common-corruption measurement's settings (`[eval.corruptions]`).

use crate::{Error, Result};
use rossl_nn::corruptions::Corruption;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Accuracy of every evaluator's classifier under common corruptions (Hendrycks and Dietterich
/// 2019), each family at each severity. Off (and not written) while `families` is empty.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorruptionsConfig {
    /// The families, by their CIFAR-10-C file stems (`gaussian_noise`, `fog`, ...), or
    /// `["benchmark"]`: RobustBench's 15 without frost (which needs photo files), in its order.
    pub families: Vec<String>,
    /// The severities, each in 1..=5.
    pub severities: Vec<u8>,
    /// Test images per family and severity (the first ones of the evaluation's test set; 0:
    /// all).
    pub images: usize,
    /// A folder holding the published CIFAR-10-C or CIFAR-100-C arrays (`<family>.npy` and
    /// `labels.npy`): its images are read instead of corrupting the test set (empty: computed).
    #[serde(skip_serializing_if = "is_empty_path")]
    pub files: PathBuf,
}

fn is_empty_path(path: &std::path::Path) -> bool {
    path.as_os_str().is_empty()
}

impl Default for CorruptionsConfig {
    fn default() -> Self {
        CorruptionsConfig {
            families: Vec::new(),
            severities: vec![1, 2, 3, 4, 5],
            images: 0,
            files: PathBuf::new(),
        }
    }
}

impl CorruptionsConfig {
    /// Whether no corruption is measured (the default).
    pub fn is_off(&self) -> bool {
        self.families.is_empty()
    }

    /// The families named (`["benchmark"]`: RobustBench's list without frost); an error naming
    /// `eval.corruptions.families` or `.severities` for an unknown name or a severity outside
    /// 1..=5.
    pub fn families(&self) -> Result<Vec<Corruption>> {
        if let Some(s) = self.severities.iter().find(|s| !(1..=5).contains(*s)) {
            return Err(Error::Config(format!(
                "`eval.corruptions.severities` holds {s}: severities are 1 to 5"
            )));
        }
        if self.severities.is_empty() && !self.is_off() {
            return Err(Error::Config(
                "`eval.corruptions.severities` is empty: name at least one of 1 to 5".into(),
            ));
        }
        if self.families.iter().any(|f| f == "benchmark") {
            return Ok(Corruption::benchmark().to_vec());
        }
        self.families
            .iter()
            .map(|f| {
                f.parse::<Corruption>()
                    .map_err(|e| Error::Config(format!("`eval.corruptions.families`: {e}")))
            })
            .collect()
    }
}
