//! `fgsm`: one signed-gradient step (Goodfellow et al. 2015), optionally from a random start
//! (Wong et al. 2020). With `norm = "l2"` it is FGM, the fast gradient method: one step of L2
//! length eps (or `step`) along `gradient / ||gradient||_2`, then projection onto the L2 ball and
//! [0, 1].

use candle_core::Tensor;
use rossl_api::adversarial::input_gradient;
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::norm::Norm;
use rossl_api::params::{finite_positive, radius, ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `fgsm`.
    pub struct FgsmParams {
        /// Radius of the ball.
        pub eps: f64 = 8.0 / 255.0,
        /// Step size (unset: eps), in `norm`: per pixel under L-infinity, the step's L2 length
        /// under L2.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step: Option<f64> = None,
        /// Start from a random point of the ball ([`Norm::start`]).
        pub random_start: bool = false,
        /// The threat model: `linf` (FGSM, a signed step) or `l2` (FGM, a step along the
        /// L2-normalised gradient).
        #[serde(skip_serializing_if = "Norm::is_linf")]
        pub norm: Norm = Norm::Linf,
    }
}

impl Params for FgsmParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        radius("eps", self.eps)?;
        self.step.map_or(Ok(()), |s| finite_positive("step", s))
    }
}

/// The fast gradient sign method (L-infinity), or the fast gradient method (L2).
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
        let (x, eps, norm) = (x.detach(), self.0.eps, self.0.norm);
        let start = norm.start(&x, eps, self.0.random_start, rng)?;
        let (_, gradient) = input_gradient(objective, &start)?;
        let step = self.0.step.unwrap_or(eps);
        norm.project(&x, &(&start + (norm.steepest(&gradient)? * step)?)?, eps)
    }
}

rossl_api::register! {
    kind: attack,
    name: "fgsm",
    summary: "one signed-gradient step of size eps (or `step`), optionally from a random start; FGM (a step along grad/||grad||_2) with norm = \"l2\"",
    params: FgsmParams,
    build: |p, _ctx| Ok(Box::new(Fgsm(p))),
}
