//! Which images each result counts: a per-attack row counts an image correct only when it is
//! correct clean too, and an attack on the survivors of a batch judges them under the draws
//! (the multi-crop probe's crops) of the clean pass.

mod common;
use candle_core::{Device, Tensor};
use common::fixtures::{synthetic, Flatten};
use rossl::rossl_api::adversarial::{input_gradient, project};
use rossl::rossl_api::components::{
    Attack, AttackLoss, AttackSpec, BuildContext, Classifier, Evaluator, Objective, Preset,
};
use rossl::rossl_api::registry::{self, ParamError, Params};
use rossl::rossl_api::rng::Rng;
use rossl::rossl_api::Result;
use rossl::rossl_runtime::config::{EvalConfig, ExtraAttack};
use rossl::rossl_runtime::eval::{fit_and_measure, EvalInputs};
use serde::{Deserialize, Serialize};

/// Parameters of the test's descending attack.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct DescentParams {
    eps: f64,
}

impl Default for DescentParams {
    fn default() -> Self {
        DescentParams { eps: 0.1 }
    }
}

impl Params for DescentParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        Ok(())
    }
}

/// Signed steps *down* the objective: it "fixes" misclassified images.
struct Descent(DescentParams);

impl Attack for Descent {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            eps: self.0.eps,
            steps: 10,
            step_size: Some(self.0.eps / 4.0),
            restarts: 1,
            random_start: false,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, _rng: &mut Rng) -> Result<Tensor> {
        let mut adv = x.detach();
        for _ in 0..10 {
            let (_, g) = input_gradient(objective, &adv)?;
            adv = project(x, &(&adv - (g.sign()? * (self.0.eps / 4.0))?)?, self.0.eps)?;
        }
        Ok(adv)
    }
}

rossl::rossl_api::register! {
    kind: attack,
    name: "test-fixer",
    summary: "test only: descends the objective, fixing misclassified images",
    params: DescentParams,
    build: |p, _ctx| Ok(Box::new(Descent(p))),
}

fn evaluator(name: &str, params: &str) -> Box<dyn Evaluator> {
    registry::build::<dyn Evaluator>(name, params, &BuildContext::cpu(0)).unwrap()
}

fn config(preset: Preset, eps: f64) -> EvalConfig {
    EvalConfig {
        preset,
        eps: vec![eps],
        steps: 2,
        restarts: 1,
        apgd: false,
        fgsm: false,
        square: true,
        square_queries: 5,
        check_images: 8,
        batch_size: 80,
        eot_samples: 1,
        large_eps: 0.5,
        ..EvalConfig::default()
    }
}

#[test]
fn a_per_attack_row_counts_an_image_the_attack_fixes_as_wrong() {
    // noisy data: the probe misclassifies some test images, and the descent fixes them
    let mut config = config(Preset::None, 0.1);
    // standalone rows: the attack runs on every image correct clean
    config.per_attack = true;
    config.extra_attacks = vec![ExtraAttack {
        name: "test-fixer".into(),
        loss: AttackLoss::CrossEntropy,
        params: toml::Table::new(),
    }];
    let report = report_of(Measured {
        noise: 1.5,
        evaluator: "linear-probe",
        params: LINEAR_PROBE,
        config: &config,
        seed: 1,
    });
    assert!(
        report.clean_accuracy < 0.95,
        "the test needs misclassified images: clean accuracy {}",
        report.clean_accuracy
    );
    let row = &report.robust[0];
    let correct_clean = (report.clean_accuracy * report.test_images as f64).round() as usize;
    assert_eq!(
        row.images, correct_clean,
        "it ran on the images correct clean"
    );
    // one attack: its standalone figure and its cumulative one are the worst case (correct clean
    // and under the attack)
    assert_eq!(
        row.standalone,
        Some(report.worst_case[0].accuracy),
        "the row counts images misclassified clean that the attack fixed (clean accuracy {})",
        report.clean_accuracy
    );
    assert_eq!(row.accuracy, report.worst_case[0].accuracy);
    assert!(row.accuracy <= report.clean_accuracy);
}

/// What a measurement runs: the synthetic data's noise, the evaluator and its parameters, the
/// evaluation settings and the seed.
struct Measured<'a> {
    noise: f64,
    evaluator: &'a str,
    params: &'a str,
    config: &'a EvalConfig,
    seed: u64,
}

/// The report of `m.evaluator` fitted on the flattened synthetic images and measured.
fn report_of(m: Measured<'_>) -> rossl::rossl_runtime::eval::EvaluationReport {
    let (train, test) = synthetic(m.noise);
    let ctx = BuildContext::cpu(0);
    let inputs = EvalInputs {
        encoder: &Flatten,
        train: &train,
        test: &test,
        device: &Device::Cpu,
        seed: m.seed,
        config: m.config,
        ctx: &ctx,
        copy_encoder: None,
    };
    let probe = evaluator(m.evaluator, m.params);
    fit_and_measure(m.evaluator, probe.as_ref(), 0, &inputs)
        .unwrap()
        .report
}

/// The linear probe's parameters in these tests.
const LINEAR_PROBE: &str = "epochs = 5\nlr = 0.01\nbatch_size = 32";

/// The report of a multi-crop probe with small crops (an image's prediction depends on its crop)
/// on noisy synthetic data under `config`.
fn multi_crop_report(config: &EvalConfig) -> rossl::rossl_runtime::eval::EvaluationReport {
    report_of(Measured {
        noise: 0.5,
        evaluator: "multi-crop-probe",
        params: "views = 1\nscale = [0.05, 0.15]\nepochs = 10\nlr = 0.01\nbatch_size = 32",
        config,
        seed: 3,
    })
}

#[test]
fn survivors_of_the_multi_crop_probe_are_judged_under_the_crops_of_the_clean_pass() {
    // at eps 0 no attack moves an image, so every image correct clean stays correct: unless the
    // survivors (on which Square runs) are judged under other crops than in the clean pass
    let report = multi_crop_report(&config(Preset::Strong, 0.0));
    let square = report
        .robust
        .iter()
        .find(|r| r.attack == "square")
        .expect("a square row");
    assert!(
        square.images > 0 && square.images < report.test_images,
        "Square runs on a strict subset of the batch ({} of {})",
        square.images,
        report.test_images
    );
    assert_eq!(square.broken, 0, "survivors judged under other crops");
    assert_eq!(square.accuracy, report.clean_accuracy);
    assert_eq!(report.worst_case[0].accuracy, report.clean_accuracy);
}

/// A random classifier of 2 classes: for the image at row r of a batch, the r-th draw of `rng`
/// decides between class 0 and class 1 (the input does not matter).
struct Coin;

impl Classifier for Coin {
    fn logits(&self, images: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let b = images.dim(0)?;
        let logits: Vec<f32> = (0..b)
            .flat_map(|_| {
                if rng.bernoulli(0.5) {
                    [1.0, 0.0]
                } else {
                    [0.0, 1.0]
                }
            })
            .collect();
        Ok(Tensor::from_vec(logits, (b, 2), images.device())?)
    }

    fn is_random(&self) -> bool {
        true
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
}

#[test]
fn rows_of_a_batch_get_the_draws_of_their_rows_in_the_whole_batch() {
    let (_, test) = synthetic(0.1);
    let x = rossl::rossl_api::batch::image_batch(&test, &(0..12).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap()
        .0;
    let rows = [1usize, 4, 5, 10];
    let index = Tensor::new(&[1u32, 4, 5, 10], &Device::Cpu).unwrap();
    let subset = x.index_select(&index, 0).unwrap();
    let rng = Rng::new(9);
    let whole = Coin.logits(&x, &mut rng.clone()).unwrap();
    let mut expected = whole.index_select(&index, 0).unwrap();
    let mut got = Coin
        .logits_at_rows(&subset, &rows, 12, &mut rng.clone())
        .unwrap();
    assert_eq!(
        got.to_vec2::<f32>().unwrap(),
        expected.to_vec2::<f32>().unwrap()
    );
    // the multi-crop probe's own cut of the draws
    let (train, _) = synthetic(0.1);
    let fit = rossl::rossl_api::components::FitContext {
        encoder: rossl::rossl_api::components::FrozenEncoder::new(&Flatten),
        train: &train,
        device: &Device::Cpu,
        seed: 0,
        copy_encoder: None,
    };
    let probe = evaluator("multi-crop-probe", "views = 3\nepochs = 1")
        .fit(&fit)
        .unwrap();
    expected = probe
        .logits(&x, &mut rng.clone())
        .unwrap()
        .index_select(&index, 0)
        .unwrap();
    got = probe
        .logits_at_rows(&subset, &rows, 12, &mut rng.clone())
        .unwrap();
    let diff = (got - expected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff < 1e-5,
        "the probe's rows differ from the whole batch's by {diff}"
    );
}

#[test]
fn each_attack_runs_on_the_survivors_and_breaks_carry_to_larger_radii() {
    let mut config = config(Preset::Strong, 0.05);
    config.eps = vec![0.1, 0.05];
    config.fgsm = true;
    let report = probe_report(&config, 2);
    let n = report.test_images as f64;
    let count = |fraction: f64| (fraction * n).round() as usize;
    // eps 0.05 (listed second) runs first: its first attack runs on every image correct clean
    let rows_at = |eps: f64| -> Vec<&rossl::rossl_runtime::eval::RobustResult> {
        report.robust.iter().filter(|r| r.eps == eps).collect()
    };
    let (small, large) = (rows_at(0.05), rows_at(0.1));
    assert_eq!(small.len(), 4, "pgd ce, pgd margin, fgsm, square");
    let worst = |eps: f64| report.worst_at(eps).unwrap();
    assert!(
        count(worst(0.05)) < count(report.clean_accuracy),
        "the test needs breaks at the small radius"
    );
    for (rows, start) in [
        (&small, count(report.clean_accuracy)),
        // an image broken at 0.05 is broken at 0.1 without being attacked there
        (&large, count(worst(0.05))),
    ] {
        let mut still = start;
        for r in rows.iter() {
            assert!(r.cumulative);
            assert_eq!(r.images, still, "{} ran on the survivors", r.attack);
            still -= r.broken;
            assert_eq!(count(r.accuracy), still, "{}: accuracy after it", r.attack);
        }
        assert_eq!(
            still,
            count(worst(rows[0].eps)),
            "the last row is the worst case"
        );
    }
    assert!(worst(0.1) <= worst(0.05));
}

/// The report of the linear probe on the synthetic data under `config`, with `seed`.
fn probe_report(config: &EvalConfig, seed: u64) -> rossl::rossl_runtime::eval::EvaluationReport {
    report_of(Measured {
        noise: 0.6,
        evaluator: "linear-probe",
        params: LINEAR_PROBE,
        config,
        seed,
    })
}

/// Every check of `report` passed (none skipped but the named ones).
fn assert_checks_pass(report: &rossl::rossl_runtime::eval::EvaluationReport) {
    for c in &report.checks {
        assert!(c.passed, "{}: {}", c.name, c.detail);
    }
}

#[test]
fn the_autoattack_preset_runs_its_four_attacks_in_order_on_the_survivors() {
    let mut config = config(Preset::Autoattack, 0.15);
    config.check_images = 40;
    let report = probe_report(&config, 4);
    let labels: Vec<&str> = report.robust.iter().map(|r| r.attack.as_str()).collect();
    assert_eq!(labels, ["apgd-ce", "apgd-t", "fab-t", "square"]);
    let steps: Vec<usize> = report.robust.iter().map(|r| r.steps).collect();
    assert_eq!(steps, [100, 100, 100, 5000], "AutoAttack's fixed budgets");
    let mut still = report.robust[0].images;
    for r in &report.robust {
        assert_eq!(r.images, still, "{} ran on the survivors", r.attack);
        still -= r.broken;
    }
    assert!(
        report.robust[0].broken > 0,
        "the test needs APGD-CE to break points"
    );
    assert_eq!(
        report.robust.last().map(|r| r.accuracy),
        report.worst_case.first().map(|w| w.accuracy)
    );
    assert_checks_pass(&report);
}

#[test]
fn under_l2_every_attack_of_the_strong_preset_is_built_in_its_l2_form() {
    let mut config = config(Preset::Strong, 1.0);
    config.norm = rossl::rossl_api::norm::Norm::L2;
    // steps of eps / 4: ten of them reach the edge of the ball, as one FGM step does
    config.steps = 10;
    // Square's L2 start (blocks of a pseudo-Gaussian pattern) does not wreck an image the way
    // the L-infinity stripes do: at the large radius it needs more than a handful of queries
    config.square_queries = 100;
    config.apgd = true;
    config.fgsm = true;
    config.check_images = 40;
    let report = probe_report(&config, 4);
    let labels: Vec<&str> = report.robust.iter().map(|r| r.attack.as_str()).collect();
    assert_eq!(
        labels,
        [
            "pgd-l2/ce",
            "pgd-l2/margin",
            "apgd-ce",
            "apgd-dlr",
            "fgm/ce",
            "square-l2"
        ]
    );
    assert!(
        report.threat_model.starts_with("L2"),
        "{}",
        report.threat_model
    );
    // an L2 radius of 1 on 16 x 16 images is an L-infinity radius of 1/16 on average: it breaks
    // points, and every perturbation stays in the L2 ball
    assert!(report.worst_case[0].accuracy < report.clean_accuracy);
    assert_checks_pass(&report);
}

#[test]
fn targeted_attacks_run_through_a_random_classifier_on_subsets_of_subsets() {
    // APGD-T and FAB-T run once per target class on the rows still correct, which are rows of
    // the survivors the main pass hands them: the multi-crop probe must judge each under the
    // crops its row had in the clean pass. At eps 0 nothing may change.
    let mut config = config(Preset::Autoattack, 0.0);
    config.check_images = 16;
    let report = multi_crop_report(&config);
    for r in &report.robust {
        assert_eq!(r.broken, 0, "{} changed a prediction at eps 0", r.attack);
    }
    assert_eq!(report.worst_case[0].accuracy, report.clean_accuracy);
}

#[test]
fn an_attack_on_the_survivors_starts_them_where_an_attack_on_every_point_would() {
    // random starts are drawn for the whole batch and read at the attacked rows: running each
    // attack alone on every point correct clean (eval.per_attack) finds, image by image, what
    // the cascade finds, so the two worst cases agree on a deterministic classifier
    let mut strong = config(Preset::Strong, 0.08);
    strong.restarts = 2;
    let cascade = probe_report(&strong, 5);
    strong.per_attack = true;
    let alone = probe_report(&strong, 5);
    assert!(cascade.worst_case[0].accuracy < cascade.clean_accuracy);
    assert_eq!(cascade.worst_case, alone.worst_case);

    // the same under the autoattack preset, whose targeted attacks start each row of every
    // target class's run where a run on the batch would (the unit test of `AttackRun` shows
    // the starts themselves)
    let mut targeted = config(Preset::Autoattack, 0.08);
    let cascade = probe_report(&targeted, 5);
    targeted.per_attack = true;
    let alone = probe_report(&targeted, 5);
    let apgd_t = |r: &rossl::rossl_runtime::eval::EvaluationReport| {
        r.robust
            .iter()
            .find(|a| a.attack == "apgd-t")
            .map(|a| a.broken)
    };
    assert!(
        apgd_t(&cascade).is_some_and(|b| b > 0),
        "{:?}",
        cascade.robust
    );
    assert_eq!(cascade.worst_case, alone.worst_case);
}
