//! `pgd` and `pgd-linf`: projected gradient ascent in a norm ball.
//!
//! Each step moves by `step` along the steepest-ascent direction of the gradient in the chosen
//! norm ([`Norm::steepest`]: its sign under L-infinity, the gradient over its L2 norm under L2),
//! then projects onto the ball of radius `eps` and onto [0, 1] ([`Norm::project`]). `pgd` takes
//! either norm (`norm = "linf"` or `"l2"`); `pgd-linf` is the same attack held to L-infinity (its
//! name states its norm, so `norm = "l2"` is refused there).

use crate::select::Best;
use candle_core::Tensor;
use rossl_api::adversarial::{check_budget, input_gradient};
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::norm::Norm;
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;
use serde::{Deserialize, Serialize};

rossl_api::params! {
    /// Parameters of `pgd` (and of `pgd-linf`, through [`PgdLinfParams`]). Defaults: the paper's
    /// training attack (L-infinity, eps 8/255, step 0.01, 5 steps, zero start).
    pub struct PgdParams {
        /// Radius of the ball.
        pub eps: f64 = 8.0 / 255.0,
        /// Step size: the length, in `norm`, of each step (a signed-gradient step of this size per
        /// pixel under L-infinity, a step of this L2 length along the gradient under L2).
        pub step: f64 = 0.01,
        /// Steps per run.
        pub steps: usize = 5,
        /// Start from a random point of the ball (otherwise from the input): uniform in the cube
        /// under L-infinity, a uniformly random direction at a uniform fraction of eps under L2.
        pub random_start: bool = false,
        /// Runs; per example the best (successful, or highest-loss) result is kept.
        pub restarts: usize = 1,
        /// The threat model: `linf` (L-infinity ball) or `l2` (L2 ball, per example).
        #[serde(skip_serializing_if = "Norm::is_linf")]
        pub norm: Norm = Norm::Linf,
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

/// Parameters of `pgd-linf`: those of `pgd`, with `norm` held to `linf`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PgdLinfParams(pub PgdParams);

impl Params for PgdLinfParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        self.0.validate()?;
        if self.0.norm != Norm::Linf {
            return Err(ParamError::new(
                "norm",
                format!(
                    "`pgd-linf` attacks in the L-infinity ball only; for an {} ball use the \
                     attack `pgd` with norm = \"{}\"",
                    self.0.norm.prose(),
                    self.0.norm
                ),
            ));
        }
        Ok(())
    }
}

/// Projected gradient descent (ascent on the objective) under an L-infinity or L2 constraint.
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
        let norm = p.norm;
        let mut adv = norm.start(x, p.eps, p.random_start, rng)?;
        for _ in 0..p.steps {
            let (_, gradient) = input_gradient(objective, &adv)?;
            let candidate = (&adv + (norm.steepest(&gradient)? * p.step)?)?;
            adv = norm.project(x, &candidate, p.eps)?;
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
    params: PgdLinfParams,
    build: |p, _ctx| Ok(Box::new(Pgd::new(p.0))),
}

rossl_api::register! {
    kind: attack,
    name: "pgd",
    summary: "PGD in an L-infinity or L2 ball (`norm`): steepest-ascent steps, projection to the ball and [0, 1], restarts",
    params: PgdParams,
    build: |p, _ctx| Ok(Box::new(Pgd::new(p))),
}
