//! Evaluation: attacks against closed-form worst cases and their invariants, the sanity checks
//! catching a broken set-up, probes on separable data, and the shape of results.json.

mod common;
use candle_core::{Device, Tensor, D};
use common::fixtures::{synthetic, Flatten};
use common::{temp_dir, write, TINY};
use proptest::prelude::*;
use rossl::rossl_api::components::{
    Attack, BuildContext, Evaluator, FitContext, FrozenEncoder, ImageSet,
};
use rossl::rossl_api::registry;
use rossl::rossl_api::rng::Rng;
use rossl::rossl_api::Result;
use rossl::rossl_runtime::assembly::Assembly;
use rossl::rossl_runtime::config::{DeviceSpec, EvalConfig, Preset};
use rossl::rossl_runtime::device::select_device;
use rossl::rossl_runtime::eval::{fit_and_measure, EvalInputs};
use rossl::rossl_runtime::run_dir::{files, RunDir};

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
        ("apgd", "eps = 0.05\nsteps = 20"),
        ("pgd-momentum", "eps = 0.05\nstep = 0.0125\nsteps = 10"),
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
        which in 0usize..5,
    ) {
        let mut rng = Rng::new(seed);
        let n = 3 * 16;
        let x: Vec<f32> = (0..n).map(|i| if i % 5 == 0 { (i % 2) as f32 } else { rng.uniform() as f32 }).collect();
        // images of 1 x 4 x 4 (the square attack needs a height and a width)
        let x = Tensor::from_vec(x, (3, 1, 4, 4), &Device::Cpu).unwrap();
        let w: Vec<f32> = (0..16).map(|_| rng.normal() as f32).collect();
        let w = Tensor::from_vec(w, 16, &Device::Cpu).unwrap();
        let y = Tensor::new(&[1.0f32, -1.0, 1.0], &Device::Cpu).unwrap();
        let params = match which {
            0 => format!("eps = {eps}"),
            1 => format!("eps = {eps}\nstep = {}\nsteps = 7\nrandom_start = true\nrestarts = 2", (eps / 3.0).max(1e-3)),
            2 => format!("eps = {eps}\nsteps = 9"),
            3 => format!("eps = {eps}\nqueries = 30"),
            _ => format!("eps = {eps}\nstep = {}\nsteps = 6\nrandom_start = true", (eps / 3.0).max(1e-3)),
        };
        let name = ["fgsm", "pgd-linf", "apgd", "square", "pgd-momentum"][which];
        let mut objective = linear_objective(w, y);
        let adv = attack(name, &params).perturb(&x, &mut objective, &mut Rng::new(seed + 1)).unwrap();
        let dist = common::max_abs_diff(&adv, &x);
        prop_assert!(f64::from(dist) <= eps + 1e-6, "{name}: |delta| = {dist} > eps {eps}");
        prop_assert!(adv.min_all().unwrap().to_scalar::<f32>().unwrap() >= 0.0);
        prop_assert!(adv.max_all().unwrap().to_scalar::<f32>().unwrap() <= 1.0);
        if eps == 0.0 {
            prop_assert_eq!(
                adv.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
    }
}

fn eval_config(preset: Preset) -> EvalConfig {
    EvalConfig {
        preset,
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

/// Fitting a classifier on `train` through the flattening encoder, on the CPU, seed 0.
fn flatten_fit(train: &ImageSet) -> FitContext<'_> {
    FitContext {
        encoder: FrozenEncoder::new(&Flatten),
        train,
        device: &Device::Cpu,
        seed: 0,
        copy_encoder: None,
    }
}

/// The evaluation inputs of the flattening encoder on `(train, test)`, on the CPU, seed 1.
fn flat_inputs<'a>(
    (train, test): (&'a ImageSet, &'a ImageSet),
    config: &'a EvalConfig,
    ctx: &'a BuildContext,
) -> EvalInputs<'a> {
    EvalInputs {
        encoder: &Flatten,
        train,
        test,
        device: &Device::Cpu,
        seed: 1,
        config,
        ctx,
        copy_encoder: None,
    }
}

fn evaluator(name: &str, params: &str) -> Box<dyn Evaluator> {
    registry::build::<dyn Evaluator>(name, params, &BuildContext::cpu(0)).unwrap()
}

#[test]
fn probes_and_knn_reach_near_100_percent_on_separable_data() {
    let (train, test) = synthetic(0.02);
    let config = eval_config(Preset::None);
    let ctx = BuildContext::cpu(0);
    let inputs = flat_inputs((&train, &test), &config, &ctx);
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
        let report = fit_and_measure(name, evaluator(name, params).as_ref(), 0, &inputs)
            .unwrap()
            .report;
        assert!(
            report.clean_accuracy >= 0.95,
            "{name}: clean accuracy {}",
            report.clean_accuracy
        );
        assert!(report.robust.is_empty());
    }
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
    let summary = rossl::rossl_runtime::train::train(&asm, &run_dir, None).unwrap();
    rossl::rossl_runtime::eval::evaluate_run(&asm, &run_dir, &summary).unwrap();
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
            14,
            "strong preset: 6 attacks + 1 extra, x 2 radii"
        );
        let attacks: std::collections::BTreeSet<&str> =
            robust.iter().filter_map(|r| r["attack"].as_str()).collect();
        for expected in [
            "pgd-linf/ce",
            "pgd-linf/margin",
            "apgd-ce",
            "apgd-dlr",
            "fgsm/ce",
            "square",
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
        // the classifier that was attacked is saved beside results.json
        let head = run_dir.file(&files::probe(e["evaluator"].as_str().unwrap()));
        let tensors = candle_core::safetensors::load(&head, &Device::Cpu).unwrap();
        assert!(!tensors.is_empty(), "{}", head.display());
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

#[test]
fn knn_keeps_usable_gradients_where_all_neighbours_agree_and_pgd_lowers_its_accuracy_there() {
    use rossl::rossl_api::components::AttackLoss;
    use rossl::{rossl_nn::classify::labels_tensor, rossl_runtime::eval::ClassifierObjective};
    let (train, test) = synthetic(0.3);
    let k = 10;
    // test points whose 10 nearest training images (cosine similarity of the flattened pixels,
    // the kNN's own features) all share one class: where a vote count is flat
    let unit = |set: &ImageSet| {
        let x = rossl::rossl_api::batch::image_batch(
            set,
            &(0..set.len()).collect::<Vec<_>>(),
            &Device::Cpu,
        )
        .unwrap()
        .0
        .flatten_from(1)
        .unwrap();
        rossl::rossl_nn::l2_normalize(&x).unwrap()
    };
    let similarity = unit(&test)
        .matmul(&unit(&train).t().unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let unanimous: Vec<usize> = similarity
        .iter()
        .enumerate()
        .filter(|(_, row)| {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
            let first = train.labels[order[0]];
            order[..k].iter().all(|&n| train.labels[n] == first)
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        unanimous.len() >= 20,
        "{} unanimous points",
        unanimous.len()
    );
    let fit = flatten_fit(&train);
    let knn = evaluator("knn", "k = 10").fit(&fit).unwrap();
    let (x, labels) =
        rossl::rossl_api::batch::image_batch(&test, &unanimous, &Device::Cpu).unwrap();
    let mut objective = ClassifierObjective {
        classifier: knn.as_ref(),
        labels: labels_tensor(&labels, &Device::Cpu).unwrap(),
        label_values: labels.clone(),
        loss: AttackLoss::CrossEntropy,
        eot_samples: 1,
        draws: Rng::new(1),
        prediction_rng: Rng::new(2),
        targets: None,
    };
    let (_, gradient) = rossl::rossl_api::adversarial::input_gradient(&mut objective, &x).unwrap();
    let per_example = gradient
        .flatten_from(1)
        .unwrap()
        .abs()
        .unwrap()
        .sum(D::Minus1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        per_example.iter().all(|g| *g > 1e-3),
        "cross-entropy gradients vanish on unanimous neighbourhoods: {per_example:?}"
    );
    let accuracy = |images: &Tensor| {
        let predicted =
            rossl::rossl_nn::classify::predictions(&knn.logits(images, &mut Rng::new(0)).unwrap())
                .unwrap();
        rossl::rossl_nn::classify::accuracy(&predicted, &labels)
    };
    let before = accuracy(&x);
    let adversarial = attack(
        "pgd-linf",
        "eps = 0.15\nstep = 0.02\nsteps = 20\nrandom_start = false",
    )
    .perturb(&x, &mut objective, &mut Rng::new(3))
    .unwrap();
    let after = accuracy(&adversarial);
    assert!(
        before >= 0.9 && after <= before - 0.3,
        "CE-PGD on {} unanimous points: accuracy {before} before, {after} after",
        unanimous.len()
    );
}

#[test]
fn the_classifier_objective_gives_the_same_loss_and_success_in_one_pass_as_in_two() {
    use rossl::rossl_api::components::{AttackLoss, Objective};
    use rossl::{rossl_nn::classify::labels_tensor, rossl_runtime::eval::ClassifierObjective};
    let (train, test) = synthetic(0.3);
    let fit = flatten_fit(&train);
    let rows: Vec<usize> = (0..24).collect();
    let (clean, labels) = rossl::rossl_api::batch::image_batch(&test, &rows, &Device::Cpu).unwrap();
    // uniform noise with the test labels: some points right, some wrong
    let x = Tensor::rand(0f32, 1f32, clean.shape(), &Device::Cpu).unwrap();
    for (name, params) in [
        ("linear-probe", "epochs = 5\nlr = 0.01\nbatch_size = 32"),
        (
            "multi-crop-probe",
            "views = 4\nscale = [0.6, 1.0]\nepochs = 5\nlr = 0.01\nbatch_size = 32",
        ),
    ] {
        let classifier = evaluator(name, params).fit(&fit).unwrap();
        for loss in [
            AttackLoss::CrossEntropy,
            AttackLoss::Margin,
            AttackLoss::Dlr,
        ] {
            let objective = || ClassifierObjective {
                classifier: classifier.as_ref(),
                labels: labels_tensor(&labels, &Device::Cpu).unwrap(),
                label_values: labels.clone(),
                loss,
                eot_samples: 3,
                draws: Rng::new(4),
                prediction_rng: Rng::new(5),
                targets: None,
            };
            let (mut one, mut two) = (objective(), objective());
            let (loss_one, success_one) = one.loss_and_success(&x).unwrap();
            let loss_two = two.loss(&x).unwrap();
            let success_two = two.succeeded(&x).unwrap();
            assert_eq!(
                loss_one.to_vec1::<f32>().unwrap(),
                loss_two.to_vec1::<f32>().unwrap(),
                "{name} {loss:?}"
            );
            assert_eq!(success_one, success_two, "{name} {loss:?}");
            // some of both outcomes, so that the comparison means something
            let success = success_one.unwrap();
            assert!(
                success.contains(&true) && success.contains(&false),
                "{name} {loss:?}: {success:?}"
            );
        }
    }
}

#[test]
fn radii_listed_in_any_order_give_the_same_numbers() {
    // each radius draws its random starts from the stream of its rank by size, so the order of
    // `eval.eps` changes nothing (the cascade runs the smaller radius first either way)
    let (train, test) = synthetic(0.6);
    let ctx = BuildContext::cpu(0);
    let probe = evaluator("linear-probe", "epochs = 10\nlr = 0.01\nbatch_size = 32");
    let rows = |eps: Vec<f64>| {
        let config = EvalConfig {
            eps,
            apgd_steps: 4,
            square_queries: 8,
            ..eval_config(Preset::Strong)
        };
        let inputs = flat_inputs((&train, &test), &config, &ctx);
        let report = fit_and_measure("linear-probe", probe.as_ref(), 0, &inputs)
            .unwrap()
            .report;
        let mut rows: Vec<String> = report
            .robust
            .iter()
            .map(|r| format!("{} {:.6} {} {}", r.attack, r.eps, r.accuracy, r.broken))
            .collect();
        rows.sort();
        rows
    };
    let (small, large) = (4.0 / 255.0, 16.0 / 255.0);
    assert_eq!(rows(vec![small, large]), rows(vec![large, small]));
}
