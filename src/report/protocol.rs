//! The robust-SSL protocol's table: per method, the clean and robust accuracy under each
//! evaluation of the run (SLF, ALF and AFF, then any evaluator on a share of the labels or on a
//! transfer dataset), in the shape papers print.

use super::eps_label;
use super::runs::Row;
use rossl_runtime::config::ProtocolMode;
use rossl_runtime::eval::EvaluationReport;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The column label of an evaluation: its protocol mode (`SLF`, `ALF`, `AFF`) or evaluator
/// name, then the transfer dataset and label share when they differ from the run's.
pub fn evaluation_label(e: &EvaluationReport, run_dataset: &str) -> String {
    let mut label = ProtocolMode::of_evaluator(&e.evaluator)
        .map(|m| m.label().to_string())
        .unwrap_or_else(|| e.evaluator.clone());
    if let Some(data) = &e.data {
        let mut notes = Vec::new();
        if data.dataset != run_dataset {
            notes.push(format!("on {}", data.dataset));
        }
        if data.label_fraction < 1.0 {
            notes.push(format!("{}% labels", 100.0 * data.label_fraction));
        }
        if !notes.is_empty() {
            let _ = write!(label, " ({})", notes.join(", "));
        }
    }
    label
}

/// Whether a run's evaluations call for the protocol table: more than one evaluation, one with
/// corruption accuracies, or one on a share of the labels or another dataset.
pub fn wanted(evaluations: &[EvaluationReport], run_dataset: &str) -> bool {
    evaluations.len() > 1
        || evaluations.iter().any(|e| e.corruptions.is_some())
        || evaluations.iter().any(|e| {
            e.data
                .as_ref()
                .is_some_and(|d| d.label_fraction < 1.0 || d.dataset != run_dataset)
        })
}

/// The protocol metrics of a run: `<label> clean` and `<label> worst <eps>` (at the largest
/// radius) of every evaluation, as fractions; empty when the protocol table is not wanted.
pub fn metrics(row: &Row) -> Vec<(String, f64)> {
    let results = &row.results;
    if !wanted(&results.evaluations, &results.dataset) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for e in &results.evaluations {
        let label = evaluation_label(e, &results.dataset);
        out.push((format!("{label} clean"), e.clean_accuracy));
        if let Some(w) = e.worst_case.iter().max_by(|a, b| a.eps.total_cmp(&b.eps)) {
            out.push((format!("{label} worst {}", eps_label(w.eps)), w.accuracy));
        }
        if let Some(c) = &e.corruptions {
            out.push((format!("{label} corruptions clean"), c.mean));
        }
    }
    out
}

/// The run-level protocol table of a comparison (empty when no row wants it).
pub fn comparison_table(rows: &[Row]) -> String {
    let columns = columns(rows.iter().map(metrics));
    if columns.is_empty() {
        return String::new();
    }
    let mut md = table_head(&columns, "method");
    for row in rows {
        let values: BTreeMap<String, f64> = metrics(row).into_iter().collect();
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                values
                    .get(c)
                    .map_or_else(|| "-".into(), |v| format!("{:.2}", 100.0 * v))
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", row.label, cells.join(" | "));
    }
    md.push('\n');
    md
}

/// The protocol table of a study: per group, each protocol metric's summary over seeds (its
/// mean and 95% interval), rendered by `cell` (empty when no run wants it).
pub fn study_table<S>(
    groups: &[(String, BTreeMap<String, S>)],
    columns: &[String],
    cell: impl Fn(&str, &S) -> String,
) -> String {
    if columns.is_empty() {
        return String::new();
    }
    let mut md = table_head(columns, "group");
    for (group, stats) in groups {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| stats.get(c).map_or_else(|| "-".into(), |s| cell(c, s)))
            .collect();
        let _ = writeln!(md, "| {group} | {} |", cells.join(" | "));
    }
    md.push('\n');
    md
}

/// The protocol columns of a set of runs' metrics, in the order they first appear.
pub fn columns(metrics: impl IntoIterator<Item = Vec<(String, f64)>>) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for run in metrics {
        for (key, _) in run {
            if !columns.contains(&key) {
                columns.push(key);
            }
        }
    }
    columns
}

fn table_head(columns: &[String], first: &str) -> String {
    let mut md = "## The protocol\n\nClean and worst-case (largest radius) accuracy in % under \
                  each evaluation: SLF (standard linear fine-tuning, `linear-probe`), ALF \
                  (adversarial linear fine-tuning, `robust-linear-probe`), AFF (adversarial full \
                  fine-tuning, `finetune`), then any other evaluator; a label share or transfer \
                  dataset is named in parentheses; `corruptions clean` is the mean accuracy under \
                  common corruptions.\n\n"
        .to_string();
    let _ = writeln!(md, "| {first} | {} |", columns.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(columns.len()));
    md
}
