//! `pgd-l2`: projected gradient ascent in an L2 ball: each step moves along the normalised
//! gradient, then projects onto the ball of radius eps around the input and onto [0, 1].

use candle_core::{Tensor, D};
use rossl_api::adversarial::input_gradient;
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `pgd-l2`.
    pub struct PgdL2Params {
        /// Radius of the L2 ball (per example).
        pub eps: f64 = 0.5,
        /// Length of each step.
        pub step: f64 = 0.1,
        /// Steps.
        pub steps: usize = 10,
    }
}

impl Params for PgdL2Params {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !(self.eps >= 0.0 && self.step >= 0.0) {
            return Err(ParamError::new("eps", "radius and step must be >= 0"));
        }
        Ok(())
    }
}

/// The attack.
pub struct PgdL2 {
    params: PgdL2Params,
}

/// Per-example L2 norms of (B, ...) as (B, 1, ..., 1) for broadcasting.
fn norms(t: &Tensor) -> Result<Tensor> {
    let b = t.dim(0)?;
    let flat = t.reshape((b, ()))?;
    let n = flat.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    let mut shape = vec![b];
    shape.extend(std::iter::repeat_n(1, t.rank() - 1));
    Ok(n.reshape(shape.as_slice())?)
}

impl Attack for PgdL2 {
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
        let x = x.detach();
        let mut adv = x.clone();
        for _ in 0..self.params.steps {
            let (_, g) = input_gradient(objective, &adv)?;
            let direction = g.broadcast_div(&(norms(&g)? + 1e-12)?)?;
            let moved = (&adv + (direction * self.params.step)?)?;
            let delta = (moved - &x)?;
            let scale = (norms(&delta)? + 1e-12)?
                .recip()?
                .affine(self.params.eps, 0.0)?
                .clamp(0.0, 1.0)?;
            adv = (&x + delta.broadcast_mul(&scale)?)?.clamp(0.0, 1.0)?;
        }
        Ok(adv)
    }
}

rossl_api::register! {
    kind: attack,
    name: "pgd-l2",
    summary: "(example dynamic plugin) PGD in an L2 ball: normalised-gradient steps, projection to the ball and [0, 1]",
    params: PgdL2Params,
    build: |p, _ctx| Ok(Box::new(PgdL2 { params: p })),
}
