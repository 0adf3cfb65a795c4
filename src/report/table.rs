//! Comparisons of several runs: the paper-shaped table (`comparison.md`), the data
//! (`comparison.json`) and plots (`robust_accuracy.svg`, `loss_curves.svg`,
//! `accuracy_vs_time.svg`).

mod plots;

use plots::{plot_accuracy_vs_time, plot_losses, plot_robustness};
use rossl_runtime::config::Regime;
use rossl_runtime::eval::Results;
use rossl_runtime::run_dir::files;
use rossl_runtime::train::TrainSummary;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One row of a comparison.
#[derive(Clone, Debug)]
pub struct Row {
    /// Its label.
    pub label: String,
    /// Its run folder.
    pub run_dir: PathBuf,
    /// Its training summary.
    pub summary: TrainSummary,
    /// Its evaluation.
    pub results: Results,
}

impl Row {
    /// (step, loss) of every logged optimiser step of the run.
    pub fn loss_curve(&self) -> Vec<(f64, f64)> {
        std::fs::read_to_string(self.run_dir.join(files::METRICS))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["kind"] == "step")
            .filter_map(|v| Some((v["step"].as_f64()?, v["loss"].as_f64()?)))
            .collect()
    }
}

/// `k/255` when `eps` is (nearly) a multiple of 1/255, else the number.
pub fn eps_label(eps: f64) -> String {
    let k = eps * 255.0;
    if eps == 0.0 {
        "0".into()
    } else if (k - k.round()).abs() < 1e-6 {
        format!("{}/255", k.round() as i64)
    } else {
        format!("{eps:.4}")
    }
}

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

/// The radii measured in the first row's first evaluation.
pub(crate) fn radii(rows: &[Row]) -> Vec<f64> {
    rows.first()
        .and_then(|r| r.results.evaluations.first())
        .map(|e| e.worst_case.iter().map(|w| w.eps).collect())
        .unwrap_or_default()
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

/// The evaluation settings on which the rows disagree: for each such key, every row's value
/// (`-` where a row lacks the key). Empty when every row was evaluated alike.
pub fn protocol_differences(rows: &[Row]) -> Vec<(String, Vec<String>)> {
    let keys: std::collections::BTreeSet<&String> = rows
        .iter()
        .flat_map(|r| r.results.eval_protocol.keys())
        .collect();
    keys.into_iter()
        .filter_map(|key| {
            let values: Vec<String> = rows
                .iter()
                .map(|r| {
                    r.results
                        .eval_protocol
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| "-".into())
                })
                .collect();
            values
                .iter()
                .any(|v| v != &values[0])
                .then(|| (key.clone(), values))
        })
        .collect()
}

/// The evaluation settings that differ, one line per key with every row's value.
pub fn describe_differences(rows: &[Row], differences: &[(String, Vec<String>)]) -> String {
    let mut out = String::new();
    for (key, values) in differences {
        let per_row: Vec<String> = rows
            .iter()
            .zip(values)
            .map(|(r, v)| format!("{}: {v}", r.label))
            .collect();
        let _ = writeln!(out, "- `{key}`: {}", per_row.join("; "));
    }
    out
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
            describe_differences(rows, &differences)
        );
    }
    let eps = radii(rows);
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
    for evaluator in evaluators {
        let _ = writeln!(out, "### {evaluator}\n");
        let mut header = "| method | views | regime | epochs | clean |".to_string();
        for e in &eps {
            let _ = write!(header, " worst case {} |", eps_label(*e));
        }
        header.push_str(
            " training wall time (loader wait) | encoder passes (fwd / bwd) | failed checks |",
        );
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "|{}", "---|".repeat(8 + eps.len()));
        for (row, mixed) in rows.iter().zip(&mixed) {
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
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Accuracies in %, on the test split. Worst case: the per-example worst case over every \
         attack of the evaluation at that radius (L-infinity, inputs in [0, 1], through encoder and \
         probe), i.e. correct clean and under every attack. Epochs are passes over the data. \
         Training wall time runs from the first batch request to the last optimiser step of \
         pre-training (evaluation excluded); the loader wait inside it is the time spent waiting \
         for batches of views."
    );
    out
}

/// The comparison as JSON: one entry per row, the fields of `results.json` plus `label` and
/// `run_dir`.
pub fn json(rows: &[Row]) -> anyhow::Result<String> {
    let entries: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut v = serde_json::to_value(&row.results)?;
            if let Some(map) = v.as_object_mut() {
                map.insert("label".into(), row.label.clone().into());
                map.insert("run_dir".into(), row.run_dir.display().to_string().into());
            }
            Ok(v)
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(serde_json::to_string_pretty(&entries)?)
}

/// Writes `comparison.md`, `comparison.json` and the three plots into `dir`; returns the
/// Markdown table.
pub fn write_all(rows: &[Row], dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    let table = markdown(rows);
    std::fs::write(
        dir.join("comparison.md"),
        format!("# Comparison\n\n{table}"),
    )?;
    std::fs::write(dir.join("comparison.json"), json(rows)?)?;
    plot_robustness(rows, &dir.join("robust_accuracy.svg"))?;
    plot_losses(rows, &dir.join("loss_curves.svg"))?;
    plot_accuracy_vs_time(rows, &dir.join("accuracy_vs_time.svg"))?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rossl_runtime::train::TrainPlan;

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
            run_dir: PathBuf::from("runs/x"),
            summary,
            results,
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
}
