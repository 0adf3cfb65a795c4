//! The same seed gives the same training, bit for bit: the quickstart at test size (2 threads)
//! must write exactly the metrics pinned in `tests/fixtures/quickstart-metrics.jsonl` (every
//! number except times). A change of numerics (a kernel's summation order, say) fails here and
//! must be a deliberate decision: regenerate with `UPDATE_GOLDEN=1 cargo test --test same_numbers`
//! and say why in the changelog.

mod common;
use common::process::{run_watched, Output};
use common::temp_dir;
use std::path::Path;
use std::time::Duration;

const FIXTURE: &str = "tests/fixtures/quickstart-metrics.jsonl";

/// The fields of a metrics line that depend on the machine's speed, left out of the comparison.
const TIMES: &[&str] = &["seconds", "images_per_s", "loader_wait_seconds"];

fn without_times(line: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    if let Some(map) = value.as_object_mut() {
        for key in TIMES {
            map.remove(*key);
        }
    }
    value.to_string()
}

#[test]
fn the_quickstart_writes_the_pinned_metrics_bit_for_bit() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = temp_dir("same-numbers");
    let out = dir.display().to_string();
    let finished = run_watched(
        Path::new(env!("CARGO_BIN_EXE_rossl")),
        &[
            "run",
            "configs/quickstart.toml",
            "--out",
            &out,
            "--no-eval",
            "--set",
            "threads=2",
            "--set",
            "compare.baselines=[]",
            // test size, pinned here rather than shared, so that the fixture changes only with
            // the numerics
            "--set",
            "data.train_subset=96",
            "--set",
            "data.batch_size=8",
            "--set",
            "views.multi-crop.views=4",
            "--set",
            "train.max_batches=3",
            "--set",
            "train.epochs=3",
        ],
        repo,
        &[],
        Output::File,
        Duration::from_secs(300),
    );
    assert!(finished.success, "{}", finished.output);
    let metrics = std::fs::read_to_string(dir.join("latest/metrics.jsonl")).unwrap();
    let got: Vec<String> = metrics.lines().map(without_times).collect();
    let fixture = repo.join(FIXTURE);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&fixture, got.join("\n") + "\n").unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(&fixture).unwrap();
    let pinned: Vec<&str> = pinned.lines().collect();
    assert_eq!(got.len(), pinned.len(), "{metrics}");
    for (i, (g, p)) in got.iter().zip(&pinned).enumerate() {
        assert_eq!(g, p, "metrics line {} differs from {FIXTURE}", i + 1);
    }
}
