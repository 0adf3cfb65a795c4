//! The report's tables in Markdown, sharing their column definitions and radius labels: the
//! run-level table of a comparison (one row per run, per evaluator) and the aggregated tables of
//! a study (mean and 95% interval over seeds per group, paired differences, and every run).

use super::runs::{first_row_eps_label, norm_words, protocol_differences, radii, Row};
use super::stats::{paired, worst_by_radius, RunMetrics, Summary};
use rossl_runtime::config::Regime;
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn regime_label(row: &Row) -> String {
    let s = &row.summary;
    if s.forward_passes == 0 {
        "none (untrained)".into()
    } else if s.regime == Regime::Free {
        format!("free (m={})", s.plan.steps_per_batch)
    } else {
        s.regime.to_string()
    }
}

fn percent(v: Option<f64>) -> String {
    v.map(|a| format!("{:.2}", 100.0 * a))
        .unwrap_or_else(|| "-".into())
}

/// The failed sanity checks of every row, first thing in the comparison: a robust accuracy whose
/// checks failed is not to be trusted.
fn failed_checks_section(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        for e in &row.results.evaluations {
            for check in e.failed_checks() {
                let _ = writeln!(
                    out,
                    "- **{}**, `{}`: {} ({})",
                    row.label, e.evaluator, check.name, check.detail
                );
            }
        }
    }
    if out.is_empty() {
        out
    } else {
        format!(
            "## Failed sanity checks\n\nThe robust accuracies of these rows are not to be \
             trusted until the failures are understood.\n\n{out}\n"
        )
    }
}

/// Rows whose evaluation differs from the first row's, marked in tables.
fn mixed_rows(rows: &[Row], differences: &[(String, Vec<String>)]) -> Vec<bool> {
    (0..rows.len())
        .map(|i| differences.iter().any(|(_, v)| v[i] != v[0]))
        .collect()
}

/// The paper-shaped table, one per evaluator, in Markdown; failed sanity checks first, then
/// (when rows were evaluated differently) the settings that differ.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = failed_checks_section(rows);
    let differences = protocol_differences(rows);
    let mixed = mixed_rows(rows, &differences);
    if !differences.is_empty() {
        let _ = writeln!(
            out,
            "## Mixed evaluation settings\n\nRows marked † were evaluated unlike the first row, so \
             their numbers are not directly comparable:\n\n{}",
            super::runs::describe_differences(rows, &differences)
        );
    }
    let evaluators: Vec<String> = rows
        .first()
        .map(|r| {
            r.results
                .evaluations
                .iter()
                .map(|e| e.evaluator.clone())
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&super::protocol::comparison_table(rows));
    for evaluator in evaluators {
        out.push_str(&evaluator_table(rows, &mixed, &evaluator));
    }
    let _ = writeln!(
        out,
        "Accuracies in %, on the test split. Worst case: the per-example worst case over every \
         attack of the evaluation at that radius ({}, inputs in [0, 1], through encoder and \
         probe), i.e. correct clean and under every attack. Epochs are passes over the data. \
         Training wall time runs from the first batch request to the last optimiser step of \
         pre-training (evaluation excluded); the loader wait inside it is the time spent waiting \
         for batches of views.",
        norm_words(rows)
    );
    out
}

/// The run-level table of one evaluator: a row per run that it evaluated, rows in `mixed` marked.
fn evaluator_table(rows: &[Row], mixed: &[bool], evaluator: &str) -> String {
    let eps = radii(rows);
    let mut out = format!("### {evaluator}\n\n");
    let mut header = "| method | views | regime | epochs | clean |".to_string();
    for e in &eps {
        let _ = write!(header, " worst case {} |", first_row_eps_label(rows, *e));
    }
    header.push_str(
        " training wall time (loader wait) | encoder passes (fwd / bwd) | failed checks |",
    );
    // evaluators that train the encoder (`finetune`) cost passes of their own
    let fits = rows.iter().any(|row| {
        row.results
            .evaluations
            .iter()
            .any(|e| e.evaluator == evaluator && e.fit.is_some())
    });
    if fits {
        header.push_str(" fine-tuning wall time | fine-tuning passes (fwd / bwd) |");
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(
        out,
        "|{}",
        "---|".repeat(8 + eps.len() + if fits { 2 } else { 0 })
    );
    for (row, mixed) in rows.iter().zip(mixed) {
        let Some(e) = row
            .results
            .evaluations
            .iter()
            .find(|e| e.evaluator == evaluator)
        else {
            continue;
        };
        let mut line = format!(
            "| {}{} | {} | {} | {} | {} |",
            row.label,
            if *mixed { " †" } else { "" },
            row.results.views_per_image,
            regime_label(row),
            row.summary.epochs,
            percent(Some(e.clean_accuracy))
        );
        for r in &eps {
            let _ = write!(line, " {} |", percent(e.worst_at(*r)));
        }
        let _ = write!(
            line,
            " {:.1} s ({:.1} s) | {} / {} | {} |",
            row.summary.seconds,
            row.summary.loader_wait_seconds,
            row.summary.forward_passes,
            row.summary.backward_passes,
            e.failed_checks().count()
        );
        if let (true, Some(fit)) = (fits, &e.fit) {
            let _ = write!(
                line,
                " {:.1} s | {} / {} |",
                fit.seconds, fit.forward_passes, fit.backward_passes
            );
        } else if fits {
            line.push_str(" - | - |");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    out
}

/// The comparison as JSON: one entry per row, the fields of `results.json` plus `label`,
/// `run_dir` and, for results in one of the run's evaluation folders, `results_dir`.
pub fn json(rows: &[Row]) -> anyhow::Result<String> {
    let entries: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut v = serde_json::to_value(&row.results)?;
            if let Some(map) = v.as_object_mut() {
                map.insert("label".into(), row.label.clone().into());
                map.insert("run_dir".into(), row.run_dir.display().to_string().into());
                if row.results_dir != row.run_dir {
                    let dir = row.results_dir.display().to_string();
                    map.insert("results_dir".into(), dir.into());
                }
            }
            Ok(v)
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(serde_json::to_string_pretty(&entries)?)
}

/// The metrics of a study's tables, in column order: accuracies first (in %, the worst cases by
/// radius), then costs.
pub fn study_columns(runs: &[RunMetrics]) -> Vec<String> {
    let worst = worst_by_radius(runs.iter().flat_map(|r| r.values.keys()));
    let mut out = vec!["clean".to_string()];
    out.extend(worst);
    out.extend(["train seconds", "passes", "steps"].map(String::from));
    out
}

fn is_accuracy(metric: &str) -> bool {
    metric == "clean"
        || metric.starts_with("worst ")
        || metric.ends_with(" clean")
        || metric.contains(" worst ")
}

/// `70.20 ± 1.31` (accuracies in %), `±` left out for a single seed.
pub fn cell(metric: &str, s: &Summary) -> String {
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

/// The aggregated table: one row per group, each metric's mean and 95% interval over seeds.
pub fn groups_table(groups: &[(String, BTreeMap<String, Summary>)], cols: &[String]) -> String {
    let mut md = "## Results (mean ± 95% interval over seeds)\n\n".to_string();
    let _ = writeln!(md, "| group | n | {} |", cols.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(cols.len()));
    for (group, stats) in groups {
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
    md
}

/// The paired differences of one group against the first (as in `study.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PairedDifferences {
    /// The group subtracted (the first).
    pub against: String,
    /// Metric -> the summary of the paired differences over shared seeds.
    pub differences: BTreeMap<String, Summary>,
    /// The group.
    pub group: String,
}

/// The table of paired differences of every group against the first, over the seeds they share
/// (empty without groups), and its numbers.
pub fn paired_table(
    runs: &[RunMetrics],
    groups: &[(String, BTreeMap<String, Summary>)],
    cols: &[String],
) -> (String, Vec<PairedDifferences>) {
    let mut md = String::new();
    let mut numbers = Vec::new();
    let Some((base, _)) = groups.first() else {
        return (md, numbers);
    };
    let _ = writeln!(
        md,
        "\n## Paired differences against `{base}` (same seeds; mean ± 95% interval; bold: the interval excludes 0)\n"
    );
    let _ = writeln!(md, "| group | {} |", cols.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(cols.len()));
    for (group, _) in groups.iter().skip(1) {
        let mut differences = BTreeMap::new();
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match paired(runs, group, base, c) {
                Some(s) => {
                    differences.insert(c.clone(), s);
                    difference(c, &s)
                }
                None => "-".into(),
            })
            .collect();
        let _ = writeln!(md, "| {group} − {base} | {} |", cells.join(" | "));
        numbers.push(PairedDifferences {
            against: base.clone(),
            differences,
            group: group.clone(),
        });
    }
    (md, numbers)
}

/// The table of every run of a study: its group, seed, metrics and folder.
pub fn study_runs_table(runs: &[RunMetrics], cols: &[String]) -> String {
    let mut md = format!(
        "\n## Runs\n\n| group | seed | {} | folder |\n",
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
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use rossl_runtime::eval::Results;
    use rossl_runtime::train::{TrainPlan, TrainSummary};

    fn row(label: &str, forward_passes: u64, failed: bool) -> Row {
        let summary = TrainSummary {
            method: label.into(),
            regime: Regime::Free,
            plan: TrainPlan {
                passes: 1,
                batches_per_pass: 2,
                steps_per_batch: 3,
                total_steps: 6,
                horizon: 6,
            },
            epochs_budget: 3,
            epochs: usize::from(forward_passes > 0),
            steps: 6,
            forward_passes,
            backward_passes: forward_passes,
            seconds: 1.5,
            loader_wait_seconds: 0.1,
            monitor_seconds: 0.0,
            final_loss: None,
            images_per_s: 1.0,
            device: "cpu".into(),
            complete: true,
        };
        let results: Results = serde_json::from_value(serde_json::json!({
            "method": label, "dataset": "synthetic", "encoder": "resnet-small",
            "views": "multi-crop", "views_per_image": 4,
            "train": {"seconds": 1.5, "epochs": 1, "epochs_budget": 3, "steps": 6,
                      "forward_passes": forward_passes, "backward_passes": forward_passes,
                      "regime": "free"},
            "evaluations": [{
                "evaluator": "linear-probe", "clean_accuracy": 0.5,
                "robust": [], "worst_case": [{"eps": 8.0 / 255.0, "accuracy": 0.25}],
                "checks": [{"name": "eps = 0 gives the clean accuracy", "passed": !failed,
                            "detail": "0.50 vs 0.40"}],
                "test_images": 10, "threat_model": "linf", "seconds": 1.0
            }],
            "device": "cpu", "seed": 0, "config_digest": "a", "eval_digest": "b"
        }))
        .unwrap();
        Row {
            label: label.into(),
            run_dir: std::path::PathBuf::from("runs/x"),
            results_dir: std::path::PathBuf::from("runs/x"),
            summary,
            results,
            metrics: Vec::new(),
        }
    }

    #[test]
    fn the_table_lists_failed_checks_first_and_marks_untrained_rows() {
        let md = markdown(&[row("trained", 6, false), row("untrained", 0, true)]);
        // the failure, with its numbers, before any table
        let failure = md
            .find(
                "- **untrained**, `linear-probe`: eps = 0 gives the clean accuracy (0.50 vs 0.40)",
            )
            .expect(&md);
        assert!(failure < md.find("### linear-probe").expect(&md), "{md}");
        assert!(!md.contains("**trained**"), "{md}");
        assert!(
            md.contains("| trained | 4 | free (m=3) | 1 | 50.00 | 25.00 | 1.5 s (0.1 s) |"),
            "{md}"
        );
        assert!(
            md.contains("| untrained | 4 | none (untrained) | 0 |"),
            "{md}"
        );
        // no failure, no section
        assert!(!markdown(&[row("trained", 6, false)]).contains("Failed sanity checks"));
    }

    #[test]
    fn runs_with_several_evaluations_get_the_protocol_table_with_costs_and_shares() {
        let mut r = row("acl", 6, false);
        let mut aff = r.results.evaluations[0].clone();
        aff.evaluator = "finetune".into();
        aff.clean_accuracy = 0.75;
        aff.fit = Some(rossl_runtime::eval::FitReport {
            seconds: 2.5,
            epochs: 1,
            steps: 3,
            forward_passes: 15,
            backward_passes: 12,
        });
        let mut knn = r.results.evaluations[0].clone();
        knn.evaluator = "knn".into();
        knn.data = Some(rossl_runtime::eval::EvaluationData {
            dataset: "synthetic".into(),
            adaptation: Vec::new(),
            label_fraction: 0.1,
            train_images: 5,
        });
        r.results.evaluations.extend([aff, knn]);
        let md = markdown(&[r]);
        let protocol = md.find("## The protocol").expect(&md);
        assert!(protocol < md.find("### linear-probe").expect(&md), "{md}");
        assert!(
            md.contains(
                "| method | SLF clean | SLF worst 8/255 | AFF clean | AFF worst 8/255 | knn (10% labels) clean | knn (10% labels) worst 8/255 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| acl | 50.00 | 25.00 | 75.00 | 25.00 | 50.00 | 25.00 |"),
            "{md}"
        );
        // the fine-tuning's own cost beside pre-training's
        assert!(md.contains("| 2.5 s | 15 / 12 |"), "{md}");
        // one evaluation on every label: no protocol table
        assert!(!markdown(&[row("acl", 6, false)]).contains("## The protocol"));
    }

    #[test]
    fn l2_rows_are_labelled_in_l2_with_their_radii_in_order() {
        let mut r = row("l2", 6, false);
        r.results
            .eval_protocol
            .insert("eval.norm".into(), "\"l2\"".into());
        r.results.evaluations[0].worst_case = serde_json::from_value(serde_json::json!([
            {"eps": 1.0, "accuracy": 0.1}, {"eps": 0.5, "accuracy": 0.25}
        ]))
        .unwrap();
        let md = markdown(&[r.clone()]);
        assert!(
            md.contains("| clean | worst case 0.5 | worst case 1 |")
                && md.contains("| 50.00 | 25.00 | 10.00 |"),
            "{md}"
        );
        assert!(md.contains("at that radius (L2, inputs"), "{md}");
        let mixed = markdown(&[r, row("linf", 6, false)]);
        assert!(
            mixed.contains("(L-infinity or L2, as each row's"),
            "{mixed}"
        );
        assert!(markdown(&[row("linf", 6, false)]).contains("(L-infinity, inputs"));
    }
}
