//! Evaluation: attacks against closed-form worst cases and their invariants, the sanity checks
//! catching a broken set-up, probes on separable data, and the shape of results.json.

mod common;
use candle_core::{Device, Tensor, D};
use common::{temp_dir, write, TINY};
use proptest::prelude::*;
use rossl::rossl_core::assembly::Assembly;
use rossl::rossl_core::components::{
    Attack, Buffer, BuildContext, Classifier, Embedding, Encoder, Evaluator, FitContext, ImageSet,
    Mode, Parameter, Split,
};
use rossl::rossl_core::config::{DeviceSpec, EvalConfig};
use rossl::rossl_core::device::select_device;
use rossl::rossl_core::eval::{evaluate, EvalInputs};
use rossl::rossl_core::registry;
use rossl::rossl_core::rng::Rng;
use rossl::rossl_core::run_dir::{files, RunDir};
use rossl::rossl_core::Result;
use std::sync::Arc;

fn attack(name: &str, params: &str) -> Box<dyn Attack> {
    registry::build::<dyn Attack>(name, params, &BuildContext::cpu(0)).unwrap()
}

/// A linear classifier's negative margin y (w.x + b) per example: its worst L-infinity
/// perturbation is delta = -eps y sign(w) (when the box [0, 1] does not bind).
fn linear_objective(w: Tensor, y: Tensor) -> impl FnMut(&Tensor) -> Result<Tensor> {
    move |x: &Tensor| {
        let score = x.flatten_from(1)?.broadcast_mul(&w)?.sum(D::Minus1)?;
        Ok((score * &y)?.neg()?)
    }
}

#[test]
fn attacks_find_the_closed_form_worst_case_of_a_linear_classifier() {
    let dev = Device::Cpu;
    let eps = 0.05;
    let w = Tensor::new(&[0.7f32, -1.3, 0.2, -0.4, 2.0, -0.01], &dev).unwrap();
    // inputs well inside [0, 1], labels +1 / -1
    let x = Tensor::new(
        &[
            [0.3f32, 0.5, 0.6, 0.4, 0.5, 0.7],
            [0.6, 0.4, 0.5, 0.5, 0.3, 0.2],
        ],
        &dev,
    )
    .unwrap();
    let y = Tensor::new(&[1.0f32, -1.0], &dev).unwrap();
    let expected = (&x
        - (y.unsqueeze(1)
            .unwrap()
            .broadcast_mul(&w.sign().unwrap().unsqueeze(0).unwrap())
            .unwrap()
            * eps)
            .unwrap())
    .unwrap();
    for (name, params) in [
        ("fgsm", "eps = 0.05"),
        ("pgd-linf", "eps = 0.05\nstep = 0.0125\nsteps = 10"),
        (
            "pgd-linf",
            "eps = 0.05\nstep = 0.0125\nsteps = 10\nrandom_start = true\nrestarts = 3",
        ),
        ("apgd-ce", "eps = 0.05\nsteps = 20"),
    ] {
        let mut objective = linear_objective(w.clone(), y.clone());
        let adv = attack(name, params)
            .perturb(&x, &mut objective, &mut Rng::new(1))
            .unwrap();
        let err = common::max_abs_diff(&adv, &expected);
        assert!(
            err < 1e-5,
            "{name} ({params}) misses eps * sign(w) by {err}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn perturbations_stay_in_the_ball_and_the_pixel_range(
        seed in 0u64..1000,
        // eps = 0 drawn in about a third of the cases: the attack must then return x itself
        eps in prop_oneof![Just(0.0f64), 0.0f64..0.4, 0.0f64..0.4],
        which in 0usize..3,
    ) {
        let mut rng = Rng::new(seed);
        let n = 3 * 16;
        let x: Vec<f32> = (0..n).map(|i| if i % 5 == 0 { (i % 2) as f32 } else { rng.uniform() as f32 }).collect();
        let x = Tensor::from_vec(x, (3, 16), &Device::Cpu).unwrap();
        let w: Vec<f32> = (0..16).map(|_| rng.normal() as f32).collect();
        let w = Tensor::from_vec(w, 16, &Device::Cpu).unwrap();
        let y = Tensor::new(&[1.0f32, -1.0, 1.0], &Device::Cpu).unwrap();
        let params = match which {
            0 => format!("eps = {eps}"),
            1 => format!("eps = {eps}\nstep = {}\nsteps = 7\nrandom_start = true\nrestarts = 2", eps / 3.0),
            _ => format!("eps = {eps}\nsteps = 9"),
        };
        let name = ["fgsm", "pgd-linf", "apgd-ce"][which];
        let mut objective = linear_objective(w, y);
        let adv = attack(name, &params).perturb(&x, &mut objective, &mut Rng::new(seed + 1)).unwrap();
        let dist = common::max_abs_diff(&adv, &x);
        prop_assert!(f64::from(dist) <= eps + 1e-6, "{name}: |delta| = {dist} > eps {eps}");
        prop_assert!(adv.min_all().unwrap().to_scalar::<f32>().unwrap() >= 0.0);
        prop_assert!(adv.max_all().unwrap().to_scalar::<f32>().unwrap() <= 1.0);
        if eps == 0.0 {
            prop_assert_eq!(adv.to_vec2::<f32>().unwrap(), x.to_vec2::<f32>().unwrap());
        }
    }
}

/// An "encoder" whose feature is the flattened image (no weights): classes of separable data
/// stay separable, so probes must reach near 100%.
struct Flatten;
impl Encoder for Flatten {
    fn forward(&self, images: &Tensor, mode: Mode) -> Result<Embedding> {
        let feature = self.features(images, mode)?;
        Ok(Embedding {
            projection: feature.clone(),
            feature,
        })
    }
    fn features(&self, images: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(images.flatten_from(1)?)
    }
    fn feature_dim(&self) -> usize {
        16 * 16
    }
    fn projection_dim(&self) -> usize {
        16 * 16
    }
    fn parameters(&self) -> Vec<Parameter> {
        Vec::new()
    }
    fn buffers(&self) -> Vec<Buffer> {
        Vec::new()
    }
}

fn synthetic(noise: f64) -> (ImageSet, ImageSet) {
    let params = format!("channels = 1\nheight = 16\nwidth = 16\nclasses = 4\ntrain_size = 200\ntest_size = 80\nnoise = {noise}\nmax_shift = 0");
    let d = registry::build::<dyn rossl::rossl_core::components::Dataset>(
        "synthetic",
        &params,
        &BuildContext::cpu(0),
    )
    .unwrap();
    (d.load(Split::Train).unwrap(), d.load(Split::Test).unwrap())
}

fn eval_config(preset: &str) -> EvalConfig {
    EvalConfig {
        preset: preset.into(),
        eps: vec![4.0 / 255.0, 8.0 / 255.0],
        steps: 4,
        restarts: 1,
        check_images: 40,
        batch_size: 40,
        eot_samples: 2,
        large_eps: 0.5,
        ..EvalConfig::default()
    }
}

fn evaluator(name: &str, params: &str) -> Box<dyn Evaluator> {
    registry::build::<dyn Evaluator>(name, params, &BuildContext::cpu(0)).unwrap()
}

#[test]
fn probes_and_knn_reach_near_100_percent_on_separable_data() {
    let (train, test) = synthetic(0.02);
    let encoder = Flatten;
    let config = eval_config("none");
    let ctx = BuildContext::cpu(0);
    let inputs = EvalInputs {
        encoder: &encoder,
        train: &train,
        test: &test,
        device: &Device::Cpu,
        seed: 1,
        config: &config,
        ctx: &ctx,
    };
    for (name, params) in [
        ("linear-probe", "epochs = 30\nlr = 0.01\nbatch_size = 32"),
        ("knn", "k = 5"),
        (
            "robust-linear-probe",
            "clean_epochs = 20\nadversarial_epochs = 2\nlr = 0.01\nbatch_size = 32\nsteps = 2",
        ),
        (
            "multi-crop-probe",
            "views = 4\nscale = [0.6, 1.0]\nepochs = 30\nlr = 0.01\nbatch_size = 32",
        ),
    ] {
        let report = evaluate(name, evaluator(name, params).as_ref(), 0, &inputs).unwrap();
        assert!(
            report.clean_accuracy >= 0.95,
            "{name}: clean accuracy {}",
            report.clean_accuracy
        );
        assert!(report.robust.is_empty());
    }
}

/// A deliberately broken set-up: the probe runs the encoder with batch norm in training mode.
struct TrainModeProbe {
    encoder: Arc<dyn Encoder>,
}
struct TrainModeClassifier {
    encoder: Arc<dyn Encoder>,
    w: Tensor,
}
impl Classifier for TrainModeClassifier {
    fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let f = self.encoder.features(images, Mode::Train)?.detach();
        Ok(f.matmul(&self.w)?)
    }
}
impl Evaluator for TrainModeProbe {
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>> {
        let mut rng = Rng::new(ctx.seed);
        let f = self.encoder.feature_dim();
        let w: Vec<f32> = (0..f * ctx.train.classes)
            .map(|_| rng.normal() as f32)
            .collect();
        Ok(Box::new(TrainModeClassifier {
            encoder: self.encoder.clone(),
            w: Tensor::from_vec(w, (f, ctx.train.classes), ctx.device)?,
        }))
    }
}

fn small_encoder() -> Arc<dyn Encoder> {
    let shape = rossl::rossl_core::components::InputShape {
        channels: 1,
        height: 16,
        width: 16,
        classes: 4,
    };
    let ctx = BuildContext::cpu(3).with_input(shape);
    Arc::from(
        registry::build::<dyn Encoder>(
            "resnet-small",
            "widths = [4, 8]\nhidden = 16\nz_dim = 8",
            &ctx,
        )
        .unwrap(),
    )
}

#[test]
fn the_sanity_checks_catch_batch_norm_left_in_training_mode() {
    let (train, test) = synthetic(0.1);
    let encoder = small_encoder();
    let config = eval_config("paper");
    let ctx = BuildContext::cpu(0);
    let inputs = EvalInputs {
        encoder: encoder.as_ref(),
        train: &train,
        test: &test,
        device: &Device::Cpu,
        seed: 1,
        config: &config,
        ctx: &ctx,
    };
    let broken = evaluate(
        "broken",
        &TrainModeProbe {
            encoder: encoder.clone(),
        },
        0,
        &inputs,
    )
    .unwrap();
    let failed: Vec<&str> = broken.failed_checks().map(|c| c.name.as_str()).collect();
    assert!(
        failed.contains(&"eps = 0 gives exactly the clean accuracy"),
        "{:#?}",
        broken.checks
    );
    assert!(
        failed.contains(&"attacks leave weights and batch-norm statistics unchanged"),
        "{:#?}",
        broken.checks
    );
    // the same encoder through a proper probe passes them
    let fine = evaluate(
        "linear-probe",
        evaluator("linear-probe", "epochs = 2").as_ref(),
        1,
        &inputs,
    )
    .unwrap();
    for name in [
        "eps = 0 gives exactly the clean accuracy",
        "attacks leave weights and batch-norm statistics unchanged",
        "perturbations stay in the eps ball and the pixel range [0, 1]",
        "input gradients are finite and non-zero",
    ] {
        let c = fine.checks.iter().find(|c| c.name == name).unwrap();
        assert!(c.passed, "{name}: {}", c.detail);
    }
    assert_eq!(fine.robust.len(), 2, "the paper preset: one PGD per radius");
    assert_eq!(fine.robust[0].steps, 2);
}

#[test]
fn results_json_follows_the_schema() {
    let dir = temp_dir("results");
    let file = write(&dir, "tiny.toml", TINY);
    let out = format!("out={:?}", dir.join("runs").display().to_string());
    let resolved = common::resolve(
        &[file],
        &[
            &out,
            "eval.evaluators=[\"linear-probe\", \"knn\"]",
            // a registered attack added to the preset, on the margin loss
            "eval.extra_attacks=[{ name = \"fgsm\", loss = \"margin\", params = { random_start = true, step = 0.02 } }]",
        ],
    )
    .unwrap();
    let asm = Assembly::build(resolved, select_device(DeviceSpec::Cpu).unwrap()).unwrap();
    let run_dir = RunDir::for_config(&asm.config).unwrap();
    run_dir.create().unwrap();
    let summary = rossl::rossl_core::train::train(&asm, &run_dir, None).unwrap();
    rossl::rossl_core::eval::evaluate_run(&asm, &run_dir, &summary).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.file(files::RESULTS)).unwrap())
            .unwrap();
    assert_eq!(v["method"], "tiny");
    assert_eq!(v["dataset"], "synthetic");
    assert_eq!(v["encoder"], "resnet-small");
    for key in ["seconds", "epochs", "forward_passes", "backward_passes"] {
        assert!(v["train"][key].is_number(), "train.{key}");
    }
    let evaluations = v["evaluations"].as_array().unwrap();
    assert_eq!(evaluations.len(), 2);
    for e in evaluations {
        assert!(e["evaluator"].is_string());
        let clean = e["clean_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&clean));
        let robust = e["robust"].as_array().unwrap();
        assert_eq!(
            robust.len(),
            10,
            "strong preset: 4 attacks + 1 extra, x 2 radii"
        );
        let attacks: std::collections::BTreeSet<&str> =
            robust.iter().filter_map(|r| r["attack"].as_str()).collect();
        for expected in [
            "pgd-linf/ce",
            "pgd-linf/margin",
            "apgd-ce/ce",
            "fgsm/ce",
            "fgsm/margin (extra 1)",
        ] {
            assert!(attacks.contains(expected), "{expected} in {attacks:?}");
        }
        for r in robust {
            assert!(r["attack"].is_string() && r["eps"].is_number() && r["steps"].is_number());
            assert!((0.0..=1.0).contains(&r["accuracy"].as_f64().unwrap()));
        }
        for c in e["checks"].as_array().unwrap() {
            assert!(c["name"].is_string() && c["passed"].is_boolean() && c["detail"].is_string());
        }
    }
}

#[test]
fn extra_evaluation_attacks_are_checked_before_anything_runs() {
    let error = |set: &str| {
        common::resolve(&[], &[set])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let message = error("eval.extra_attacks=[{ name = \"pgd-linff\" }]");
    assert!(
        message.contains("pgd-linff")
            && message.contains("pgd-linf`")
            && message.contains("eval.extra_attacks"),
        "{message}"
    );
    let message = error("eval.extra_attacks=[{ name = \"pgd-linf\", params = { stepz = 3 } }]");
    assert!(
        message.contains("stepz") && message.contains("eval.extra_attacks[0]"),
        "{message}"
    );
    let message = error("eval.extra_attacks=[{ name = \"fgsm\", params = { eps = 0.1 } }]");
    assert!(
        message.contains("eval.extra_attacks[0]") && message.contains("eval.eps"),
        "{message}"
    );
    let message = error("eval.extra_attacks=[{ name = \"fgsm\", loss = \"hinge\" }]");
    assert!(message.contains("hinge"), "{message}");
}
