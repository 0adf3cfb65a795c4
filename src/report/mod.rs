//! Reports over finished runs, read through the run folder's typed readers: the one place that
//! renders tables and plots, for `rossl compare`, `rossl study` and `rossl report`.
//!
//! - [`runs`]: the runs of a report ([`Row`]), from run, study or comparison folders, and the
//!   check that they were evaluated alike;
//! - [`table`]: the Markdown tables, run-level (a comparison) and aggregated over seeds (a
//!   study), sharing their columns and radius labels;
//! - [`stats`]: each run's metrics, intervals over seeds and paired differences;
//! - [`protocol`]: the robust-SSL protocol's table (SLF, ALF, AFF, label shares, transfer);
//! - [`plots`]: the SVG plots of both.
//!
//! A comparison's files are `comparison.md`, `comparison.json`, `robust_accuracy.svg`,
//! `loss_curves.svg` and `accuracy_vs_time.svg` ([`write_comparison`]).

pub mod plots;
pub mod protocol;
pub mod runs;
pub mod stats;
pub mod table;

pub use runs::{check_protocols, collect, Row};

use std::path::Path;

/// The files [`write_comparison`] writes, in order.
pub const COMPARISON_FILES: [&str; 5] = [
    "comparison.md",
    runs::COMPARISON_JSON,
    "robust_accuracy.svg",
    "loss_curves.svg",
    "accuracy_vs_time.svg",
];

pub use rossl_runtime::run_dir::eps_label;

/// Writes `comparison.md`, `comparison.json` and the three plots of `rows` into `dir`; returns
/// the Markdown table.
pub fn write_comparison(rows: &[Row], dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let [md, json, robustness, losses, vs_time] = COMPARISON_FILES.map(|name| dir.join(name));
    let table = table::markdown(rows);
    std::fs::write(&md, format!("# Comparison\n\n{table}"))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", md.display()))?;
    std::fs::write(&json, table::json(rows)?)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", json.display()))?;
    plots::plot_robustness(rows, &robustness)?;
    plots::plot_losses(rows, &losses)?;
    plots::plot_accuracy_vs_time(rows, &vs_time)?;
    Ok(table)
}
