//! `pgd-momentum`: MI-FGSM (Dong et al. 2018), signed steps along `g = decay g + grad / |grad|_1`
//! (per example), projected onto the ball and [0, 1]. The solution of lab 2 (docs/labs).

use candle_core::{Tensor, D};
use rossl_api::adversarial::{input_gradient, project, start};
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::params::{at_least_one, finite_positive, radius, ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `pgd-momentum`.
    pub struct MomentumParams {
        /// Radius of the L-infinity ball.
        pub eps: f64 = 8.0 / 255.0,
        /// Step size.
        pub step: f64 = 2.0 / 255.0,
        /// Steps.
        pub steps: usize = 10,
        /// Decay of the accumulated gradient (Dong et al.: 1.0).
        pub decay: f64 = 1.0,
        /// Start from a uniform point of the ball.
        pub random_start: bool = false,
    }
}

impl Params for MomentumParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        radius("eps", self.eps)?;
        finite_positive("step", self.step)?;
        at_least_one("steps", self.steps)?;
        radius("decay", self.decay)
    }
}

/// The momentum iterative attack.
pub struct Momentum(pub MomentumParams);

impl Attack for Momentum {
    fn spec(&self) -> AttackSpec {
        let p = &self.0;
        AttackSpec {
            eps: p.eps,
            steps: p.steps,
            step_size: Some(p.step),
            restarts: 1,
            random_start: p.random_start,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
        let (p, x) = (&self.0, x.detach());
        let mut adv = start(&x, p.eps, p.random_start, rng)?;
        let mut g = x.zeros_like()?;
        for _ in 0..p.steps {
            let (_, grad) = input_gradient(objective, &adv)?;
            // per-example L1 norm, shaped (B, 1, ..., 1) to broadcast over the image
            let mut shape = vec![1; grad.rank()];
            shape[0] = grad.dim(0)?;
            let l1 = grad
                .abs()?
                .flatten_from(1)?
                .sum(D::Minus1)?
                .reshape(shape)?;
            g = ((g * p.decay)? + grad.broadcast_div(&(l1 + 1e-12)?)?)?;
            adv = project(&x, &(&adv + (g.sign()? * p.step)?)?, p.eps)?;
        }
        Ok(adv)
    }
}

rossl_api::register! {
    kind: attack,
    name: "pgd-momentum",
    summary: "momentum iterative method (MI-FGSM): signed steps along an L1-normalised gradient accumulated with a decay",
    params: MomentumParams,
    build: |p, _ctx| Ok(Box::new(Momentum(p))),
}
