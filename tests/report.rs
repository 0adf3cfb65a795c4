//! `rossl report` over run folders written as the previous release wrote them (no training: the
//! run files are fixture strings), and the typed readers of those files.

mod common;
use common::process::rossl_in;
use common::temp_dir;
use rossl::rossl_runtime::run_dir::{parse_metrics, MetricsRecord, RunDir};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs `rossl` in `dir`: whether it succeeded, and its output.
fn rossl(args: &[&str], dir: &Path) -> (bool, String) {
    let finished = rossl_in(dir, args, Duration::from_secs(120));
    (finished.success, finished.output)
}

/// Metrics lines as the previous release wrote them: the epoch line without its loader wait,
/// the monitor line without its training seconds; and a torn last line.
const OLD_METRICS: &str = concat!(
    r#"{"kind":"step","step":1,"epoch":0,"batch":0,"loss":-2.5,"terms":{"tcr":-1.0},"lr":0.3,"grad_norm":1.5,"perturbation_linf":null,"perturbation_l2":null,"images_per_s":100.0,"forward_passes":1,"backward_passes":1,"seconds":0.5}"#,
    "\n",
    r#"{"kind":"monitor","step":1,"clean":0.5,"pgd":0.25,"eps":0.03137254901960784,"images":16,"seconds":0.1}"#,
    "\n",
    r#"{"backward_passes":2,"epoch":0,"forward_passes":2,"kind":"epoch","mean_loss":-2.75,"seconds":1.0,"step":2}"#,
    "\n",
    r#"{"kind":"step","step":3,"ep"#,
);

/// A `summary.json` of the previous release (no loader wait, monitor seconds or `complete`).
const OLD_SUMMARY: &str = r#"{
  "method": "METHOD", "regime": "free",
  "plan": {"passes": 1, "batches_per_pass": 1, "steps_per_batch": 2, "total_steps": 2, "horizon": 2},
  "epochs_budget": 2, "epochs": 1, "steps": 2, "forward_passes": 2, "backward_passes": 2,
  "seconds": 1.0, "final_loss": -3.0, "images_per_s": 100.0, "device": "cpu"
}"#;

/// A `results.json` of the previous release (no images or stage per attack, no protocol: the
/// protocol is added by [`run_folder`] where a test needs one).
const OLD_RESULTS: &str = r#"{
  "method": "METHOD", "dataset": "synthetic", "encoder": "resnet-small", "views": "multi-crop",
  "views_per_image": 4,
  "train": {"seconds": 1.0, "epochs": 1, "epochs_budget": 2, "steps": 2, "forward_passes": 2,
            "backward_passes": 2, "regime": "free"},
  "evaluations": [{
    "evaluator": "linear-probe", "clean_accuracy": 0.5,
    "robust": [{"attack": "pgd-linf/ce", "eps": 0.03137254901960784, "steps": 10, "accuracy": 0.25}],
    "worst_case": [{"eps": 0.03137254901960784, "accuracy": 0.25}],
    "checks": [], "test_images": 16, "threat_model": "linf", "seconds": 1.0
  }],
  "device": "cpu", "seed": 0, "config_digest": "a", "eval_digest": "b"PROTOCOL
}"#;

/// A run folder of method `method` in `dir`, evaluated with test subset `subset` when given.
fn run_folder(dir: &Path, method: &str, subset: Option<u32>) -> PathBuf {
    let run = dir.join(method);
    std::fs::create_dir_all(&run).unwrap();
    let protocol = subset.map_or(String::new(), |n| {
        format!(r#", "eval_protocol": {{"data.test_subset": "{n}"}}"#)
    });
    std::fs::write(run.join("config.toml"), "# written by `rossl run`\n").unwrap();
    std::fs::write(run.join("metrics.jsonl"), OLD_METRICS).unwrap();
    std::fs::write(
        run.join("summary.json"),
        OLD_SUMMARY.replace("METHOD", method),
    )
    .unwrap();
    std::fs::write(
        run.join("results.json"),
        OLD_RESULTS
            .replace("METHOD", method)
            .replace("PROTOCOL", &protocol),
    )
    .unwrap();
    run
}

#[test]
fn old_run_files_read_through_the_typed_readers() {
    let dir = temp_dir("report-old-files");
    let run = RunDir::open(&run_folder(&dir, "old", None)).unwrap();
    let summary = run.read_summary().unwrap().unwrap();
    assert!(summary.complete && summary.loader_wait_seconds == 0.0);
    let results = run.read_results().unwrap().unwrap();
    assert_eq!(results.evaluations[0].robust[0].images, 0);
    assert!(results.eval_protocol.is_empty());
    // the torn last line is left out; old epoch and monitor lines read with defaults
    let metrics = rossl::rossl_runtime::run_dir::read_metrics(&run).unwrap();
    assert_eq!(metrics.len(), 3);
    assert!(matches!(&metrics[1], MetricsRecord::Monitor(m) if m.pgd == 0.25));
    assert!(matches!(&metrics[2], MetricsRecord::Epoch(e) if e.step == 2 && e.mean_loss == -2.75));
    // a broken line that is not the last is refused, naming the file, the line and the field
    let broken = OLD_METRICS.replace(r#""mean_loss":-2.75,"#, "");
    let error = parse_metrics(&broken, Path::new("runs/x/metrics.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("runs/x/metrics.jsonl")
            && error.contains("line 3")
            && error.contains("mean_loss"),
        "{error}"
    );
    // a results.json missing a field is refused naming the file and the field
    std::fs::write(run.file("results.json"), r#"{"method": "x"}"#).unwrap();
    let error = run.read_results().unwrap_err().to_string();
    assert!(
        error.contains("results.json") && error.contains("dataset"),
        "{error}"
    );
}

#[test]
fn report_renders_run_folders_and_refuses_mixed_protocols() {
    let dir = temp_dir("report-command");
    let a = run_folder(&dir, "alpha", Some(100));
    let b = run_folder(&dir, "beta", Some(100));
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let out = dir.join("report").display().to_string();
    let (ok, said) = rossl(&["report", &a, &b, "--out", &out], &dir);
    assert!(ok, "{said}");
    assert!(
        said.contains("| alpha | 4 | free (m=2) | 1 | 50.00 | 25.00 |")
            && said.contains("| beta |"),
        "{said}"
    );
    for f in [
        "comparison.md",
        "comparison.json",
        "robust_accuracy.svg",
        "loss_curves.svg",
        "accuracy_vs_time.svg",
    ] {
        assert!(dir.join("report").join(f).is_file(), "{f}");
    }
    // the report's folder is a comparison folder, and renders again (default: a new folder)
    let (ok, said) = rossl(&["report", &out], &dir);
    assert!(ok && said.contains("| beta |"), "{said}");
    assert!(dir.join("report-2/comparison.md").is_file());
    // a report never writes into a run folder
    let inside = format!("{a}/report");
    let (ok, said) = rossl(&["report", &a, "--out", &inside], &dir);
    assert!(!ok && said.contains("run folder"), "{said}");
    assert!(!Path::new(&inside).exists());
    // rows evaluated on different test subsets are refused, unless --allow-mixed
    let c = run_folder(&dir, "gamma", Some(2000)).display().to_string();
    let mixed = dir.join("mixed").display().to_string();
    let (ok, said) = rossl(&["report", &a, &c, "--out", &mixed], &dir);
    assert!(
        !ok && said.contains("data.test_subset") && said.contains("--allow-mixed"),
        "{said}"
    );
    assert!(!dir.join("mixed").exists());
    let (ok, said) = rossl(&["report", &a, &c, "--out", &mixed, "--allow-mixed"], &dir);
    assert!(ok && said.contains("| gamma † |"), "{said}");
    // a folder of run folders: every evaluated run in it, by name (reports are not runs)
    let all = dir.join("all").display().to_string();
    let folder = dir.display().to_string();
    let (ok, said) = rossl(&["report", &folder, "--out", &all, "--allow-mixed"], &dir);
    assert!(ok && said.contains("report of 3 run(s)"), "{said}");
}
