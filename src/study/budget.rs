//! Equal budgets: a short calibration of every group (arm and sweep point) measures its cost per
//! optimiser step, in encoder passes and in seconds on this machine, and fixes its step count
//! (`train.steps`) so that every group gets the same passes or the same time, with the schedule's
//! horizon known in advance.

use super::expand::PlannedRun;
use super::spec::{Budget, BudgetMode};
use crate::commands::session::{build, Session};
use crate::commands::teacher;
use rossl_runtime::config::ConfigSources;
use rossl_runtime::run_dir::{files, read_metrics, MetricsRecord, RunDir};
use rossl_runtime::train::{plan, train};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the calibration of one group measured and decided.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// The group (arm and sweep point).
    pub group: String,
    /// Encoder passes (forward + backward) per optimiser step.
    pub passes_per_step: f64,
    /// Seconds per optimiser step on the calibrating machine (after one untimed step).
    pub seconds_per_step: f64,
    /// Optimiser steps as configured.
    pub configured_steps: usize,
    /// Optimiser steps the budget gives it.
    pub budget_steps: usize,
    /// The machine that calibrated.
    pub host: String,
}

/// The budget that every group gets, in its unit, and each group's calibration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BudgetPlan {
    /// What every group gets the same of.
    pub mode: BudgetMode,
    /// The amount: passes or seconds (none for `steps`).
    pub amount: Option<f64>,
    /// Each group's calibration (none for `steps`).
    pub calibration: Vec<Calibration>,
}

/// The machine's name, for calibration records.
pub(crate) fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Calibrates one group from its first run: `steps + 1` optimiser steps in a scratch folder.
fn calibrate(run: &PlannedRun, steps: usize, scratch: &Path) -> anyhow::Result<Calibration> {
    let mut sets = run.sets.clone();
    let configured = build(ConfigSources::new(run.files.clone(), sets.clone()))?;
    if let Some(teacher) = stand_in_teacher(&configured, scratch)? {
        sets.push(teacher);
    }
    sets.extend([
        format!("train.steps={}", steps + 1),
        "train.log_every=1".into(),
        "train.monitor.every=0".into(),
        format!("out={}", toml::Value::String(scratch.display().to_string())),
    ]);
    let session = build(ConfigSources::new(run.files.clone(), sets))?;
    let asm = &session.assembly;
    let run_dir = RunDir::for_config(&asm.config)?;
    let _ = std::fs::remove_dir_all(run_dir.path());
    run_dir.create()?;
    let summary = train(asm, &run_dir, None)?;
    let seconds: Vec<f64> = read_metrics(&run_dir)?
        .iter()
        .filter_map(|m| match m {
            MetricsRecord::Step(s) => Some(s.seconds),
            _ => None,
        })
        .collect();
    let timed = match (seconds.first(), seconds.last()) {
        (Some(first), Some(last)) if seconds.len() > 1 => {
            (last - first) / (seconds.len() - 1) as f64
        }
        _ => summary.seconds / summary.steps.max(1) as f64,
    };
    if !(timed.is_finite() && timed > 0.0) {
        anyhow::bail!(
            "the calibration of `{}` measured {timed} s per step over {} steps: a time budget \
             cannot be divided by that (raise `budget.calibration_steps`)",
            run.group,
            seconds.len()
        );
    }
    let passes = (summary.forward_passes + summary.backward_passes) as f64;
    let configured_steps = plan(
        &configured.assembly.config.run,
        summary.plan.batches_per_pass,
    )
    .total_steps;
    Ok(Calibration {
        group: run.group.clone(),
        passes_per_step: passes / summary.steps.max(1) as f64,
        seconds_per_step: timed,
        configured_steps,
        budget_steps: configured_steps,
        host: host(),
    })
}

/// A stand-in for the teacher that `student` names as a configuration: one step of it, trained
/// in the scratch folder (the cost of a student's step does not depend on its teacher's
/// weights; the study's own runs train the real teacher). The override naming it, if any.
fn stand_in_teacher(student: &Session, scratch: &Path) -> anyhow::Result<Option<String>> {
    let Some(mut sources) = teacher::teacher_sources(student)? else {
        return Ok(None);
    };
    sources.sets.extend([
        "train.steps=1".into(),
        "train.monitor.every=0".into(),
        format!("out={}", toml::Value::String(scratch.display().to_string())),
    ]);
    let session = teacher::build_teacher(student, sources)?;
    let run_dir = RunDir::for_config(&session.assembly.config)?;
    let _ = std::fs::remove_dir_all(run_dir.path());
    run_dir.create()?;
    // a teacher is read back from its folder's configuration and checkpoint
    run_dir.write(files::CONFIG, &session.assembly.config.to_toml(true)?)?;
    train(&session.assembly, &run_dir, None)?;
    Ok(Some(teacher::from_override(run_dir.path())))
}

/// The cost per step of a calibration in the budget's unit.
fn cost(c: &Calibration, mode: BudgetMode) -> f64 {
    match mode {
        BudgetMode::Passes => c.passes_per_step,
        _ => c.seconds_per_step,
    }
}

/// Calibrates every group of `runs` (when the budget needs it), fixes each group's step count and
/// adds it (`train.steps = N`) to each of its runs.
pub fn apply(
    budget: &Budget,
    runs: &mut [PlannedRun],
    scratch: &Path,
) -> anyhow::Result<BudgetPlan> {
    if budget.mode == BudgetMode::Steps {
        return Ok(BudgetPlan {
            mode: budget.mode,
            amount: None,
            calibration: Vec::new(),
        });
    }
    let mut calibration: Vec<Calibration> = Vec::new();
    for run in runs.iter() {
        if calibration.iter().any(|c| c.group == run.group) {
            continue;
        }
        tracing::info!(group = %run.group, "calibrating");
        calibration.push(calibrate(run, budget.calibration_steps, scratch)?);
    }
    let amount = match (budget.mode, budget.passes, budget.seconds) {
        (BudgetMode::Passes, Some(p), _) => p as f64,
        (BudgetMode::Time, _, Some(s)) => s,
        _ => {
            let reference = budget.reference.as_deref().unwrap_or_default();
            let arm = runs
                .iter()
                .find(|r| r.arm == reference)
                .map(|r| r.group.clone())
                .unwrap_or_default();
            let c = calibration.iter().find(|c| c.group == arm).ok_or_else(|| {
                anyhow::anyhow!("no calibration of the reference arm `{reference}`")
            })?;
            c.configured_steps as f64 * cost(c, budget.mode)
        }
    };
    let reference = budget.reference.as_deref();
    for c in &mut calibration {
        let is_reference = runs
            .iter()
            .any(|r| Some(r.arm.as_str()) == reference && r.group == c.group);
        c.budget_steps = if is_reference && budget.passes.is_none() && budget.seconds.is_none() {
            // the reference's own budget is its configured length, exactly
            c.configured_steps
        } else {
            ((amount / cost(c, budget.mode).max(1e-12) + 1e-9).floor() as usize).max(1)
        };
    }
    for run in runs.iter_mut() {
        if let Some(c) = calibration.iter().find(|c| c.group == run.group) {
            let at = run.sets.len() - 1; // before `out`, after everything else
            run.sets
                .insert(at, format!("train.steps={}", c.budget_steps));
        }
    }
    Ok(BudgetPlan {
        mode: budget.mode,
        amount: Some(amount),
        calibration,
    })
}
