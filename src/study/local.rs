//! The local executor: each task a `rossl study --task` process, `jobs` at a time, the cores split
//! between them, each process's output in the study's `logs/`.

use super::plan::{Plan, StudyDir};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts task `index` as a child process writing to its log.
fn spawn(dir: &StudyDir, index: usize, threads: Option<usize>) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.log(index))?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("study")
        .arg("--plan")
        .arg(dir.plan())
        .arg("--task")
        .arg(index.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(threads) = threads {
        // a configuration layer (below `--set`): the cores are split between the jobs
        command.env("ROSSL_THREADS", threads.to_string());
    }
    Ok(command.spawn()?)
}

/// Runs the tasks `indices` of `plan`, `jobs` at a time; returns those that failed.
pub fn run_local(
    dir: &StudyDir,
    plan: &Plan,
    indices: &[usize],
    jobs: usize,
) -> anyhow::Result<Vec<usize>> {
    let jobs = jobs.max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (jobs > 1).then(|| (cores / jobs).max(1));
    tracing::info!(
        "running {} task(s) of study {} here, {jobs} at a time; each task's output: {}",
        indices.len(),
        plan.name,
        dir.root.join("logs").display()
    );
    let mut queue: std::collections::VecDeque<usize> = indices.iter().copied().collect();
    let mut running: Vec<(usize, Child, Instant)> = Vec::new();
    let (mut done, mut failed) = (0usize, Vec::new());
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < jobs {
            let Some(index) = queue.pop_front() else {
                break;
            };
            running.push((index, spawn(dir, index, threads)?, Instant::now()));
        }
        let mut still = Vec::new();
        for (index, mut child, started) in running {
            match child.try_wait()? {
                None => still.push((index, child, started)),
                Some(_) => {
                    done += 1;
                    let ok = dir.read_status(index)?.is_some_and(|s| s.ok);
                    if !ok {
                        failed.push(index);
                    }
                    let run = &plan.runs[index];
                    tracing::info!(
                        "[{done}/{}] task {index} ({}, seed {}): {} in {:.0} s{}",
                        indices.len(),
                        run.group,
                        run.seed,
                        if ok { "done" } else { "FAILED" },
                        started.elapsed().as_secs_f64(),
                        if ok {
                            String::new()
                        } else {
                            format!("; log: {}", dir.log(index).display())
                        }
                    );
                }
            }
        }
        running = still;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(failed)
}
