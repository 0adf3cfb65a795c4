//! The evaluation protocol beyond linear probes: the `finetune` evaluator (a fine-tuned copy of
//! the encoder, in its three modes), label shares and transfer datasets for every evaluator.

mod common;
use common::{assemble, temp_dir};
use rossl::rossl_api::components::Split;
use rossl::rossl_runtime::assembly::Assembly;
use rossl::rossl_runtime::eval::{evaluate_run, EvaluationReport};
use rossl::rossl_runtime::run_dir::{files, RunDir};
use rossl::rossl_runtime::train::{encoder_tensors, load_split, train, TrainSummary};
use std::collections::HashMap;
use std::path::Path;

/// TINY (with `extra` settings) trained in `dir`, not yet evaluated.
fn trained(dir: &Path, extra: &[&str]) -> (Assembly, RunDir, TrainSummary) {
    let asm = assemble(dir, extra);
    let run_dir = RunDir::for_config(&asm.config).unwrap();
    run_dir.create().unwrap();
    let summary = train(&asm, &run_dir, None).unwrap();
    (asm, run_dir, summary)
}

/// TINY (with `extra` settings) trained in `dir` and evaluated: the evaluation reports, the
/// assembly and the run folder.
fn trained_and_evaluated(dir: &Path, extra: &[&str]) -> (Vec<EvaluationReport>, Assembly, RunDir) {
    let (asm, run_dir, summary) = trained(dir, extra);
    let results = evaluate_run(&asm, &run_dir, &summary).unwrap();
    (results.evaluations, asm, run_dir)
}

/// The values of `tensors` (of any dtype) by name.
fn values(tensors: Vec<(String, candle_core::Tensor)>) -> HashMap<String, Vec<f64>> {
    let as_f64 = |t: candle_core::Tensor| {
        t.to_dtype(candle_core::DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .unwrap()
    };
    tensors.into_iter().map(|(n, t)| (n, as_f64(t))).collect()
}

#[test]
fn finetune_trains_a_copy_in_each_mode_and_reports_its_cost() {
    // 48 training images in batches of 16: 3 steps per epoch, 2 epochs; attacks of 2 steps
    for (mode, forward, backward) in [
        ("standard", 6, 6),
        // each step: 2 attack iterations, then the update on the examples
        ("pgd", 6 * 3, 6 * 3),
        // each step: the clean logits, 2 iterations, natural and perturbed forwards, one
        // backward through both
        ("trades", 6 * 5, 6 * 4),
    ] {
        let dir = temp_dir(&format!("finetune-{mode}"));
        let settings = [
            "eval.evaluators=[\"finetune\"]".to_string(),
            "eval.preset=\"none\"".into(),
            format!("eval.finetune.mode=\"{mode}\""),
            "eval.finetune.epochs=2".into(),
            "eval.finetune.batch_size=16".into(),
            "eval.finetune.steps=2".into(),
            "eval.finetune.lr=0.05".into(),
        ];
        let sets: Vec<&str> = settings.iter().map(String::as_str).collect();
        let (asm, run_dir, summary) = trained(&dir, &sets);
        let before = values(encoder_tensors(asm.encoder.as_ref()));
        let checkpoint = std::fs::read(run_dir.file(files::CHECKPOINT)).unwrap();
        let results = evaluate_run(&asm, &run_dir, &summary).unwrap();
        // the evaluated encoder and its checkpoint are untouched
        assert_eq!(
            values(encoder_tensors(asm.encoder.as_ref())),
            before,
            "{mode}"
        );
        assert_eq!(
            std::fs::read(run_dir.file(files::CHECKPOINT)).unwrap(),
            checkpoint,
            "{mode}"
        );
        let report = &results.evaluations[0];
        let fit = report.fit.as_ref().expect("a fine-tuning reports its cost");
        assert_eq!((fit.epochs, fit.steps), (2, 6), "{mode}");
        assert_eq!(
            (fit.forward_passes, fit.backward_passes),
            (forward, backward),
            "{mode}"
        );
        // the attacked classifier is the fine-tuned copy, saved beside results.json: its head
        // learned, and its encoder moved away from the evaluated one
        let saved = values(
            candle_core::safetensors::load(
                run_dir.file(&files::probe("finetune")),
                &candle_core::Device::Cpu,
            )
            .unwrap()
            .into_iter()
            .collect(),
        );
        assert!(saved["fc.weight"].iter().any(|v| *v != 0.0), "{mode}");
        let moved = before
            .iter()
            .filter(|(name, v)| saved[&format!("encoder.{name}")] != **v)
            .count();
        assert!(
            moved > before.len() / 2,
            "{mode}: {moved} of {} moved",
            before.len()
        );
        // the state check covers the copy: every classifier tensor unchanged by the attacks
        let state = report
            .checks
            .iter()
            .find(|c| c.name.contains("unchanged"))
            .unwrap();
        assert!(state.passed && !state.skipped, "{mode}: {}", state.detail);
    }
}

#[test]
fn standard_finetuning_learns_the_task() {
    // separable synthetic data: a fine-tuned copy classifies it far above chance (0.25)
    let dir = temp_dir("finetune-learns");
    let (evaluations, _, _) = trained_and_evaluated(
        &dir,
        &[
            "train.epochs=0",
            "eval.evaluators=[\"finetune\"]",
            "eval.preset=\"none\"",
            "eval.finetune.mode=\"standard\"",
            "eval.finetune.epochs=8",
            "eval.finetune.batch_size=8",
            "eval.finetune.lr=0.05",
            "eval.finetune.crop_padding=0",
        ],
    );
    let accuracy = evaluations[0].clean_accuracy;
    assert!(accuracy >= 0.6, "clean accuracy {accuracy}");
}

#[test]
fn label_shares_are_class_balanced_seeded_and_recorded() {
    let (train_set, _) = common::fixtures::synthetic(0.1);
    let share = rossl::rossl_runtime::eval::labelled_share(&train_set, 0.1, 7).unwrap();
    assert_eq!(share.len(), 20);
    assert!(share.class_counts().iter().all(|&c| c == 5));
    let again = rossl::rossl_runtime::eval::labelled_share(&train_set, 0.1, 7).unwrap();
    assert_eq!(share.pixels, again.pixels);
    let other = rossl::rossl_runtime::eval::labelled_share(&train_set, 0.1, 8).unwrap();
    assert_ne!(share.pixels, other.pixels);
    assert!(rossl::rossl_runtime::eval::labelled_share(&train_set, 1.0, 7).is_none());
    // through a run: recorded in results.json and the result card
    let dir = temp_dir("label-share");
    let (evaluations, _, run_dir) = trained_and_evaluated(
        &dir,
        &[
            "eval.evaluators=[\"linear-probe\", \"knn\"]",
            "eval.linear-probe.label_fraction=0.25",
            "eval.steps=1",
            "eval.apgd=false",
            "eval.square=false",
        ],
    );
    let data = evaluations[0].data.as_ref().unwrap();
    assert_eq!((data.label_fraction, data.train_images), (0.25, 12));
    let knn = evaluations[1].data.as_ref().unwrap();
    assert_eq!((knn.label_fraction, knn.train_images), (1.0, 48));
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.file(files::ROBUSTBENCH)).unwrap())
            .unwrap();
    let fractions: Vec<f64> = card
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ssl"]["label_fraction"].as_f64().unwrap())
        .collect();
    assert!(
        fractions.contains(&0.25) && fractions.contains(&1.0),
        "{fractions:?}"
    );
}

#[test]
fn an_evaluator_transfers_to_another_dataset_resized_or_is_refused_before_training() {
    let dir = temp_dir("transfer");
    let mnist = dir.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    common::write_mnist_files(&mnist, 20, 10);
    let root = format!("data.mnist.root={:?}", mnist.display().to_string());
    // TINY's images are 1x12x12: MNIST's 28x28 need resizing, and without `resize` the
    // configuration is refused before anything trains
    let refused = rossl::rossl_runtime::assembly::Assembly::build(
        common::resolve(
            &[common::write(&dir, "tiny.toml", common::TINY)],
            &[&root, "eval.linear-probe.dataset=\"mnist\""],
        )
        .unwrap(),
        rossl::rossl_runtime::device::select_device(rossl::rossl_runtime::config::DeviceSpec::Cpu)
            .unwrap(),
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(
        refused.contains("eval.linear-probe.resize") && refused.contains("28x28"),
        "{refused}"
    );
    let (evaluations, _, _) = trained_and_evaluated(
        &dir,
        &[
            &root,
            "eval.linear-probe.dataset=\"mnist\"",
            "eval.linear-probe.resize=true",
            "eval.preset=\"none\"",
        ],
    );
    let e = &evaluations[0];
    let data = e.data.as_ref().unwrap();
    assert_eq!(data.dataset, "mnist");
    assert_eq!(
        data.adaptation,
        ["resized 28x28 -> 12x12 (bilinear, antialiased)"]
    );
    assert_eq!((data.train_images, e.test_images), (20, 10));
}

#[test]
fn corruption_accuracies_are_computed_per_family_and_severity_or_read_from_published_arrays() {
    let dir = temp_dir("corruptions");
    let (evaluations, _, _) = trained_and_evaluated(
        &dir,
        &[
            "eval.preset=\"none\"",
            "eval.corruptions.families=[\"gaussian_noise\", \"contrast\"]",
            "eval.corruptions.severities=[1, 5]",
            "eval.corruptions.images=10",
        ],
    );
    let c = evaluations[0].corruptions.as_ref().expect("measured");
    let pairs: Vec<(&str, u8)> = c
        .results
        .iter()
        .map(|r| (r.family.as_str(), r.severity))
        .collect();
    assert_eq!(
        pairs,
        [
            ("gaussian_noise", 1),
            ("gaussian_noise", 5),
            ("contrast", 1),
            ("contrast", 5)
        ]
    );
    assert_eq!(c.images, 10);
    let mean = c.results.iter().map(|r| r.accuracy).sum::<f64>() / 4.0;
    assert!((c.mean - mean).abs() < 1e-12);
    // the published arrays: the first 4 images of severity 1's block of a (4, 32, 32, 3) file,
    // labelled as the synthetic test set's first 4 images (they are its corrupted versions)
    let colour = [
        "data.synthetic.classes=10",
        "data.synthetic.channels=3",
        "data.synthetic.height=32",
        "data.synthetic.width=32",
    ];
    let published = dir.join("CIFAR-10-C");
    let files = format!(
        "eval.corruptions.files={:?}",
        published.display().to_string()
    );
    let mut settings = vec![
        "eval.preset=\"none\"",
        "eval.corruptions.families=[\"fog\"]",
        "eval.corruptions.severities=[1]",
        "eval.corruptions.images=4",
        &files,
    ];
    settings.extend(colour);
    let (asm, run_dir, summary) = trained(&temp_dir("corruptions-files"), &settings);
    let test = load_split(&asm, Split::Test).unwrap();
    let labels: Vec<u8> = test.labels[..4].iter().map(|&l| l as u8).collect();
    std::fs::create_dir_all(&published).unwrap();
    let pixels: Vec<u8> = (0..4 * 32 * 32 * 3).map(|i| (i % 256) as u8).collect();
    std::fs::write(
        published.join("fog.npy"),
        common::npy_u8(&[4, 32, 32, 3], &pixels),
    )
    .unwrap();
    let write_labels = |labels: &[u8]| {
        std::fs::write(published.join("labels.npy"), common::npy_u8(&[4], labels)).unwrap()
    };
    write_labels(&labels);
    let evaluations = evaluate_run(&asm, &run_dir, &summary).unwrap().evaluations;
    let c = evaluations[0].corruptions.as_ref().expect("measured");
    assert_eq!((c.images, c.results.len()), (4, 1));
    assert!(c.source.contains("CIFAR-10-C"), "{}", c.source);
    assert_eq!((c.results[0].accuracy * 4.0).fract(), 0.0);
    // arrays labelled otherwise are other images (a test subset, a transfer dataset): refused
    // before the attacks, naming the key, the image and the labels file
    let mut other = labels.clone();
    other[2] = (other[2] + 1) % 10;
    write_labels(&other);
    let Err(error) = evaluate_run(&asm, &run_dir, &summary) else {
        panic!("published arrays of other images were accepted");
    };
    let message = error.to_string();
    assert!(
        message.contains("eval.corruptions.files")
            && message.contains("test image 2")
            && message.contains("labels.npy"),
        "{message}"
    );
    write_labels(&labels);
    // TINY's grey 12x12 images are not the arrays' shape: a clear error, naming the key
    let (asm, run_dir, summary) = trained(
        &temp_dir("corruptions-shape"),
        &[
            "eval.preset=\"none\"",
            "eval.corruptions.families=[\"fog\"]",
            "eval.corruptions.severities=[1]",
            &files,
        ],
    );
    let Err(error) = evaluate_run(&asm, &run_dir, &summary) else {
        panic!("published arrays of another shape were accepted");
    };
    let message = error.to_string();
    assert!(message.contains("eval.corruptions.files"), "{message}");
}
