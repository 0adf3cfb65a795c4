//! Studies end to end through the binary: expansion, an equal-passes budget, aggregation over
//! seeds, resumption; and the Slurm executor against a real Slurm (a job array with failing
//! tasks, then `--resubmit-failed`). The Slurm test needs `sbatch` and a running cluster
//! (`.ci/slurm-up`); with `SLURM_TEST=required` (as `.ci/run` sets) their absence fails it.

mod common;
use common::process::{run_watched, Finished, Output};
use common::{temp_dir, write, TINY};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn rossl(args: &[&str], cwd: &Path) -> Finished {
    run_watched(
        Path::new(env!("CARGO_BIN_EXE_rossl")),
        args,
        cwd,
        &[],
        Output::File,
        Duration::from_secs(600),
    )
}

fn study_file(dir: &Path, budget: &str, arms: &str, extra: &str) -> PathBuf {
    write(dir, "tiny.toml", TINY);
    write(
        dir,
        "study.toml",
        &format!(
            "[study]\nname = \"tiny\"\ndescription = \"a test study\"\nseeds = [0, 1]\n\n[budget]\n{budget}\n\n{arms}\n{extra}"
        ),
    )
}

const TWO_ARMS: &str = r#"
[[arm]]
label = "pgd"
configs = ["tiny.toml"]
set = ["train.regime=\"pgd\"", "train.attack.pgd-linf.steps=3"]

[[arm]]
label = "free"
configs = ["tiny.toml"]
set = ["train.regime=\"free\""]
"#;

#[test]
fn a_local_study_gives_every_arm_the_same_passes_and_resumes() {
    let dir = temp_dir("study-local");
    let file = study_file(&dir, "mode = \"passes\"\nreference = \"pgd\"", TWO_ARMS, "");
    let out = dir.join("out");
    let args = [
        "study",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
    ];
    let first = rossl(&args, &dir);
    assert!(first.success, "{}", first.output);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("study.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    // equal passes: PGD-3 costs 8 passes a step (4 forward, 4 backward), free training 2
    let passes: Vec<f64> = runs
        .iter()
        .map(|r| r["values"]["passes"].as_f64().unwrap())
        .collect();
    assert!(passes.iter().all(|p| *p == passes[0]), "{passes:?}");
    let steps = |arm: &str| {
        runs.iter().find(|r| r["arm"] == arm).unwrap()["values"]["steps"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(steps("free"), 4.0 * steps("pgd"));
    // per-group statistics over the two seeds, and the paired difference free - pgd
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["stats"]["clean"]["n"], 2);
    assert!(json["paired"][0]["differences"]["clean"]["mean"].is_number());
    for f in ["study.md", "tradeoff.svg", "frontier.svg", "plan.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("study.md")).unwrap();
    assert!(
        md.contains("| free − pgd |") && md.contains("## Calibration"),
        "{md}"
    );
    // `rossl report` renders the study's runs, one row per run
    let report = dir.join("report");
    let rendered = rossl(
        &[
            "report",
            out.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(rendered.success, "{}", rendered.output);
    let table = std::fs::read_to_string(report.join("comparison.md")).unwrap();
    assert!(table.contains("| free (seed 1) |"), "{table}");
    // the same command again resumes the same plan: nothing is trained again
    let again = rossl(&args, &dir);
    assert!(
        again.success
            && again
                .output
                .contains("every task of the study has finished"),
        "{}",
        again.output
    );
    // a run folder moved away (to train it again) makes its task pending: the next command
    // trains that run alone and the report has every run again
    let moved = runs[0]["run_dir"].as_str().unwrap();
    std::fs::rename(moved, format!("{moved}.old")).unwrap();
    let rerun = rossl(&args, &dir);
    assert!(
        rerun.success && rerun.output.contains("running 1 task(s)"),
        "{}",
        rerun.output
    );
    assert!(Path::new(moved).join("results.json").is_file());
    // a time budget with two jobs at once is refused before anything is calibrated: each run
    // would get half the machine it was calibrated on
    let timed = dir.join("timed");
    let refused = rossl(
        &[
            "study",
            file.to_str().unwrap(),
            "--out",
            timed.to_str().unwrap(),
            "--budget",
            "time",
            "--jobs",
            "2",
        ],
        &dir,
    );
    assert!(
        !refused.success && refused.output.contains("Run it with --jobs 1"),
        "{}",
        refused.output
    );
    assert!(!timed.join("calibration").exists() && !timed.join("plan.json").exists());
}

#[test]
fn study_files_with_mistakes_are_refused_naming_the_key() {
    let dir = temp_dir("study-errors");
    let file = study_file(&dir, "mode = \"passes\"", TWO_ARMS, "");
    let finished = rossl(&["study", file.to_str().unwrap(), "--dry-run"], &dir);
    assert!(
        !finished.success && finished.output.contains("budget.reference"),
        "{}",
        finished.output
    );
    let file = study_file(&dir, "mode = \"steps\"\nmodes = 3", TWO_ARMS, "");
    let finished = rossl(&["study", file.to_str().unwrap(), "--dry-run"], &dir);
    assert!(
        !finished.success && finished.output.contains("modes"),
        "{}",
        finished.output
    );
    // a dry run prints the runs without running them
    let file = study_file(&dir, "mode = \"steps\"", TWO_ARMS, "");
    let finished = rossl(&["study", file.to_str().unwrap(), "--dry-run"], &dir);
    assert!(
        finished.success && finished.output.contains("task 3 [free, seed 1]"),
        "{}",
        finished.output
    );
}

/// CIFAR-10 files of 20 images each, for the arm that fails until they exist.
fn write_cifar(folder: &Path) {
    std::fs::create_dir_all(folder).unwrap();
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend((0..3072).map(|p| (p % 251) as u8 ^ label));
        r
    };
    for name in (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(["test_batch.bin".to_string()])
    {
        let bytes: Vec<u8> = (0..20).flat_map(|i| record((i % 10) as u8)).collect();
        std::fs::write(folder.join(name), bytes).unwrap();
    }
}

#[test]
fn a_slurm_study_runs_as_a_job_array_and_resubmits_its_failed_tasks() {
    let has_slurm = std::process::Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_slurm {
        assert!(
            std::env::var("SLURM_TEST").as_deref() != Ok("required"),
            "SLURM_TEST=required but no Slurm cluster answers (start one with .ci/slurm-up)"
        );
        eprintln!("no Slurm cluster here: the Slurm study test did not run");
        return;
    }
    let dir = temp_dir("study-slurm");
    let cifar = dir.join("cifar");
    let arms = format!(
        "{TWO_ARMS}\n[[arm]]\nlabel = \"cifar\"\nconfigs = [\"tiny.toml\"]\nset = ['data.name=\"cifar10\"', 'data.cifar10.root=\"{}\"', 'data.train_subset=40']\n",
        cifar.display()
    );
    let slurm = "[slurm]\ncpus_per_task = 1\nmem = \"1G\"\ntime = \"00:10:00\"\npoll_seconds = 1\n";
    let file = study_file(&dir, "mode = \"steps\"", &arms, slurm);
    let out = dir.join("out");
    let args = [
        "study",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--executor",
        "slurm",
    ];
    // the CIFAR arm's data is missing: its two tasks fail, the four others finish
    let first = rossl(&args, &dir);
    assert!(!first.success, "{}", first.output);
    assert!(
        first.output.contains("2 task(s) failed") && first.output.contains("--resubmit-failed"),
        "{}",
        first.output
    );
    let md = std::fs::read_to_string(out.join("study.md")).unwrap();
    assert!(
        md.contains("## Failed tasks") && md.contains("logs/task-4.log"),
        "{md}"
    );
    assert!(out.join("study.sbatch").is_file());
    // with the data in place, only the failed tasks run again
    write_cifar(&cifar);
    let mut again = args.to_vec();
    again.push("--resubmit-failed");
    let second = rossl(&again, &dir);
    assert!(second.success, "{}", second.output);
    assert!(
        second.output.contains("submitted 2 task(s)"),
        "{}",
        second.output
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("study.json")).unwrap()).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 6);
    assert!(json["failed"].as_array().unwrap().is_empty());
}
