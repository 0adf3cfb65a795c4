//! Run folders as users meet them after training: a run trained at test size is evaluated on the
//! whole test split (the test subset is an evaluation setting), and its results and result card
//! say so; that evaluation goes beside the run's own, which stays as it was.

mod common;

use common::process::rossl_in;
use common::{temp_dir, write, TINY};
use rossl::rossl_runtime::eval::Results;
use rossl::rossl_runtime::run_dir::{CardEntry, RunDir};
use std::path::Path;
use std::time::Duration;

fn rossl(dir: &Path, args: &[&str]) -> common::process::Finished {
    rossl_in(dir, args, Duration::from_secs(300))
}

fn results(folder: &Path) -> Results {
    let text = std::fs::read_to_string(folder.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("typed results")
}

/// `finished` succeeded and said `text`.
fn assert_says(finished: &common::process::Finished, text: &str) {
    assert!(
        finished.success && finished.output.contains(text),
        "{}",
        finished.output
    );
}

/// The bytes of the files a run's own evaluation wrote.
fn own_evaluation(run: &Path) -> Vec<Vec<u8>> {
    [
        "results.json",
        "robustbench.json",
        "probe-linear-probe.safetensors",
    ]
    .iter()
    .map(|f| std::fs::read(run.join(f)).expect(f))
    .collect()
}

#[test]
fn a_run_trained_on_a_test_subset_is_evaluated_on_the_whole_test_split() {
    let dir = temp_dir("test-subset");
    write(&dir, "tiny.toml", &format!("out = \"runs\"\n{TINY}"));
    let trained = rossl(&dir, &["run", "tiny.toml", "--set", "data.test_subset=20"]);
    assert!(trained.success, "{}", trained.output);
    let run = dir
        .join("runs")
        .join(std::fs::read_link(dir.join("runs/latest")).unwrap());
    let first = results(&run);
    assert_eq!(first.test_subset, 20);
    assert!(first.evaluations.iter().all(|e| e.test_images == 20));
    let checkpoint = std::fs::read(run.join("checkpoint.safetensors")).unwrap();

    // the same configuration at another test subset is the same trained encoder: same folder
    let other = rossl(
        &dir,
        &[
            "run",
            "tiny.toml",
            "--set",
            "data.test_subset=8",
            "--no-eval",
        ],
    );
    assert!(
        other.success && other.output.contains("reusing it"),
        "{}",
        other.output
    );

    let run_arg = run.display().to_string();
    let own = own_evaluation(&run);
    let whole = rossl(&dir, &["eval", &run_arg, "--set", "data.test_subset=0"]);
    assert!(whole.success, "{}", whole.output);
    // the run's own evaluation is kept as it was; this one has its own folder, named by its
    // settings, which `rossl report` reads like a run folder
    assert_eq!(own_evaluation(&run), own);
    let folders: Vec<_> = std::fs::read_dir(run.join("evaluations"))
        .expect("an evaluations folder")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let evaluation = &folders[0];
    let written = evaluation.join("results.json");
    assert_says(&whole, &format!("results written to {}", written.display()));
    let second = results(evaluation);
    assert_eq!(
        evaluation.file_name().unwrap().to_string_lossy(),
        second.eval_digest
    );
    assert_eq!(second.test_subset, 0);
    // the synthetic test split of TINY holds 40 images
    assert!(second.evaluations.iter().all(|e| e.test_images == 40));
    assert_eq!(second.config_digest, first.config_digest);
    assert_eq!(
        second
            .eval_protocol
            .get("data.test_subset")
            .map(String::as_str),
        Some("0")
    );
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        checkpoint
    );
    assert_card_matches(evaluation, &second);

    // the same settings again, and the run's own: each found, nothing computed or written again
    // (but a lost card, written again from the results)
    std::fs::remove_file(evaluation.join("robustbench.json")).unwrap();
    let again = rossl(&dir, &["eval", &run_arg, "--set", "data.test_subset=0"]);
    assert_says(&again, "already evaluated with these settings");
    let own_again = rossl(&dir, &["eval", &run_arg]);
    let own_file = run.join("results.json");
    assert_says(
        &own_again,
        &format!(
            "already evaluated with these settings: {}",
            own_file.display()
        ),
    );
    assert_eq!(own_evaluation(&run), own);
    assert_card_matches(evaluation, &second);
    let report = rossl(
        &dir,
        &[
            "report",
            &evaluation.display().to_string(),
            "--out",
            "report",
        ],
    );
    assert!(report.success, "{}", report.output);
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/comparison.json")).unwrap())
            .unwrap();
    assert_eq!(listed[0]["test_subset"], 0);
    assert_eq!(
        listed[0]["results_dir"].as_str(),
        Some(evaluation.display().to_string().as_str())
    );

    // `rossl run` of the same training with other evaluation settings reuses the encoder and
    // evaluates beside the run's own evaluation as well
    let rerun = rossl(&dir, &["run", "tiny.toml", "--set", "data.test_subset=8"]);
    assert_says(&rerun, "kept as they are");
    assert_eq!(own_evaluation(&run), own);
    assert_eq!(
        std::fs::read_dir(run.join("evaluations")).unwrap().count(),
        2
    );
}

/// The result card beside `results.json` holds one entry per evaluator and radius, with the
/// same figures in RobustBench's form.
fn assert_card_matches(evaluation: &Path, results: &Results) {
    let card: Vec<CardEntry> = RunDir::open_evaluation(evaluation)
        .and_then(|dir| dir.read_card())
        .expect("a readable card")
        .expect("robustbench.json beside results.json");
    let expected: Vec<(String, f64, f64, f64)> = results
        .evaluations
        .iter()
        .flat_map(|e| {
            e.worst_case
                .iter()
                .map(|w| (e.evaluator.clone(), w.eps, e.clean_accuracy, w.accuracy))
        })
        .collect();
    assert_eq!(card.len(), expected.len());
    for (entry, (evaluator, eps, clean, robust)) in card.iter().zip(&expected) {
        assert_eq!(&entry.ssl.evaluator, evaluator);
        assert_eq!(entry.clean_acc, format!("{:.2}", 100.0 * clean));
        assert_eq!(entry.robust_acc, format!("{:.2}", 100.0 * robust));
        let k = (eps * 255.0).round() as i64;
        assert_eq!(entry.eps, format!("{k}/255"));
        assert_eq!(entry.number_forward_passes, 1);
        assert_eq!(entry.autoattack_acc, None);
        assert!(
            !entry.additional_data,
            "evaluated on the pre-training dataset"
        );
        // the breaks of the same evaluator's smaller radii count here
        let smaller: Vec<String> = expected
            .iter()
            .filter(|(other, e, ..)| other == evaluator && e < eps)
            .map(|(_, e, ..)| format!("{}/255", (e * 255.0).round() as i64))
            .collect();
        assert_eq!(entry.ssl.breaks_carried_from, smaller);
        assert_eq!(entry.ssl.config_digest, results.config_digest);
        assert_eq!(entry.ssl.forward_passes, results.train.forward_passes);
        assert_eq!(entry.test_images, 40);
    }
}
