//! The Slurm executor: one `sbatch` job array (a task per run, `rossl study --task` on the plan),
//! followed with `squeue` until every task has ended; a task that left no status (killed for
//! its time or memory, say) counts as failed.

use super::plan::{Plan, StudyDir};
use super::spec::SlurmSettings;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `0-4` for consecutive indices from 0, else `0,3,5`.
fn array_spec(indices: &[usize]) -> String {
    let consecutive = indices.iter().enumerate().all(|(i, &x)| i == x);
    match (consecutive, indices.last()) {
        (true, Some(last)) if indices.len() > 1 => format!("0-{last}"),
        _ => indices
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The batch script of a job array over `indices`.
pub fn script(plan: &Plan, dir: &StudyDir, indices: &[usize], rossl: &Path) -> String {
    let s: &SlurmSettings = &plan.slurm;
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name=rossl-{}", plan.name),
        format!("#SBATCH --array={}", array_spec(indices)),
        format!(
            "#SBATCH --output={}/task-%a.log",
            absolute(&dir.root.join("logs"))
        ),
        format!("#SBATCH --cpus-per-task={}", s.cpus_per_task),
        format!("#SBATCH --mem={}", s.mem),
        format!("#SBATCH --time={}", s.time),
    ];
    if let Some(partition) = &s.partition {
        lines.push(format!("#SBATCH --partition={partition}"));
    }
    if s.gpus > 0 {
        lines.push(format!("#SBATCH --gres=gpu:{}", s.gpus));
    }
    lines.extend(s.extra.iter().map(|e| format!("#SBATCH {e}")));
    lines.push(String::new());
    lines.push("# each run uses the CPUs of its task".into());
    lines.push("export ROSSL_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"".into());
    lines.push(format!(
        "exec '{}' study --plan '{}' --task \"$SLURM_ARRAY_TASK_ID\"",
        absolute(rossl),
        absolute(&dir.plan())
    ));
    lines.join("\n") + "\n"
}

/// Runs `program args`, returning its standard output; an error says what failed and how.
fn command(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        anyhow::anyhow!("cannot run `{program}` ({e}): is Slurm installed and on PATH?")
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until job `id` has no task left in `squeue`.
fn wait(id: &str, poll: Duration) -> anyhow::Result<()> {
    let mut last = String::new();
    loop {
        // an ended job is soon unknown to squeue: an error means it has ended
        let listed = command("squeue", &["-h", "-j", id, "-o", "%T"]).unwrap_or_default();
        let states: Vec<&str> = listed
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if states.is_empty() {
            return Ok(());
        }
        let summary = format!(
            "{} pending, {} running",
            states.iter().filter(|s| **s == "PENDING").count(),
            states.iter().filter(|s| **s == "RUNNING").count()
        );
        if summary != last {
            tracing::info!("slurm job {id}: {summary}");
            last = summary;
        }
        std::thread::sleep(poll);
    }
}

/// Submits the tasks `indices` of `plan` as one job array and follows it to its end; returns the
/// tasks that failed. With `dry_run`, prints the script instead.
pub fn run_slurm(
    dir: &StudyDir,
    plan: &Plan,
    indices: &[usize],
    dry_run: bool,
) -> anyhow::Result<Vec<usize>> {
    let text = script(plan, dir, indices, &std::env::current_exe()?);
    if dry_run {
        print!("{text}");
        return Ok(Vec::new());
    }
    let path = dir.root.join("study.sbatch");
    std::fs::write(&path, &text)?;
    let id = command("sbatch", &["--parsable", &absolute(&path)])?;
    let id = id.trim().split(';').next().unwrap_or_default().to_string();
    tracing::info!(
        "submitted {} task(s) as slurm job {id} ({})",
        indices.len(),
        path.display()
    );
    wait(&id, Duration::from_secs(plan.slurm.poll_seconds.max(1)))?;
    let mut failed = Vec::new();
    for &index in indices {
        if !dir.read_status(index)?.is_some_and(|s| s.ok) {
            failed.push(index);
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_ranges_or_lists() {
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[1, 4]), "1,4");
        assert_eq!(array_spec(&[0]), "0");
    }
}
