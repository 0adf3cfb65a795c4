//! `metrics.jsonl`: one JSON object per logged optimiser step and one per epoch.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One logged optimiser step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    /// `"step"`.
    pub kind: String,
    /// Optimiser steps taken, this one included.
    pub step: usize,
    /// Pass over the data (0-based).
    pub epoch: usize,
    /// Batch within the pass (0-based).
    pub batch: usize,
    /// The objective.
    pub loss: f64,
    /// Each term's unweighted value.
    pub terms: BTreeMap<String, f64>,
    /// The learning rate used.
    pub lr: f64,
    /// The gradient norm before LARS.
    pub grad_norm: f64,
    /// Largest absolute perturbation (adversarial regimes).
    pub perturbation_linf: Option<f64>,
    /// Mean L2 norm of the per-view perturbations (adversarial regimes).
    pub perturbation_l2: Option<f64>,
    /// Views (images) processed per second in this step.
    pub images_per_s: f64,
    /// Encoder forward passes so far (one pass = the whole batch of views).
    pub forward_passes: u64,
    /// Encoder backward passes so far.
    pub backward_passes: u64,
    /// Training seconds so far.
    pub seconds: f64,
}

/// Appends records to a run's `metrics.jsonl`.
pub struct MetricsWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsWriter {
    /// Opens `path` for appending. When resuming after `steps` optimiser steps, records written
    /// after that point (by the interrupted run) are dropped first.
    pub fn open(path: &Path, resume_after: Option<usize>) -> Result<Self> {
        if let Some(steps) = resume_after {
            if let Ok(text) = std::fs::read_to_string(path) {
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|line| {
                        serde_json::from_str::<serde_json::Value>(line)
                            .ok()
                            .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                            .is_some_and(|s| s as usize <= steps)
                    })
                    .collect();
                let mut out = kept.join("\n");
                if !out.is_empty() {
                    out.push('\n');
                }
                std::fs::write(path, out)
                    .map_err(|e| Error::io(format!("rewriting {}", path.display()), e))?;
            }
        } else {
            std::fs::write(path, "")
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let line =
            serde_json::to_string(record).map_err(|e| Error::msg(format!("metrics: {e}")))?;
        writeln!(self.file, "{line}")
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }
}
