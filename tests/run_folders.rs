//! Run folders as users meet them after training: a run trained at test size is evaluated on the
//! whole test split (the test subset is an evaluation setting), and its results and result card
//! say so.

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

fn results(run: &Path) -> Results {
    let text = std::fs::read_to_string(run.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("typed results")
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
    let whole = rossl(&dir, &["eval", &run_arg, "--set", "data.test_subset=0"]);
    assert!(whole.success, "{}", whole.output);
    let second = results(&run);
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
    assert_card_matches(&run, &second);
}

/// The result card beside `results.json` holds one entry per evaluator and radius, with the
/// same figures in RobustBench's form.
fn assert_card_matches(run: &Path, results: &Results) {
    let card: Vec<CardEntry> = RunDir::open(run)
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
