//! `rossl compare` (several method configs under the same overrides) and the `[compare]`
//! baselines of `rossl run` (the quickstart's random encoder and standard EMP-SSL).

use crate::commands::runner::{run_one, RunOptions, RunOutcome};
use crate::commands::session::{build, Session};
use crate::report::{check_protocols, write_comparison, Row, COMPARISON_FILES};
use clap::Args;
use rossl_runtime::config::ConfigSources;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `rossl compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Method config files: one row each.
    #[arg(value_name = "FILE", required = true)]
    pub methods: Vec<PathBuf>,
    /// Overlay files applied after every method file (e.g. configs/scale/cpu.toml).
    #[arg(long = "with", value_name = "FILE")]
    pub with: Vec<PathBuf>,
    /// Overrides applied to every method (TOML values).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Root folder of the runs; the comparison files go there too.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Make a failed sanity check an error exit.
    #[arg(long)]
    pub strict: bool,
    /// Put rows evaluated with different settings (attacks, radii, test images, evaluators) in
    /// one table, marked, instead of refusing.
    #[arg(long)]
    pub allow_mixed: bool,
}

fn row(session: &Session, outcome: RunOutcome, label: Option<&str>) -> anyhow::Result<Row> {
    let results = outcome
        .results
        .ok_or_else(|| anyhow::anyhow!("{} was not evaluated", outcome.run_dir.path().display()))?;
    let run = &session.assembly.config.run;
    let label = label
        .map(str::to_string)
        .or_else(|| (!run.compare.label.is_empty()).then(|| run.compare.label.clone()))
        .unwrap_or_else(|| run.method.name.clone());
    let row = Row::new(label, &outcome.run_dir, outcome.summary, results)?;
    Ok(match outcome.results_dir {
        Some(dir) => row.with_results_dir(dir),
        None => row,
    })
}

fn finish(rows: &[Row], dir: &Path, strict: bool, allow_mixed: bool) -> anyhow::Result<ExitCode> {
    check_protocols(rows, allow_mixed)?;
    let table = write_comparison(rows, dir)?;
    println!("\n{table}");
    println!(
        "comparison written to {} ({})",
        dir.display(),
        COMPARISON_FILES.join(", ")
    );
    let failed: usize = rows
        .iter()
        .map(|r| crate::terminal::failed_checks(&r.results))
        .sum();
    if strict && failed > 0 {
        eprintln!("error: {failed} sanity check(s) failed (strict mode)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the `[compare]` baselines of a run's configuration, if it has any, and writes the
/// comparison of the run with them into the run root.
pub fn run_baselines(
    session: &Session,
    strict: bool,
    allow_mixed: bool,
    outcome: &RunOutcome,
) -> anyhow::Result<Option<ExitCode>> {
    let baselines = session.assembly.config.run.compare.baselines.clone();
    if baselines.is_empty() {
        return Ok(None);
    }
    let Some(results) = outcome.results.clone() else {
        return Ok(None);
    };
    let main = RunOutcome {
        run_dir: outcome.run_dir.clone(),
        summary: outcome.summary.clone(),
        results: Some(results),
        results_dir: outcome.results_dir.clone(),
    };
    let mut rows = vec![row(session, main, None)?];
    for baseline in &baselines {
        println!("\n== baseline: {} ==", baseline.label);
        let mut sources = session.sources.clone();
        sources.sets.extend(baseline.set.iter().cloned());
        let baseline_session = build(sources)?;
        let outcome = run_one(&baseline_session, &RunOptions::default())?;
        rows.push(row(&baseline_session, outcome, Some(&baseline.label))?);
    }
    let dir = session.assembly.config.run.out.clone();
    finish(
        &rows,
        &dir,
        strict || session.assembly.config.run.eval.strict,
        allow_mixed,
    )
    .map(Some)
}

/// Runs `rossl compare`.
pub fn run(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    let mut out_dir = None;
    for method in &args.methods {
        println!("\n== {} ==", method.display());
        let mut files = vec![method.clone()];
        files.extend(args.with.iter().cloned());
        let mut sets = args.sets.clone();
        if let Some(out) = &args.out {
            sets.push(format!(
                "out={}",
                toml::Value::String(out.display().to_string())
            ));
        }
        let session = build(ConfigSources::new(files, sets))?;
        out_dir.get_or_insert_with(|| session.assembly.config.run.out.clone());
        let outcome = run_one(
            &session,
            &RunOptions {
                mark_latest: true,
                ..RunOptions::default()
            },
        )?;
        rows.push(row(&session, outcome, None)?);
    }
    let dir = out_dir.unwrap_or_else(|| PathBuf::from("runs"));
    finish(&rows, &dir, args.strict, args.allow_mixed)
}
