//! `rossl report`: render finished runs (run folders, a study's folder, a comparison's folder, or
//! a folder of run folders) as one comparison table (Markdown, JSON) and its plots, through the
//! same code as `rossl compare`.

use crate::report::{check_protocols, collect, write_comparison, COMPARISON_FILES};
use clap::Args;
use rossl_runtime::run_dir::is_run_folder;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `rossl report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run folders, study folders, comparison folders, or folders of run folders.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// The folder the report is written to (default: a new folder `report`, `report-2`, ... in
    /// the current folder); never a run folder or a folder inside one.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Put rows evaluated with different settings (attacks, radii, test images, evaluators) in
    /// one table, marked, instead of refusing.
    #[arg(long)]
    pub allow_mixed: bool,
}

/// The run folder that `path` is, or lies inside, if any.
fn enclosing_run(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .ancestors()
        .find(|p| is_run_folder(p))
        .map(Path::to_path_buf)
}

/// The folder the report goes to: `--out` unless it is (inside) a run folder, else the first of
/// `report`, `report-2`, ... that does not exist.
fn out_folder(out: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(out) = out {
        if let Some(run) = enclosing_run(out) {
            anyhow::bail!(
                "--out {}: {} is a run folder, and a report never writes among a run's own files; name another folder",
                out.display(),
                run.display()
            );
        }
        return Ok(out.to_path_buf());
    }
    let mut n = 1;
    loop {
        let candidate = if n == 1 {
            PathBuf::from("report")
        } else {
            PathBuf::from(format!("report-{n}"))
        };
        if !candidate.exists() {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// Runs `rossl report`.
pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let rows = collect(&args.dirs)?;
    check_protocols(&rows, args.allow_mixed)?;
    let dir = out_folder(args.out.as_deref())?;
    let table = write_comparison(&rows, &dir)?;
    println!("{table}");
    println!(
        "report of {} run(s) written to {} ({})",
        rows.len(),
        dir.display(),
        COMPARISON_FILES.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
