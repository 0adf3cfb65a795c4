//! Every sanity check can fail: each is given a deliberately broken component and must fail, and a
//! sound one in the same place and must pass.

mod common;
use candle_core::{Device, Tensor, Var};
use common::fixtures::{small_encoder, synthetic, Flatten};
use rossl::rossl_api::adversarial::{input_gradient, project};
use rossl::rossl_api::components::{
    Attack, AttackLoss, AttackSpec, Buffer, BuildContext, Classifier, Embedding, Encoder,
    Evaluator, FitContext, ImageSet, Mode, Objective, Parameter, Preset,
};
use rossl::rossl_api::registry::{self, ParamError, Params};
use rossl::rossl_api::rng::Rng;
use rossl::rossl_api::Result;
use rossl::rossl_runtime::config::{EvalConfig, ExtraAttack};
use rossl::rossl_runtime::eval::{fit_and_measure, CheckResult, EvalInputs, EvaluationReport};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const EPS_ZERO: &str = "eps = 0 gives exactly the clean accuracy";
const MONOTONE: &str = "accuracy does not rise with eps (from the clean accuracy at eps 0)";
const MORE_STEPS: &str = "accuracy does not rise with more attack steps";
const ITERATIVE: &str = "iterative attacks beat a single step on the same loss";
const LARGE_EPS: &str = "a very large eps drives accuracy to near 0";
const GRADIENTS: &str = "input gradients are finite and large enough to attack with";
const BLACK_BOX: &str = "a black-box attack finds (almost) nothing the white-box attacks missed";
const BALL: &str = "perturbations stay in the eps ball and the pixel range [0, 1]";
const STATE: &str = "evaluation leaves weights, batch-norm statistics and the probe head unchanged";

// ---------------------------------------------------------------------------------------------
// Deliberately broken attacks, registered in this test binary like any plugin's.

/// Parameters of the broken test attacks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct BrokenParams {
    eps: f64,
    step: f64,
    steps: usize,
}

impl Default for BrokenParams {
    fn default() -> Self {
        BrokenParams {
            eps: 8.0 / 255.0,
            step: 2.0 / 255.0,
            steps: 8,
        }
    }
}

impl Params for BrokenParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    /// Returns its input.
    Identity,
    /// Signed steps *down* the objective.
    Descends,
    /// Steps of 2 eps with no projection onto the ball (the pixel range is kept).
    LeavesTheBall,
}

struct BrokenAttack {
    params: BrokenParams,
    flaw: Flaw,
}

impl Attack for BrokenAttack {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            eps: self.params.eps,
            steps: self.params.steps,
            step_size: Some(self.params.step),
            restarts: 1,
            random_start: false,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, _rng: &mut Rng) -> Result<Tensor> {
        let p = &self.params;
        let mut adv = x.detach();
        if self.flaw == Flaw::Identity {
            return Ok(adv);
        }
        for _ in 0..p.steps {
            let (_, g) = input_gradient(objective, &adv)?;
            adv = match self.flaw {
                Flaw::Descends => project(x, &(&adv - (g.sign()? * p.step)?)?, p.eps)?,
                _ => (&adv + (g.sign()? * (2.0 * p.eps))?)?.clamp(0.0, 1.0)?,
            };
        }
        Ok(adv)
    }
}

rossl::rossl_api::register! {
    kind: attack,
    name: "test-identity",
    summary: "test only: returns its input",
    params: BrokenParams,
    build: |p, _ctx| Ok(Box::new(BrokenAttack { params: p, flaw: Flaw::Identity })),
}
rossl::rossl_api::register! {
    kind: attack,
    name: "test-descent",
    summary: "test only: PGD that descends",
    params: BrokenParams,
    build: |p, _ctx| Ok(Box::new(BrokenAttack { params: p, flaw: Flaw::Descends })),
}
rossl::rossl_api::register! {
    kind: attack,
    name: "test-outside",
    summary: "test only: steps of 2 eps, never projected onto the ball",
    params: BrokenParams,
    build: |p, _ctx| Ok(Box::new(BrokenAttack { params: p, flaw: Flaw::LeavesTheBall })),
}

// ---------------------------------------------------------------------------------------------
// Classifiers: a sound linear probe, and broken variants of it.

fn linear_probe() -> Box<dyn Evaluator> {
    registry::build::<dyn Evaluator>(
        "linear-probe",
        "epochs = 10\nlr = 0.003\nbatch_size = 32",
        &BuildContext::cpu(0),
    )
    .unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum ProbeFlaw {
    None,
    /// Logits times 1e4: the softmax saturates and cross-entropy gradients vanish.
    Saturated,
    /// Logits of the input rounded to 1/64 outside the graph: no gradient reaches the input.
    Shattered,
}

struct Wrapped<'a> {
    inner: Box<dyn Classifier + 'a>,
    flaw: ProbeFlaw,
}

impl Classifier for Wrapped<'_> {
    fn logits(&self, images: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        match self.flaw {
            ProbeFlaw::None => self.inner.logits(images, rng),
            ProbeFlaw::Saturated => Ok((self.inner.logits(images, rng)? * 1e4)?),
            ProbeFlaw::Shattered => {
                let rounded = ((images.detach() * 64.0)?.round()? / 64.0)?;
                self.inner.logits(&rounded, rng)
            }
        }
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        self.inner.tensors()
    }
}

/// The linear probe, with a flaw.
struct Probe(ProbeFlaw);

impl Evaluator for Probe {
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>> {
        Ok(Box::new(Wrapped {
            inner: linear_probe().fit(ctx)?,
            flaw: self.0,
        }))
    }
}

/// A random linear head that, when `drifts`, changes its own weights at every use.
struct DriftingHead {
    drifts: bool,
}

struct DriftingClassifier<'a> {
    encoder: rossl::rossl_api::components::FrozenEncoder<'a>,
    weight: Var,
    drifts: bool,
}

impl Classifier for DriftingClassifier<'_> {
    fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let logits = self
            .encoder
            .features(images)?
            .matmul(&self.weight.as_tensor().detach())?;
        if self.drifts {
            self.weight.set(&(self.weight.as_tensor() + 1e-3)?)?;
        }
        Ok(logits)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        vec![("weight".into(), self.weight.as_tensor().clone())]
    }
}

impl Evaluator for DriftingHead {
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>> {
        let mut rng = Rng::new(ctx.seed);
        let f = ctx.encoder.feature_dim();
        let w: Vec<f32> = (0..f * ctx.train.classes)
            .map(|_| rng.normal() as f32 * 0.1)
            .collect();
        Ok(Box::new(DriftingClassifier {
            encoder: ctx.encoder,
            weight: Var::from_tensor(&Tensor::from_vec(w, (f, ctx.train.classes), ctx.device)?)?,
            drifts: self.drifts,
        }))
    }
}

/// An encoder whose evaluation mode runs batch norm in training mode (batch statistics, running
/// statistics updated): the classic broken evaluation.
struct TrainModeEncoder(Arc<dyn Encoder>);

impl Encoder for TrainModeEncoder {
    fn forward(&self, images: &Tensor, mode: Mode) -> Result<Embedding> {
        self.0.forward(images, train_in_eval(mode))
    }
    fn features(&self, images: &Tensor, mode: Mode) -> Result<Tensor> {
        self.0.features(images, train_in_eval(mode))
    }
    fn feature_dim(&self) -> usize {
        self.0.feature_dim()
    }
    fn projection_dim(&self) -> usize {
        self.0.projection_dim()
    }
    fn parameters(&self) -> Vec<Parameter> {
        self.0.parameters()
    }
    fn buffers(&self) -> Vec<Buffer> {
        self.0.buffers()
    }
}

/// Training mode where evaluation mode was asked for.
fn train_in_eval(mode: Mode) -> Mode {
    if mode == Mode::Eval {
        Mode::Train
    } else {
        mode
    }
}

// ---------------------------------------------------------------------------------------------

/// PGD as an extra attack: 10 steps of 0.05 from a random start (`eps` comes from the radius).
const PGD: &str = "pgd-linf";

fn config(preset: Preset, eps: &[f64], extra: &[&str]) -> EvalConfig {
    EvalConfig {
        preset,
        eps: eps.to_vec(),
        steps: 8,
        restarts: 1,
        apgd_steps: 10,
        square_queries: 200,
        check_images: 80,
        batch_size: 40,
        eot_samples: 2,
        large_eps: 0.5,
        extra_attacks: extra
            .iter()
            .map(|&name| ExtraAttack {
                name: name.to_string(),
                loss: AttackLoss::CrossEntropy,
                params: if name == PGD {
                    toml::from_str("steps = 10\nstep = 0.05\nrandom_start = true").unwrap()
                } else {
                    toml::Table::new()
                },
            })
            .collect(),
        ..EvalConfig::default()
    }
}

fn run(
    encoder: &dyn Encoder,
    data: &(ImageSet, ImageSet),
    evaluator: &dyn Evaluator,
    config: &EvalConfig,
) -> EvaluationReport {
    let ctx = BuildContext::cpu(0);
    let inputs = EvalInputs {
        encoder,
        train: &data.0,
        test: &data.1,
        device: &Device::Cpu,
        seed: 1,
        config,
        ctx: &ctx,
        copy_encoder: None,
    };
    fit_and_measure("probe", evaluator, 0, &inputs)
        .unwrap()
        .report
}

fn check<'a>(report: &'a EvaluationReport, name: &str) -> &'a CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {:#?}", report.checks))
}

fn assert_fails(report: &EvaluationReport, name: &str) {
    let c = check(report, name);
    assert!(
        !c.passed && !c.skipped,
        "`{name}` should fail: {}",
        c.detail
    );
}

fn assert_passes(report: &EvaluationReport, name: &str) {
    let c = check(report, name);
    assert!(c.passed && !c.skipped, "`{name}` should pass: {}", c.detail);
}

#[test]
fn a_sound_evaluation_passes_every_check() {
    let data = synthetic(0.3);
    let report = run(
        &Flatten,
        &data,
        &Probe(ProbeFlaw::None),
        &config(Preset::Strong, &[4.0 / 255.0, 8.0 / 255.0], &[]),
    );
    for c in &report.checks {
        assert!(c.passed && !c.skipped, "{}: {}", c.name, c.detail);
    }
    assert_eq!(report.checks.len(), 9);
    // every row and check is timed, and their times fit inside the evaluation's
    let rows: Option<f64> = report.robust.iter().map(|r| r.seconds).sum();
    let checks: Option<f64> = report.checks.iter().map(|c| c.seconds).sum();
    let (rows, checks) = (rows.expect("rows timed"), checks.expect("checks timed"));
    assert!(
        rows > 0.0 && checks > 0.0 && rows + checks <= report.seconds,
        "rows {rows} s + checks {checks} s against {} s in all",
        report.seconds
    );
}

#[test]
fn an_attack_that_returns_its_input_fails_the_large_eps_and_single_step_checks() {
    let data = synthetic(0.3);
    // a radius at which one signed step breaks most points of this data
    let eps = [0.15];
    let broken = run(
        &Flatten,
        &data,
        &Probe(ProbeFlaw::None),
        &config(Preset::None, &eps, &["test-identity"]),
    );
    assert_fails(&broken, LARGE_EPS);
    assert_fails(&broken, ITERATIVE);
    let sound = run(
        &Flatten,
        &data,
        &Probe(ProbeFlaw::None),
        &config(Preset::None, &eps, &[PGD]),
    );
    assert_passes(&sound, LARGE_EPS);
    assert_passes(&sound, ITERATIVE);
}

#[test]
fn an_attack_that_descends_fails_the_eps_and_steps_checks() {
    // noisy data, so that some test points are misclassified and descending can correct them
    let data = synthetic(1.2);
    let eps = [0.05, 0.1];
    let broken = run(
        &Flatten,
        &data,
        &Probe(ProbeFlaw::None),
        &config(Preset::None, &eps, &["test-descent"]),
    );
    assert_fails(&broken, MONOTONE);
    assert_fails(&broken, MORE_STEPS);
    let sound = run(
        &Flatten,
        &data,
        &Probe(ProbeFlaw::None),
        &config(Preset::None, &eps, &[PGD]),
    );
    assert_passes(&sound, MONOTONE);
    assert_passes(&sound, MORE_STEPS);
}

#[test]
fn an_attack_leaving_the_ball_fails_the_ball_check() {
    let data = synthetic(0.3);
    let eps = [8.0 / 255.0];
    let broken = run(
        &Flatten,
        &data,
        &Probe(ProbeFlaw::None),
        &config(Preset::None, &eps, &["test-outside"]),
    );
    assert_fails(&broken, BALL);
    let sound = run(
        &Flatten,
        &data,
        &Probe(ProbeFlaw::None),
        &config(Preset::None, &eps, &[PGD]),
    );
    assert_passes(&sound, BALL);
}

#[test]
fn a_saturated_softmax_fails_the_gradient_check() {
    let data = synthetic(0.3);
    let settings = config(Preset::Paper, &[8.0 / 255.0], &[]);
    let broken = run(&Flatten, &data, &Probe(ProbeFlaw::Saturated), &settings);
    assert_fails(&broken, GRADIENTS);
    let sound = run(&Flatten, &data, &Probe(ProbeFlaw::None), &settings);
    assert_passes(&sound, GRADIENTS);
}

#[test]
fn shattered_gradients_fail_the_black_box_check() {
    let data = synthetic(0.3);
    let settings = config(Preset::Strong, &[0.15], &[]);
    let broken = run(&Flatten, &data, &Probe(ProbeFlaw::Shattered), &settings);
    assert_fails(&broken, BLACK_BOX);
    assert_fails(&broken, GRADIENTS);
    let sound = run(&Flatten, &data, &Probe(ProbeFlaw::None), &settings);
    assert_passes(&sound, BLACK_BOX);
}

#[test]
fn batch_norm_left_in_training_mode_fails_the_eps_zero_and_state_checks() {
    let data = synthetic(0.3);
    let settings = config(Preset::Paper, &[8.0 / 255.0], &[]);
    let encoder = small_encoder();
    let broken = run(
        &TrainModeEncoder(encoder.clone()),
        &data,
        &Probe(ProbeFlaw::None),
        &settings,
    );
    assert_fails(&broken, EPS_ZERO);
    assert_fails(&broken, STATE);
    let sound = run(encoder.as_ref(), &data, &Probe(ProbeFlaw::None), &settings);
    assert_passes(&sound, EPS_ZERO);
    assert_passes(&sound, STATE);
}

#[test]
fn a_probe_head_changed_during_evaluation_fails_the_state_check() {
    let data = synthetic(0.3);
    let settings = config(Preset::Paper, &[8.0 / 255.0], &[]);
    let broken = run(&Flatten, &data, &DriftingHead { drifts: true }, &settings);
    assert_fails(&broken, STATE);
    assert!(check(&broken, STATE).detail.contains("classifier weight"));
    let sound = run(&Flatten, &data, &DriftingHead { drifts: false }, &settings);
    assert_passes(&sound, STATE);
}
