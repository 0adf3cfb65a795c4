//! `metrics.jsonl`: one JSON object per line, tagged by its `kind`: a logged optimiser step
//! (`step`), the end of a pass over the data (`epoch`), or a report of the online monitor
//! (`monitor`). [`MetricsWriter`] writes it, [`read_metrics`] reads it back.

use super::{files, RunDir};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `metrics.jsonl`, tagged by its `kind`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MetricsRecord {
    /// A logged optimiser step.
    Step(StepRecord),
    /// The end of a pass over the data.
    Epoch(EpochRecord),
    /// A report of the online monitor.
    Monitor(MonitorRecord),
}

impl MetricsRecord {
    /// The optimiser steps taken when the record was written.
    pub fn step(&self) -> usize {
        match self {
            MetricsRecord::Step(r) => r.step,
            MetricsRecord::Epoch(r) => r.step,
            MetricsRecord::Monitor(r) => r.step,
        }
    }
}

/// One logged optimiser step (a line of kind `step`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
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

/// The end of a pass over the data (a line of kind `epoch`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// The pass (0-based).
    pub epoch: usize,
    /// Optimiser steps taken so far.
    pub step: usize,
    /// The mean objective over the pass's steps.
    pub mean_loss: f64,
    /// Encoder forward passes so far.
    pub forward_passes: u64,
    /// Encoder backward passes so far.
    pub backward_passes: u64,
    /// Training seconds so far.
    pub seconds: f64,
    /// The part of `seconds` spent waiting for the loader's batches (0 in runs written before
    /// it was recorded).
    #[serde(default)]
    pub loader_wait_seconds: f64,
    /// The augmentation strength of the pass's views, when `train.anneal` schedules the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_strength: Option<f64>,
    /// The weight of the clean views' loss in the pass's PGD updates, when `train.anneal`
    /// schedules the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_weight: Option<f64>,
    /// The weight of the perturbed views' loss in the pass's PGD updates, when `train.anneal`
    /// schedules the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial_weight: Option<f64>,
}

/// One report of the online monitor (a line of kind `monitor`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MonitorRecord {
    /// The optimiser step it follows.
    pub step: usize,
    /// The probe's clean accuracy on the measuring half.
    pub clean: f64,
    /// Its accuracy under PGD at `eps`.
    pub pgd: f64,
    /// The PGD radius.
    pub eps: f64,
    /// Images measured.
    pub images: usize,
    /// Seconds this report took (kept out of the training wall time).
    pub seconds: f64,
    /// Training seconds at the step it follows (set by the training loop; 0 in runs written
    /// before it was recorded).
    #[serde(default)]
    pub train_seconds: f64,
}

/// Appends records to a run's `metrics.jsonl`.
pub struct MetricsWriter {
    path: PathBuf,
    file: std::fs::File,
}

/// The one field the writer reads back when it resumes: the step a line was written after.
#[derive(Deserialize)]
struct Counted {
    step: u64,
}

impl MetricsWriter {
    /// Opens the `metrics.jsonl` of `run_dir` for appending. When resuming after `steps`
    /// optimiser steps, records written after that point (by the interrupted run) are dropped
    /// first.
    pub fn open(run_dir: &RunDir, resume_after: Option<usize>) -> Result<Self> {
        let path = run_dir.file(files::METRICS);
        if let Some(steps) = resume_after {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|line| {
                        serde_json::from_str::<Counted>(line)
                            .is_ok_and(|c| c.step as usize <= steps)
                    })
                    .collect();
                let mut out = kept.join("\n");
                if !out.is_empty() {
                    out.push('\n');
                }
                std::fs::write(&path, out)
                    .map_err(|e| Error::io(format!("rewriting {}", path.display()), e))?;
            }
        } else {
            std::fs::write(&path, "")
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(MetricsWriter { path, file })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &MetricsRecord) -> Result<()> {
        let line =
            serde_json::to_string(record).map_err(|e| Error::msg(format!("metrics: {e}")))?;
        writeln!(self.file, "{line}")
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }
}

/// Every record of the `metrics.jsonl` of `run_dir` (none when the file does not exist). A torn
/// last line (a run killed while writing it) is left out; any other line that does not parse is
/// an error naming the file, the line and the field.
pub fn read_metrics(run_dir: &RunDir) -> Result<Vec<MetricsRecord>> {
    let path = run_dir.file(files::METRICS);
    match run_dir.read(files::METRICS)? {
        Some(text) => parse_metrics(&text, &path),
        None => Ok(Vec::new()),
    }
}

/// The records of `text`, the contents of the metrics file `path` (see [`read_metrics`]).
pub fn parse_metrics(text: &str, path: &Path) -> Result<Vec<MetricsRecord>> {
    let torn = !text.is_empty() && !text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<MetricsRecord>(line) {
            Ok(record) => out.push(record),
            Err(_) if torn && i + 1 == lines.len() => break,
            Err(e) => {
                return Err(Error::data(
                    path,
                    format!("line {}: not a metrics record of this rossl: {e}", i + 1),
                ))
            }
        }
    }
    Ok(out)
}
