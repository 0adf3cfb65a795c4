//! The three training regimes: each lowers the loss; free training's perturbation stays in the
//! ball and the pixel range; a PGD step equals a standard step on the perturbed batch (no
//! gradient leak); resuming reproduces the uninterrupted weights; passes are counted; every
//! method config trains at CPU scale; a short run of each newer loss lowers it; a loss's own
//! weights (the supervised head) are trained, checkpointed and restored; a `train.anneal`
//! schedule sets each pass's PGD loss weights.

mod common;
use candle_core::Device;
use common::{assemble, temp_dir};
use rossl::rossl_runtime::assembly::Assembly;
use rossl::rossl_runtime::checkpoint;
use rossl::rossl_runtime::config::DeviceSpec;
use rossl::rossl_runtime::device::select_device;
use rossl::rossl_runtime::run_dir::{files, RunDir};
use rossl::rossl_runtime::train::{train, train_with, TrainOptions, TrainSummary};
use std::path::PathBuf;

fn run(asm: &Assembly) -> (RunDir, TrainSummary) {
    let run_dir = RunDir::for_config(&asm.config).unwrap();
    run_dir.create().unwrap();
    let summary = train(asm, &run_dir, None).unwrap();
    (run_dir, summary)
}

fn step_losses(run_dir: &RunDir) -> Vec<f64> {
    std::fs::read_to_string(run_dir.file(files::METRICS))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn each_regime_lowers_the_loss_and_counts_its_passes() {
    for (regime, fwd_per_batch) in [("standard", 1u64), ("pgd", 4), ("free", 3)] {
        let dir = temp_dir(&format!("regime-{regime}"));
        let regime_set = format!("train.regime={regime:?}");
        let asm = assemble(
            &dir,
            &[
                &regime_set,
                "train.epochs=6",
                "train.attack.pgd-linf.steps=3",
                "optim.lr=0.5",
            ],
        );
        let (run_dir, summary) = run(&asm);
        let losses = step_losses(&run_dir);
        let k = (losses.len() / 4).max(1);
        let (first, last) = (mean(&losses[..k]), mean(&losses[losses.len() - k..]));
        assert!(
            last < first,
            "{regime}: loss did not fall ({first} -> {last})"
        );
        // 48 images, batches of 8: 6 batches per pass
        let batches = summary.epochs as u64 * 6;
        assert_eq!(summary.forward_passes, batches * fwd_per_batch, "{regime}");
        assert_eq!(summary.backward_passes, batches * fwd_per_batch, "{regime}");
        let expected_passes = if regime == "free" { 2 } else { 6 };
        assert_eq!(
            summary.epochs, expected_passes,
            "{regime}: epochs follow N/m"
        );
        assert!(run_dir.file(files::CHECKPOINT).is_file());
    }
}

fn weights_of(path: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let ckpt = checkpoint::load(path, &Device::Cpu).unwrap();
    let mut v: Vec<(String, Vec<f32>)> = ckpt
        .tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.to_dtype(candle_core::DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The run of `sets` trained at once, and trained for one pass, stopped and resumed in a fresh
/// assembly (as a new process would): their run folders.
fn whole_and_resumed(sets: &[&str], regime: &str) -> (RunDir, RunDir) {
    let whole_dir = temp_dir(&format!("resume-whole-{regime}"));
    let (whole, _) = run(&assemble(&whole_dir, sets));
    let parts_dir = temp_dir(&format!("resume-parts-{regime}"));
    let first = assemble(&parts_dir, sets);
    let run_dir = RunDir::for_config(&first.config).unwrap();
    run_dir.create().unwrap();
    let stop = TrainOptions {
        stop_after_passes: Some(1),
    };
    let partial = train_with(&first, &run_dir, None, &stop).unwrap();
    assert!(!partial.complete, "{regime}");
    assert!(!run_dir.file(files::SUMMARY).exists());
    let ckpt = checkpoint::load(&run_dir.file(files::CHECKPOINT), &Device::Cpu).unwrap();
    let second = assemble(&parts_dir, sets);
    assert!(train(&second, &run_dir, Some(&ckpt)).unwrap().complete);
    (whole, run_dir)
}

#[test]
fn resuming_an_interrupted_run_gives_the_uninterrupted_weights() {
    // supervised PGD-AT: the loss's classifier head is trained and resumed too; BYOL: its
    // predictor and the target network (an average of the encoder) are resumed
    let supervised: &[&str] = &["loss.terms=[{ name = \"cross-entropy\" }]"];
    let byol: &[&str] = &["loss.terms=[{ name = \"byol\" }]", "loss.byol.hidden=8"];
    // DynACL's schedules: each resumed pass renders and weighs as the uninterrupted run did
    let annealed: &[&str] = &[
        "train.pgd.clean_weight=0.5",
        "train.anneal.stages=3",
        "train.anneal.view_strength_end=0.0",
        "train.anneal.clean_weight_end=0.1",
    ];
    for (regime, loss, name) in [
        ("standard", &[][..], "standard"),
        ("free", &[], "free"),
        ("pgd", &[], "pgd"),
        ("pgd", supervised, "supervised-pgd"),
        ("standard", byol, "byol"),
        ("pgd", annealed, "annealed-pgd"),
    ] {
        let regime_set = format!("train.regime={regime:?}");
        let epochs = if regime == "free" {
            "train.epochs=6"
        } else {
            "train.epochs=3"
        };
        let mut sets = vec![
            regime_set.as_str(),
            epochs,
            "train.attack.pgd-linf.random_start=true",
        ];
        sets.extend(loss);
        let regime = name;
        let (whole, run_dir) = whole_and_resumed(&sets, regime);
        let resumed = weights_of(&run_dir.file(files::CHECKPOINT));
        let uninterrupted = weights_of(&whole.file(files::CHECKPOINT));
        let names = |w: &[(String, Vec<f32>)]| w.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&uninterrupted), names(&resumed), "{regime}");
        let differing: Vec<&String> = uninterrupted
            .iter()
            .zip(&resumed)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| &a.0)
            .collect();
        assert!(
            differing.is_empty(),
            "{regime}: {differing:?} differ after resuming"
        );
        let has = |prefix: &str| resumed.iter().any(|(name, _)| name.starts_with(prefix));
        assert_eq!(
            has("loss.cross-entropy.head."),
            loss == supervised,
            "{regime}"
        );
        assert_eq!(has("target.backbone."), loss == byol, "{regime}");
        // the metrics of the resumed run continue those of the interrupted one
        let steps: Vec<u64> = std::fs::read_to_string(run_dir.file(files::METRICS))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "step")
            .map(|v| v["step"].as_u64().unwrap())
            .collect();
        assert!(steps.windows(2).all(|w| w[1] == w[0] + 1), "{steps:?}");
    }
}

#[test]
fn every_method_config_runs_one_step_at_cpu_scale() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut methods: Vec<PathBuf> = std::fs::read_dir(root.join("methods"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // DeACL last: its teacher is the SimCLR run trained before it
    methods.sort_by_key(|m| (m.ends_with("deacl.toml"), m.clone()));
    assert_eq!(methods.len(), 18);
    let dir = temp_dir("methods");
    let mut teacher = String::new();
    for method in methods {
        let out = format!("out={:?}", dir.display().to_string());
        let from = format!("train.target.from={teacher:?}");
        let mut sets = vec![
            out.as_str(),
            "data.batch_size=4",
            "data.train_subset=40",
            "train.epochs=1",
            "train.max_batches=1",
            "train.attack.pgd-linf.steps=1",
        ];
        if method.ends_with("deacl.toml") {
            sets.push(&from);
        }
        let resolved =
            common::resolve(&[method.clone(), root.join("scale/cpu.toml")], &sets).unwrap();
        let asm = Assembly::build(resolved, select_device(DeviceSpec::Cpu).unwrap()).unwrap();
        let (run_dir, summary) = run(&asm);
        assert!(summary.steps >= 1, "{}", method.display());
        assert!(
            summary.final_loss.unwrap().is_finite(),
            "{}",
            method.display()
        );
        if method.ends_with("simclr.toml") {
            // as `rossl run` leaves it, for DeACL's teacher
            run_dir
                .write(files::CONFIG, &asm.config.to_toml(true).unwrap())
                .unwrap();
            teacher = run_dir.path().display().to_string();
        }
    }
}

#[test]
fn a_few_hundred_steps_of_resnet_small_and_the_emp_loss_lower_it() {
    let dir = temp_dir("emp-200");
    // 64 synthetic images in batches of 8: 8 steps per pass, 25 passes = 200 steps
    let asm = assemble(
        &dir,
        &[
            "train.epochs=25",
            "data.synthetic.train_size=64",
            "train.log_every=1",
        ],
    );
    let (run_dir, summary) = run(&asm);
    assert_eq!(summary.steps, 200);
    let losses = step_losses(&run_dir);
    let (first, last) = (mean(&losses[..20]), mean(&losses[losses.len() - 20..]));
    // the EMP objective (200 x -cosine + TCR) falls as the views agree and the coding rate grows
    assert!(last < first - 1.0, "loss {first} -> {last}");
}

#[test]
fn a_short_run_of_each_newer_loss_lowers_it() {
    for (name, params) in [
        ("barlow-twins", "loss.barlow-twins.lambda=0.05"),
        ("vicreg", "loss.vicreg.covariance=1.0"),
        ("cross-entropy", "loss.cross-entropy.classes=4"),
        ("simsiam", "loss.simsiam.hidden=8"),
        ("byol", "loss.byol.hidden=8"),
    ] {
        let dir = temp_dir(&format!("short-{name}"));
        let terms = format!("loss.terms=[{{ name = {name:?} }}]");
        // 2 views of 48 synthetic images in batches of 16: 3 steps per pass, 10 passes
        let asm = assemble(
            &dir,
            &[
                &terms,
                params,
                "views.multi-crop.views=2",
                "data.batch_size=16",
                "train.epochs=10",
                "optim.lr=0.5",
            ],
        );
        let (run_dir, summary) = run(&asm);
        assert_eq!(summary.steps, 30, "{name}");
        let losses = step_losses(&run_dir);
        let (first, last) = (mean(&losses[..6]), mean(&losses[losses.len() - 6..]));
        assert!(
            last < first,
            "{name}: loss did not fall ({first} -> {last})"
        );
    }
}

#[test]
fn free_training_s_cosine_schedule_spans_every_replayed_step_without_restarting() {
    // budget 6 epochs, m = 3: 2 passes of 6 batches, 3 steps each = 36 steps; cosine from 0.3 to
    // 0 over all 36 (the reference's horizon of 12 batches would restart the cosine twice)
    let dir = temp_dir("horizon");
    let asm = assemble(
        &dir,
        &[
            "train.regime=\"free\"",
            "train.epochs=6",
            "train.free.replays=3",
        ],
    );
    let (run_dir, summary) = run(&asm);
    assert_eq!(summary.plan.total_steps, 36);
    assert_eq!(summary.plan.horizon, 36);
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(run_dir.file(files::METRICS))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .collect();
    let lrs: Vec<f64> = steps.iter().map(|v| v["lr"].as_f64().unwrap()).collect();
    assert_eq!(lrs.len(), 36);
    // each replay is its own step: its line counts the passes and the time up to it, not up to
    // the batch's last replay (a time budget divides by these differences)
    for (s, step) in steps.iter().enumerate() {
        assert_eq!(step["forward_passes"], s as u64 + 1, "step {s}: {step}");
    }
    let seconds: Vec<f64> = steps
        .iter()
        .map(|v| v["seconds"].as_f64().unwrap())
        .collect();
    assert!(
        seconds.windows(2).all(|w| w[1] > w[0]),
        "step times do not increase: {seconds:?}"
    );
    // step s (0-based) has lr 0.15 (1 + cos(pi s / 36))
    for (s, lr) in lrs.iter().enumerate() {
        let expected = 0.15 * (1.0 + (std::f64::consts::PI * s as f64 / 36.0).cos());
        assert!(
            (lr - expected).abs() < 1e-9,
            "step {s}: lr {lr}, expected {expected}"
        );
    }
    assert!(lrs.windows(2).all(|w| w[1] <= w[0]), "{lrs:?}");
}

#[test]
fn a_deacl_student_starts_from_its_teacher_and_counts_the_teacher_s_passes() {
    let teacher = assemble(&temp_dir("deacl-teacher"), &[]);
    let (teacher_dir, _) = run(&teacher);
    // as `rossl run` leaves it
    let config = teacher.config.to_toml(true).unwrap();
    teacher_dir.write(files::CONFIG, &config).unwrap();
    let from = format!(
        "train.target.from={:?}",
        teacher_dir.path().display().to_string()
    );
    let base = [
        "loss.terms=[{ name = \"deacl\" }]",
        "train.regime=\"pgd\"",
        "train.attack.pgd-linf.steps=2",
        // a learning rate too small to move a weight: the trained student is its start
        "optim.lr=1e-30",
        from.as_str(),
    ];
    let mut sets = base.to_vec();
    sets.push("train.target.init_from_teacher=true");
    let student = assemble(&temp_dir("deacl-student"), &sets);
    let (student_dir, summary) = run(&student);
    // per step: the teacher, a clean pass for the attack, 2 attack steps, the clean and the
    // perturbed views in the update; backward: 2 attack steps and the update
    assert_eq!(summary.forward_passes, summary.steps as u64 * 6);
    assert_eq!(summary.backward_passes, summary.steps as u64 * 3);
    let weights = |dir: &RunDir| -> Vec<(String, Vec<f32>)> {
        weights_of(&dir.file(files::CHECKPOINT))
            .into_iter()
            .filter(|(n, _)| n.starts_with("backbone.") && n.ends_with("conv1.weight"))
            .collect()
    };
    assert_eq!(
        weights(&teacher_dir),
        weights(&student_dir),
        "the student's start"
    );
    // without init_from_teacher the student starts from its own initialisation
    let fresh = assemble(&temp_dir("deacl-fresh"), &base);
    let (fresh_dir, _) = run(&fresh);
    assert!(
        weights(&teacher_dir) != weights(&fresh_dir),
        "a fresh student equals its teacher"
    );
}

#[test]
fn an_annealed_run_updates_with_each_passs_scheduled_weights() {
    let dir = temp_dir("anneal");
    let asm = assemble(
        &dir,
        &[
            "train.regime=\"pgd\"",
            "train.epochs=3",
            "train.max_batches=2",
            "train.attack.pgd-linf.steps=1",
            "loss.terms=[{ name = \"infonce\" }]",
            "train.pgd.clean_weight=0.5",
            "train.pgd.adversarial_weight=0.5",
            "train.anneal.stages=3",
            "train.anneal.view_strength_end=0.0",
            "train.anneal.clean_weight_end=0.2",
            "train.anneal.adversarial_weight_end=0.8",
        ],
    );
    let (run_dir, _) = run(&asm);
    // three passes in three stages: (strength, clean, perturbed) from (1, 0.5, 0.5) toward
    // (0, 0.2, 0.8)
    let expected = [
        [1.0, 0.5, 0.5],
        [2.0 / 3.0, 0.4, 0.6],
        [1.0 / 3.0, 0.3, 0.7],
    ];
    let text = std::fs::read_to_string(run_dir.file(files::METRICS)).unwrap();
    let (mut epochs, mut steps) = (0, 0);
    for line in text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
    {
        let want = expected[line["epoch"].as_u64().unwrap() as usize];
        let get = |k: &str| line[k].as_f64().unwrap();
        if line["kind"] == "epoch" {
            epochs += 1;
            let got = ["view_strength", "clean_weight", "adversarial_weight"].map(get);
            assert!(
                got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12),
                "{line}"
            );
        } else {
            // each step's objective is the pass's weighted sum of its perturbed and clean terms
            steps += 1;
            let term = |name: &str| line["terms"][name].as_f64().unwrap();
            let weighted = want[2] * term("infonce") + want[1] * term("clean infonce");
            let loss = get("loss");
            assert!(
                (loss - weighted).abs() < 1e-5 * loss.abs().max(1.0),
                "{line}"
            );
        }
    }
    assert_eq!((epochs, steps), (3, 6));
}
