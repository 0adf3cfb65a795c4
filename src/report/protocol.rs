//! The robust-SSL protocol's table: per method, the clean and robust accuracy under each
//! evaluation of the run (SLF, ALF and AFF, then any evaluator on a share of the labels or on a
//! transfer dataset), in the shape papers print.

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
            notes.push(format!("{}% labels", share_percent(data.label_fraction)));
        }
        if !notes.is_empty() {
            let _ = write!(label, " ({})", notes.join(", "));
        }
    }
    label
}

/// A share as a percentage with at most four decimals and no trailing zeros (0.07: `7`).
fn share_percent(share: f64) -> String {
    let text = format!("{:.4}", 100.0 * share);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
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

/// The protocol metrics of a run, in the order of its evaluations: `<label> clean`,
/// `<label> worst <eps>` (at the largest radius) and `<label> corruptions clean` of every
/// evaluation, as fractions.
pub fn metrics(row: &Row) -> Vec<(String, f64)> {
    let results = &row.results;
    let mut out = Vec::new();
    for e in &results.evaluations {
        let label = evaluation_label(e, &results.dataset);
        out.push((format!("{label} clean"), e.clean_accuracy));
        if let Some(w) = e.worst_case.iter().max_by(|a, b| a.eps.total_cmp(&b.eps)) {
            out.push((
                format!("{label} worst {}", row.eps_label(w.eps)),
                w.accuracy,
            ));
        }
        if let Some(c) = &e.corruptions {
            out.push((format!("{label} corruptions clean"), c.mean));
        }
    }
    out
}

/// Whether a run wants the protocol table ([`wanted`] of its evaluations).
pub fn row_wants(row: &Row) -> bool {
    wanted(&row.results.evaluations, &row.results.dataset)
}

/// The run-level protocol table of a comparison (empty when no row wants it), every row filled.
pub fn comparison_table(rows: &[Row]) -> String {
    if !rows.iter().any(row_wants) {
        return String::new();
    }
    let columns = columns(rows.iter().map(|r| metrics(r).into_iter().map(|(k, _)| k)));
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

/// The protocol table of a study: per group, each of `columns` (the protocol metrics in their
/// evaluations' order; empty when no run wants the table) summarised over seeds (its mean and
/// 95% interval), rendered by `cell`.
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

/// The protocol columns of a set of runs' metric names, in the order they first appear.
pub fn columns<K: IntoIterator<Item = String>>(runs: impl IntoIterator<Item = K>) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for run in runs {
        for key in run {
            if !columns.contains(&key) {
                columns.push(key);
            }
        }
    }
    columns
}

fn table_head(columns: &[String], first: &str) -> String {
    let mut md = "\n## The protocol\n\nClean and worst-case (largest radius) accuracy in % under \
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
