//! The study's report: `study.md` (the paper's table shape, with seed intervals and paired
//! differences) and `study.json` (every number).

use super::aggregate::{by_group, paired, worst_by_radius, RunMetrics, Summary};
use super::plan::{Plan, StudyDir};
use super::spec::BudgetMode;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The metrics reported, in column order: accuracies first (in %), then costs.
fn columns(runs: &[RunMetrics]) -> Vec<String> {
    let worst = worst_by_radius(runs.iter().flat_map(|r| r.values.keys()));
    let mut out = vec!["clean".to_string()];
    out.extend(worst);
    out.extend(["train seconds", "passes", "steps"].map(String::from));
    out
}

fn is_accuracy(metric: &str) -> bool {
    metric == "clean" || metric.starts_with("worst ")
}

/// `70.20 ± 1.31` (accuracies in %), `±` left out for a single seed.
fn cell(metric: &str, s: &Summary) -> String {
    let scale = if is_accuracy(metric) { 100.0 } else { 1.0 };
    let digits = if is_accuracy(metric) { 2 } else { 1 };
    if s.ci95.is_nan() {
        format!("{:.*}", digits, s.mean * scale)
    } else {
        format!(
            "{:.*} ± {:.*}",
            digits,
            s.mean * scale,
            digits,
            s.ci95 * scale
        )
    }
}

/// A signed difference, bold when its interval excludes 0.
fn difference(metric: &str, s: &Summary) -> String {
    let scale = if is_accuracy(metric) { 100.0 } else { 1.0 };
    let text = format!(
        "{:+.2} ± {:.2}",
        s.mean * scale,
        if s.ci95.is_nan() { 0.0 } else { s.ci95 * scale }
    );
    if !s.ci95.is_nan() && (s.mean.abs() > s.ci95) {
        format!("**{text}**")
    } else {
        text
    }
}

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

/// Writes `study.md` and `study.json`; returns the Markdown.
pub fn write_report(
    dir: &StudyDir,
    plan: &Plan,
    runs: &[RunMetrics],
    failed: &[(usize, String)],
) -> anyhow::Result<String> {
    let groups = by_group(runs);
    let cols = columns(runs);
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
    let _ = writeln!(md, "## Results (mean ± 95% interval over seeds)\n");
    let _ = writeln!(md, "| group | n | {} |", cols.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(cols.len()));
    for (group, stats) in &groups {
        let n = stats.get("clean").map_or(0, |s| s.n);
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                stats
                    .get(c)
                    .map(|s| cell(c, s))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        let _ = writeln!(md, "| {group} | {n} | {} |", cells.join(" | "));
    }
    let mut paired_json = Vec::new();
    if let Some((base, _)) = groups.first() {
        let _ = writeln!(
            md,
            "\n## Paired differences against `{base}` (same seeds; mean ± 95% interval; bold: the interval excludes 0)\n"
        );
        let _ = writeln!(md, "| group | {} |", cols.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(cols.len()));
        for (group, _) in groups.iter().skip(1) {
            let mut row = BTreeMap::new();
            let cells: Vec<String> = cols
                .iter()
                .map(|c| match paired(runs, group, base, c) {
                    Some(s) => {
                        row.insert(c.clone(), s);
                        difference(c, &s)
                    }
                    None => "-".into(),
                })
                .collect();
            let _ = writeln!(md, "| {group} − {base} | {} |", cells.join(" | "));
            paired_json.push(json!({ "group": group, "against": base, "differences": row }));
        }
    }
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
    let _ = writeln!(
        md,
        "\n## Runs\n\n| group | seed | {} | folder |",
        cols.join(" | ")
    );
    let _ = writeln!(md, "|---|---|{}---|", "---|".repeat(cols.len()));
    for r in runs {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                r.values.get(c).map_or("-".into(), |v| {
                    let s = Summary {
                        n: 1,
                        mean: *v,
                        sd: 0.0,
                        ci95: f64::NAN,
                    };
                    cell(c, &s)
                })
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.group,
            r.seed,
            cells.join(" | "),
            r.run_dir.display()
        );
    }
    std::fs::write(dir.root.join("study.md"), &md)?;
    let document = json!({
        "name": plan.name,
        "description": plan.description,
        "budget": plan.budget,
        "groups": groups.iter().map(|(g, s)| json!({ "group": g, "stats": s })).collect::<Vec<_>>(),
        "paired": paired_json,
        "runs": runs,
        "failed": failed.iter().map(|(i, w)| json!({ "task": i, "error": w })).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.root.join("study.json"),
        serde_json::to_string_pretty(&document)?,
    )?;
    Ok(md)
}
