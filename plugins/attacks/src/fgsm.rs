//! `fgsm`: one signed-gradient step (Goodfellow et al. 2015), optionally from a random start
//! (Wong et al. 2020).

use candle_core::Tensor;
use rossl_api::adversarial::{check_budget, input_gradient, project, uniform_delta};
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;
use serde::{Deserialize, Serialize};

/// Parameters of `fgsm`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FgsmParams {
    /// Radius of the L-infinity ball.
    pub eps: f64,
    /// Step size (unset: eps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// Start from a uniform point of the ball.
    pub random_start: bool,
}

impl Default for FgsmParams {
    fn default() -> Self {
        FgsmParams {
            eps: 8.0 / 255.0,
            step: None,
            random_start: false,
        }
    }
}

impl Params for FgsmParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_budget(self.eps, 0.0).map_err(|e| ParamError::new("eps", e.to_string()))?;
        match self.step {
            Some(step) if !(step > 0.0 && step.is_finite()) => Err(ParamError::new(
                "step",
                "must be a finite number > 0 (leave it out for a step of eps)",
            )),
            _ => Ok(()),
        }
    }
}

/// The fast gradient sign method.
#[derive(Clone, Debug)]
pub struct Fgsm {
    params: FgsmParams,
}

impl Fgsm {
    /// The attack with these settings.
    pub fn new(params: FgsmParams) -> Self {
        Fgsm { params }
    }

    fn step(&self) -> f64 {
        self.params.step.unwrap_or(self.params.eps)
    }
}

impl Attack for Fgsm {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            name: "fgsm".into(),
            eps: self.params.eps,
            steps: 1,
            step_size: Some(self.step()),
            restarts: 1,
            random_start: self.params.random_start,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
        let x = x.detach();
        let eps = self.params.eps;
        let start = if self.params.random_start && eps > 0.0 {
            project(&x, &(&x + uniform_delta(&x, eps, rng)?)?, eps)?
        } else {
            x.clone()
        };
        let (_, gradient) = input_gradient(objective, &start)?;
        let candidate = (&start + (gradient.sign()? * self.step())?)?;
        project(&x, &candidate, eps)
    }
}

rossl_api::register! {
    kind: attack,
    name: "fgsm",
    summary: "one signed-gradient step of size eps (or `step`), optionally from a random start",
    params: FgsmParams,
    build: |p, _ctx| Ok(Box::new(Fgsm::new(p))),
}
