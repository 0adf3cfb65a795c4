//! Which images each result counts: a per-attack row counts an image correct only when it is
//! correct clean too.

mod common;
use candle_core::{Device, Tensor};
use common::fixtures::{synthetic, Flatten};
use rossl::rossl_api::adversarial::{input_gradient, project};
use rossl::rossl_api::components::{
    Attack, AttackLoss, AttackSpec, BuildContext, Evaluator, Objective, Preset,
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
    let (train, test) = synthetic(1.5);
    let mut config = config(Preset::None, 0.1);
    config.extra_attacks = vec![ExtraAttack {
        name: "test-fixer".into(),
        loss: AttackLoss::CrossEntropy,
        params: toml::Table::new(),
    }];
    let ctx = BuildContext::cpu(0);
    let inputs = EvalInputs {
        encoder: &Flatten,
        train: &train,
        test: &test,
        device: &Device::Cpu,
        seed: 1,
        config: &config,
        ctx: &ctx,
    };
    let probe = evaluator("linear-probe", "epochs = 5\nlr = 0.01\nbatch_size = 32");
    let report = fit_and_measure("linear-probe", probe.as_ref(), 0, &inputs)
        .unwrap()
        .report;
    assert!(
        report.clean_accuracy < 0.95,
        "the test needs misclassified images: clean accuracy {}",
        report.clean_accuracy
    );
    let row = &report.robust[0];
    assert_eq!(row.images, test.len());
    // one attack: its row is the worst case (correct clean and under the attack)
    assert_eq!(
        row.accuracy, report.worst_case[0].accuracy,
        "the row counts images misclassified clean that the attack fixed (clean accuracy {})",
        report.clean_accuracy
    );
    assert!(row.accuracy <= report.clean_accuracy);
}
