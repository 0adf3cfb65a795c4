//! The study's report: `study.md` (the paper's table shape, with seed intervals and paired
//! differences, rendered by [`crate::report::table`]) and `study.json` (every number), with what
//! only a study has: its budget, its calibration and its failed tasks.

use super::plan::{Plan, StudyDir};
use super::spec::BudgetMode;
use crate::report::stats::{by_group, RunMetrics};
use crate::report::table::{cell, groups_table, paired_table, study_columns, study_runs_table};
use serde_json::json;
use std::fmt::Write as _;

fn budget_line(plan: &Plan) -> String {
    let b = &plan.budget;
    match (b.mode, b.amount) {
        (BudgetMode::Steps, _) => "steps: every arm trains as configured".into(),
        (BudgetMode::Passes, Some(a)) => format!(
            "passes: every arm gets {a:.0} encoder passes (forward + backward); its step count follows from its calibrated passes per step"
        ),
        (BudgetMode::Time, Some(a)) => format!(
            "time: every arm gets {a:.1} s of training wall time on the calibrating machine; its step count follows from its calibrated seconds per step"
        ),
        (mode, None) => format!("{mode:?}"),
    }
}

/// The study's header: its name, question, budget, seeds and how many runs finished.
fn header(plan: &Plan, runs: &[RunMetrics], failed: &[(usize, String)]) -> String {
    let mut md = format!("# Study: {}\n\n{}\n\n", plan.name, plan.description);
    let seeds: std::collections::BTreeSet<u64> = plan.runs.iter().map(|r| r.seed).collect();
    let _ = writeln!(
        md,
        "Budget: {}. Seeds: {:?}. Runs: {} planned, {} finished, {} failed. Accuracies in % on the test split (first evaluator); worst case: correct clean and under every attack at that radius; intervals: 95% Student t over seeds.\n",
        budget_line(plan),
        seeds,
        plan.runs.len(),
        runs.len(),
        failed.len()
    );
    md
}

/// Each group's calibration (empty for a budget in steps), and the failed tasks.
fn calibration_and_failures(plan: &Plan, failed: &[(usize, String)]) -> String {
    let mut md = String::new();
    if !plan.budget.calibration.is_empty() {
        let _ = writeln!(md, "\n## Calibration\n");
        let _ = writeln!(
            md,
            "| group | passes / step | seconds / step | configured steps | budget steps | host |\n|---|---|---|---|---|---|"
        );
        for c in &plan.budget.calibration {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.3} | {} | {} | {} |",
                c.group,
                c.passes_per_step,
                c.seconds_per_step,
                c.configured_steps,
                c.budget_steps,
                c.host
            );
        }
    }
    if !failed.is_empty() {
        let _ = writeln!(md, "\n## Failed tasks\n");
        for (index, why) in failed {
            let _ = writeln!(md, "- task {index}: {why}");
        }
    }
    md
}

/// Writes `study.md` and `study.json`; returns the Markdown.
pub fn write_report(
    dir: &StudyDir,
    plan: &Plan,
    runs: &[RunMetrics],
    failed: &[(usize, String)],
) -> anyhow::Result<String> {
    let groups = by_group(runs);
    let cols = study_columns(runs);
    let (paired_md, paired) = paired_table(runs, &groups, &cols);
    let protocol_columns =
        crate::report::protocol::columns(runs.iter().map(|r| r.protocol.iter().cloned()));
    let md = [
        header(plan, runs, failed),
        groups_table(&groups, &cols),
        crate::report::protocol::study_table(&groups, &protocol_columns, cell),
        paired_md,
        calibration_and_failures(plan, failed),
        study_runs_table(runs, &cols),
    ]
    .concat();
    std::fs::write(dir.root.join("study.md"), &md)?;
    let document = json!({
        "name": plan.name,
        "description": plan.description,
        "budget": plan.budget,
        "groups": groups.iter().map(|(g, s)| json!({ "group": g, "stats": s })).collect::<Vec<_>>(),
        "paired": paired,
        "runs": runs,
        "failed": failed.iter().map(|(i, w)| json!({ "task": i, "error": w })).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.root.join("study.json"),
        serde_json::to_string_pretty(&document)?,
    )?;
    Ok(md)
}
