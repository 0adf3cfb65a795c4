//! `pgd-linf`: projected gradient ascent in an L-infinity ball.

use crate::select::Best;
use candle_core::Tensor;
use rossl_api::adversarial::{check_budget, input_gradient, project, start};
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `pgd-linf`. Defaults: the paper's training attack (eps 8/255, step 0.01, 5
    /// steps, zero start).
    pub struct PgdParams {
        /// Radius of the L-infinity ball.
        pub eps: f64 = 8.0 / 255.0,
        /// Step size of each signed-gradient step.
        pub step: f64 = 0.01,
        /// Steps per run.
        pub steps: usize = 5,
        /// Start from a uniform point of the ball (otherwise from the input).
        pub random_start: bool = false,
        /// Runs; per example the best (successful, or highest-loss) result is kept.
        pub restarts: usize = 1,
    }
}

impl Params for PgdParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_budget(self.eps, self.step).map_err(|e| ParamError::new("eps", e.to_string()))?;
        if self.steps == 0 {
            return Err(ParamError::new("steps", "needs at least one step"));
        }
        if self.step <= 0.0 {
            return Err(ParamError::new(
                "step",
                "must be > 0: a step of 0 never moves",
            ));
        }
        if self.restarts == 0 {
            return Err(ParamError::new("restarts", "needs at least one run"));
        }
        Ok(())
    }
}

/// Projected gradient descent (ascent on the objective) under an L-infinity constraint.
#[derive(Clone, Debug)]
pub struct Pgd {
    params: PgdParams,
}

impl Pgd {
    /// The attack with these settings.
    pub fn new(params: PgdParams) -> Self {
        Pgd { params }
    }

    fn run(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
        let p = &self.params;
        let mut adv = start(x, p.eps, p.random_start, rng)?;
        for _ in 0..p.steps {
            let (_, gradient) = input_gradient(objective, &adv)?;
            let candidate = (&adv + (gradient.sign()? * p.step)?)?;
            adv = project(x, &candidate, p.eps)?;
        }
        Ok(adv)
    }
}

impl Attack for Pgd {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            eps: self.params.eps,
            steps: self.params.steps,
            step_size: Some(self.params.step),
            restarts: self.params.restarts,
            random_start: self.params.random_start,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
        let x = x.detach();
        if self.params.restarts == 1 {
            return self.run(&x, objective, rng);
        }
        let mut best = Best::new();
        for _ in 0..self.params.restarts {
            let candidate = self.run(&x, objective, rng)?;
            best.offer(candidate, objective)?;
        }
        Ok(best.into_inner().unwrap_or(x))
    }
}

rossl_api::register! {
    kind: attack,
    name: "pgd-linf",
    summary: "PGD in an L-infinity ball: signed-gradient steps, projection to the ball and [0, 1], restarts",
    params: PgdParams,
    build: |p, _ctx| Ok(Box::new(Pgd::new(p))),
}
