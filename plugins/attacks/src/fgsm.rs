//! `fgsm`: one signed-gradient step (Goodfellow et al. 2015), optionally from a random start
//! (Wong et al. 2020).

use candle_core::Tensor;
use rossl_api::adversarial::{input_gradient, project, start};
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::params::{finite_positive, radius, ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `fgsm`.
    pub struct FgsmParams {
        /// Radius of the L-infinity ball.
        pub eps: f64 = 8.0 / 255.0,
        /// Step size (unset: eps).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step: Option<f64> = None,
        /// Start from a uniform point of the ball.
        pub random_start: bool = false,
    }
}

impl Params for FgsmParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        radius("eps", self.eps)?;
        self.step.map_or(Ok(()), |s| finite_positive("step", s))
    }
}

/// The fast gradient sign method.
pub struct Fgsm(pub FgsmParams);

impl Attack for Fgsm {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            eps: self.0.eps,
            steps: 1,
            step_size: Some(self.0.step.unwrap_or(self.0.eps)),
            restarts: 1,
            random_start: self.0.random_start,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
        let (x, eps) = (x.detach(), self.0.eps);
        let start = start(&x, eps, self.0.random_start, rng)?;
        let (_, gradient) = input_gradient(objective, &start)?;
        let step = self.0.step.unwrap_or(eps);
        project(&x, &(&start + (gradient.sign()? * step)?)?, eps)
    }
}

rossl_api::register! {
    kind: attack,
    name: "fgsm",
    summary: "one signed-gradient step of size eps (or `step`), optionally from a random start",
    params: FgsmParams,
    build: |p, _ctx| Ok(Box::new(Fgsm(p))),
}
