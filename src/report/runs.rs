//! The runs a report is made of, read through the run folder's typed readers: one [`Row`] per
//! finished run, from run folders, a study's folder (its `study.json`) or a comparison's folder
//! (its `comparison.json`); and the evaluation settings on which rows disagree.

use rossl_runtime::eval::Results;
use rossl_runtime::run_dir::{
    is_run_folder, read_metrics, run_of_evaluation, MetricsRecord, RunDir,
};
use rossl_runtime::train::TrainSummary;
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The file of a comparison's folder that lists its rows.
pub const COMPARISON_JSON: &str = "comparison.json";
/// The file of a study's folder that lists its runs.
pub const STUDY_JSON: &str = "study.json";

/// One finished run in a report: its label, folder, training summary, evaluation and metrics.
#[derive(Clone, Debug)]
pub struct Row {
    /// Its label.
    pub label: String,
    /// Its run folder.
    pub run_dir: PathBuf,
    /// The folder of its `results.json`: the run folder, or one of its `evaluations/` folders
    /// (an evaluation under other settings than the run's own).
    pub results_dir: PathBuf,
    /// Its training summary.
    pub summary: TrainSummary,
    /// Its evaluation.
    pub results: Results,
    /// Its `metrics.jsonl`.
    pub metrics: Vec<MetricsRecord>,
}

impl Row {
    /// The row of a run whose summary and results are at hand (its metrics are read).
    pub fn new(
        label: String,
        run_dir: &RunDir,
        summary: TrainSummary,
        results: Results,
    ) -> anyhow::Result<Self> {
        Ok(Row {
            label,
            run_dir: run_dir.path().to_path_buf(),
            results_dir: run_dir.path().to_path_buf(),
            summary,
            results,
            metrics: read_metrics(run_dir)?,
        })
    }

    /// The same row, its results read from `dir` (see [`Row::results_dir`]).
    pub fn with_results_dir(self, dir: PathBuf) -> Self {
        Row {
            results_dir: dir,
            ..self
        }
    }

    /// The row of the finished run in folder `dir`, labelled `label` (default: its method); `dir`
    /// may also be one of a run's evaluation folders (`<run>/evaluations/<digest>`), whose
    /// results the row then shows.
    pub fn read(dir: &Path, label: Option<String>) -> anyhow::Result<Self> {
        match run_of_evaluation(dir) {
            Some(run) => Row::read_results_of(&run, dir, label),
            None => Row::read_results_of(dir, dir, label),
        }
    }

    /// The row of the finished run in folder `dir`, its results read from folder `results_dir`
    /// (`dir` itself or one of its evaluation folders).
    fn read_results_of(
        dir: &Path,
        results_dir: &Path,
        label: Option<String>,
    ) -> anyhow::Result<Self> {
        let run_dir = RunDir::open(dir)?;
        let summary = run_dir.read_summary()?.ok_or_else(|| {
            anyhow::anyhow!("{} has not finished training (no summary)", dir.display())
        })?;
        let source = if results_dir == dir {
            run_dir.clone()
        } else {
            RunDir::open_evaluation(results_dir)?
        };
        let results = source.read_results()?.ok_or_else(|| {
            anyhow::anyhow!(
                "{} has not been evaluated: run `rossl eval {}` first",
                results_dir.display(),
                dir.display()
            )
        })?;
        let label = label.unwrap_or_else(|| results.method.clone());
        Ok(
            Row::new(label, &run_dir, summary, results)?
                .with_results_dir(results_dir.to_path_buf()),
        )
    }

    /// Whether the row's evaluation measured L2 radii (`eval.norm = "l2"`), not L-infinity.
    pub fn is_l2(&self) -> bool {
        self.results.is_l2()
    }

    /// The label of radius `eps` in the row's norm: `k/255` (or the number) for L-infinity, the
    /// number for L2 (`0.5`).
    pub fn eps_label(&self, eps: f64) -> String {
        self.results.eps_text(eps)
    }

    /// (step, loss) of every logged optimiser step of the run.
    pub fn loss_curve(&self) -> Vec<(f64, f64)> {
        self.metrics
            .iter()
            .filter_map(|m| match m {
                MetricsRecord::Step(s) => Some((s.step as f64, s.loss)),
                _ => None,
            })
            .collect()
    }

    /// (step, clean, PGD accuracy) of every report of the online monitor.
    pub fn monitor(&self) -> Vec<(usize, f64, f64)> {
        self.metrics
            .iter()
            .filter_map(|m| match m {
                MetricsRecord::Monitor(r) => Some((r.step, r.clean, r.pgd)),
                _ => None,
            })
            .collect()
    }
}

/// The norm the rows' radii are measured in, for a report's words: `L-infinity`, `L2`, or both
/// when the rows differ.
pub fn norm_words(rows: &[Row]) -> &'static str {
    match (rows.iter().any(Row::is_l2), rows.iter().all(Row::is_l2)) {
        (true, true) => "L2",
        (true, false) => "L-infinity or L2, as each row's `eval.norm` says",
        _ => "L-infinity",
    }
}

/// The label of radius `eps` in the first row's norm (see [`Row::eps_label`]).
pub fn first_row_eps_label(rows: &[Row], eps: f64) -> String {
    rows.first()
        .map_or_else(|| super::eps_label(eps), |r| r.eps_label(eps))
}

/// The radii measured in the first row's first evaluation, in increasing order.
pub fn radii(rows: &[Row]) -> Vec<f64> {
    let mut eps: Vec<f64> = rows
        .first()
        .and_then(|r| r.results.evaluations.first())
        .map(|e| e.worst_case.iter().map(|w| w.eps).collect())
        .unwrap_or_default();
    eps.sort_by(f64::total_cmp);
    eps
}

/// One entry of a `comparison.json` or of a `study.json`'s runs: what a report needs of it.
#[derive(Deserialize)]
struct Listed {
    /// The row's label (comparisons).
    label: Option<String>,
    /// The group (studies).
    group: Option<String>,
    /// The seed (studies).
    seed: Option<u64>,
    /// The run folder.
    run_dir: PathBuf,
    /// The folder of the results the entry shows, when not the run folder (one of its
    /// evaluation folders).
    #[serde(default)]
    results_dir: Option<PathBuf>,
}

/// A `study.json`: its runs.
#[derive(Deserialize)]
struct StudyRuns {
    runs: Vec<Listed>,
}

/// The runs listed in `file` (a `comparison.json` or a `study.json`) as (label, folder).
fn listed(file: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let parse = |e: serde_json::Error| anyhow::anyhow!("{} is not readable: {e}", file.display());
    let entries: Vec<Listed> = if file.ends_with(STUDY_JSON) {
        serde_json::from_str::<StudyRuns>(&text)
            .map_err(parse)?
            .runs
    } else {
        serde_json::from_str(&text).map_err(parse)?
    };
    Ok(entries
        .into_iter()
        .map(|e| {
            let label = match (e.label, e.group, e.seed) {
                (Some(label), _, _) => label,
                (None, Some(group), Some(seed)) => format!("{group} (seed {seed})"),
                (None, Some(group), None) => group,
                (None, None, _) => e.run_dir.display().to_string(),
            };
            (label, e.results_dir.unwrap_or(e.run_dir))
        })
        .collect())
}

/// The rows of `dirs`: each a run folder, a study's folder, a comparison's folder, or a folder
/// of run folders (every evaluated run in it, by name).
pub fn collect(dirs: &[PathBuf]) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for dir in dirs {
        anyhow::ensure!(
            dir.is_dir(),
            "{} is not a folder (a run, study or comparison folder)",
            dir.display()
        );
        if is_run_folder(dir) || run_of_evaluation(dir).is_some() {
            rows.push(Row::read(dir, None)?);
        } else if let Some(file) = [STUDY_JSON, COMPARISON_JSON]
            .into_iter()
            .map(|name| dir.join(name))
            .find(|file| file.is_file())
        {
            for (label, run_dir) in listed(&file)? {
                rows.push(Row::read(&run_dir, Some(label))?);
            }
        } else {
            rows.extend(runs_inside(dir)?);
        }
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "no evaluated run in {}",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(rows)
}

/// The evaluated runs directly inside `dir`, by folder name.
fn runs_inside(dir: &Path) -> anyhow::Result<Vec<Row>> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("listing {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| path.is_dir() && !path.is_symlink())
        .filter(|path| RunDir::open(path).is_ok_and(|r| r.is_evaluated()))
        .collect();
    folders.sort();
    folders.iter().map(|f| Row::read(f, None)).collect()
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

/// Refuses rows evaluated with different settings unless `allow_mixed`, when it warns instead
/// (the table marks them).
pub fn check_protocols(rows: &[Row], allow_mixed: bool) -> anyhow::Result<()> {
    let differences = protocol_differences(rows);
    if differences.is_empty() {
        return Ok(());
    }
    let listed = describe_differences(rows, &differences);
    if !allow_mixed {
        anyhow::bail!(
            "the rows were evaluated with different settings, so their numbers are not comparable:\n{listed}evaluate them alike (for example `rossl eval RUN_DIR --set ...`), or pass --allow-mixed to put them in one table, marked"
        );
    }
    eprintln!("warning: rows evaluated with different settings (marked † in the table):\n{listed}");
    Ok(())
}
