//! `apgd`: Auto-PGD (Croce and Hein 2020, "Reliable evaluation of adversarial robustness with
//! an ensemble of diverse parameter-free attacks"), the step-size-free PGD of AutoAttack. It
//! maximises whatever loss the evaluation gives it: APGD-CE on cross-entropy, APGD-DLR on the
//! difference of logits ratio (the `strong` preset runs both).
//!
//! From a random start, with per-example step sizes starting at 2 eps: a steepest-ascent step
//! with momentum 0.75, projection to the ball and [0, 1]; at checkpoints (first after 22% of the
//! iterations, then shrinking by 3% down to 6%), an example whose loss rose in at most 75% of the
//! steps since the last checkpoint, or that did not improve since a checkpoint without a step-size
//! cut, halves its step and restarts from its best point. Returns, per example, the first
//! misclassifying point when one was found (if the objective reports success), else the
//! highest-loss point; it stops once every example has one, since no later iterate can change
//! the result (on a large radius that is after a few iterations).
//!
//! The ball is L-infinity (`norm = "linf"`, the default: steps along the gradient's sign) or L2
//! (`norm = "l2"`, AutoAttack's L2 form: steps `x + step * grad / ||grad||_2`, projection onto the
//! L2 ball, the same initial 2 eps per example, momentum and checkpoints). It starts from a
//! random point uniform in the L-infinity cube, or, under L2, on the sphere of radius eps (as
//! AutoAttack's `x + eps * t / ||t||_2`, t Gaussian), clipped to [0, 1].

use candle_core::{DType, Tensor};
use rossl_api::adversarial::{check_budget, input_gradient_and_success};
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::norm::{L2Radius, Norm};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `apgd`.
    pub struct ApgdParams {
        /// Radius of the ball.
        pub eps: f64 = 8.0 / 255.0,
        /// Iterations.
        pub steps: usize = 100,
        /// Momentum of the update.
        pub momentum: f64 = 0.75,
        /// Fraction of improving steps below which the step is halved.
        pub rho: f64 = 0.75,
        /// The threat model: `linf` (L-infinity ball, signed steps) or `l2` (L2 ball, steps along
        /// the L2-normalised gradient).
        #[serde(skip_serializing_if = "Norm::is_linf")]
        pub norm: Norm = Norm::Linf,
    }
}

impl Params for ApgdParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_budget(self.eps, 0.0).map_err(|e| ParamError::new("eps", e.to_string()))?;
        if self.steps == 0 {
            return Err(ParamError::new("steps", "needs at least one step"));
        }
        if !(0.0..=1.0).contains(&self.momentum) || !(0.0..=1.0).contains(&self.rho) {
            return Err(ParamError::new(
                "momentum",
                "momentum and rho must be in [0, 1]",
            ));
        }
        Ok(())
    }
}

/// Auto-PGD.
#[derive(Clone, Debug)]
pub struct Apgd {
    params: ApgdParams,
}

impl Apgd {
    /// The attack with these settings.
    pub fn new(params: ApgdParams) -> Self {
        Apgd { params }
    }
}

/// Per-example values of a loss (a scalar counts as one example).
fn per_example(loss: &Tensor) -> Result<Vec<f32>> {
    let loss = loss.to_dtype(DType::F32)?;
    Ok(if loss.rank() == 0 {
        vec![loss.to_scalar::<f32>()?]
    } else {
        loss.flatten_all()?.to_vec1::<f32>()?
    })
}

/// Rows of `a` where `mask` is set, else rows of `b`; `mask` has one entry per row (or one for
/// the whole tensor).
fn select(mask: &[bool], a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if mask.len() == 1 {
        return Ok(if mask[0] { a.clone() } else { b.clone() });
    }
    let m: Vec<u8> = mask.iter().map(|&v| u8::from(v)).collect();
    let mut shape = vec![m.len()];
    shape.extend(std::iter::repeat_n(1, a.rank() - 1));
    let m = Tensor::from_vec(m, shape.as_slice(), a.device())?.broadcast_as(a.shape())?;
    Ok(m.where_cond(a, b)?)
}

/// Per-row scale as a tensor broadcastable to `like`.
fn row_tensor(values: &[f64], like: &Tensor) -> Result<Tensor> {
    if values.len() == 1 {
        return Ok(Tensor::new(values[0] as f32, like.device())?
            .to_dtype(like.dtype())?
            .broadcast_as(like.shape())?);
    }
    let mut shape = vec![values.len()];
    shape.extend(std::iter::repeat_n(1, like.rank() - 1));
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Ok(Tensor::from_vec(v, shape.as_slice(), like.device())?
        .to_dtype(like.dtype())?
        .broadcast_as(like.shape())?)
}

impl Attack for Apgd {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            eps: self.params.eps,
            steps: self.params.steps,
            step_size: None,
            restarts: 1,
            random_start: true,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
        let p = &self.params;
        let x = x.detach();
        let eps = p.eps;
        if eps == 0.0 {
            return Ok(x);
        }
        let n_iter = p.steps;
        let first_check = ((0.22 * n_iter as f64) as usize).max(1);
        let min_check = ((0.06 * n_iter as f64) as usize).max(1);
        let decrease = ((0.03 * n_iter as f64) as usize).max(1);

        let mut search = Search::begin(x, (p.norm, eps), objective, rng)?;
        let mut since_check = 0usize;
        let mut window = first_check;
        for i in 0..n_iter {
            // every example holds its first successful point, which is then its result
            if search.every_example_succeeded() {
                break;
            }
            let a = if i > 0 { p.momentum } else { 1.0 };
            search.step(a, objective)?;
            since_check += 1;
            if since_check == window {
                search.checkpoint(window, p.rho)?;
                window = window.saturating_sub(decrease).max(min_check);
                since_check = 0;
            }
        }
        search.result()
    }
}

/// One APGD run: the iterate and its gradient, the per-example step sizes, the best points so far
/// and what the last checkpoint saw.
struct Search {
    /// The clean input.
    x: Tensor,
    /// The ball's norm.
    norm: Norm,
    /// The ball's radius.
    eps: f64,
    /// Examples (rows of the loss).
    rows: usize,
    /// The current iterate, the previous one and the gradient at the current one.
    x_adv: Tensor,
    x_old: Tensor,
    grad: Tensor,
    /// Per example: the highest loss so far, its point and the gradient there.
    loss_best: Vec<f32>,
    x_best: Tensor,
    grad_best: Tensor,
    /// Per example, whether a successful point was found (when the objective reports success),
    /// and the first such point.
    success: Option<Vec<bool>>,
    x_best_adv: Tensor,
    /// Per-example step sizes.
    step: Vec<f64>,
    /// The per-example losses of every iterate.
    history: Vec<Vec<f32>>,
    /// At the last checkpoint: the best losses, and which examples had their step cut.
    best_at_last_check: Vec<f32>,
    reduced_at_last_check: Vec<bool>,
}

impl Search {
    /// Starts from a random point around `x` (uniform in the L-infinity cube, or on the L2 sphere
    /// of radius `eps`, then clipped to [0, 1]), with steps of 2 eps.
    fn begin(
        x: Tensor,
        (norm, eps): (Norm, f64),
        objective: &mut dyn Objective,
        rng: &mut Rng,
    ) -> Result<Self> {
        // AutoAttack's start: uniform in the cube (L-infinity), on the sphere (L2)
        let x_adv = if eps > 0.0 {
            let delta = norm.random_delta_at(&x, eps, L2Radius::Sphere, rng)?;
            norm.project(&x, &(&x + delta)?, eps)?
        } else {
            x.clone()
        };
        let (loss, grad, success) = input_gradient_and_success(objective, &x_adv)?;
        let losses = per_example(&loss)?;
        let rows = losses.len();
        Ok(Search {
            x,
            norm,
            eps,
            rows,
            x_old: x_adv.clone(),
            loss_best: losses.clone(),
            x_best: x_adv.clone(),
            grad_best: grad.clone(),
            success: success.filter(|s| s.len() == rows),
            x_best_adv: x_adv.clone(),
            step: vec![2.0 * eps; rows],
            best_at_last_check: losses.clone(),
            history: vec![losses],
            reduced_at_last_check: vec![true; rows],
            x_adv,
            grad,
        })
    }

    /// One iteration: a steepest-ascent step (the gradient's sign, or the gradient over its L2
    /// norm) with momentum `a` (1: none), projected, then the loss, gradient and success at the
    /// new point.
    fn step(&mut self, a: f64, objective: &mut dyn Objective) -> Result<()> {
        let (x, norm, eps) = (&self.x, self.norm, self.eps);
        let momentum_term = (&self.x_adv - &self.x_old)?;
        self.x_old = self.x_adv.clone();
        let direction = norm.steepest(&self.grad)?;
        let z = norm.project(
            x,
            &(&self.x_adv + (direction * row_tensor(&self.step, &self.grad)?)?)?,
            eps,
        )?;
        let moved = ((&self.x_adv + ((z - &self.x_adv)? * a)?)? + (momentum_term * (1.0 - a))?)?;
        self.x_adv = norm.project(x, &moved, eps)?;
        let (loss, g, now) = input_gradient_and_success(objective, &self.x_adv)?;
        self.grad = g;
        let losses = per_example(&loss)?;
        self.track_success(now)?;
        self.track_best(&losses)?;
        self.history.push(losses);
        Ok(())
    }

    /// Keeps, per example, the first successful point (`now`: success at the current iterate).
    fn track_success(&mut self, now: Option<Vec<bool>>) -> Result<()> {
        if let (Some(best), Some(now)) = (self.success.as_mut(), now) {
            if now.len() == self.rows {
                let newly: Vec<bool> = now
                    .iter()
                    .zip(best.iter())
                    .map(|(n, b)| *n && !*b)
                    .collect();
                self.x_best_adv = select(&newly, &self.x_adv, &self.x_best_adv)?;
                for (b, n) in best.iter_mut().zip(&now) {
                    *b = *b || *n;
                }
            }
        }
        Ok(())
    }

    /// Keeps, per example, the highest-loss point and its gradient (`losses`: at the current
    /// iterate).
    fn track_best(&mut self, losses: &[f32]) -> Result<()> {
        let improved: Vec<bool> = losses
            .iter()
            .zip(&self.loss_best)
            .map(|(l, b)| l > b)
            .collect();
        self.x_best = select(&improved, &self.x_adv, &self.x_best)?;
        self.grad_best = select(&improved, &self.grad, &self.grad_best)?;
        for (b, (l, imp)) in self.loss_best.iter_mut().zip(losses.iter().zip(&improved)) {
            if *imp {
                *b = *l;
            }
        }
        Ok(())
    }

    /// A checkpoint after `window` iterations: an example whose loss rose in at most `rho` of
    /// them, or that did not improve since a checkpoint without a cut, halves its step and
    /// restarts from its best point.
    fn checkpoint(&mut self, window: usize, rho: f64) -> Result<()> {
        let history = &self.history;
        let len = history.len();
        let mut reduce = vec![false; self.rows];
        for (r, cut) in reduce.iter_mut().enumerate() {
            let increases = (0..window)
                .filter(|&c| len >= c + 2 && history[len - 1 - c][r] > history[len - 2 - c][r])
                .count();
            let oscillating = increases as f64 <= window as f64 * rho;
            let stalled =
                !self.reduced_at_last_check[r] && self.best_at_last_check[r] >= self.loss_best[r];
            *cut = oscillating || stalled;
        }
        self.reduced_at_last_check = reduce.clone();
        self.best_at_last_check = self.loss_best.clone();
        if reduce.iter().any(|&r| r) {
            for (s, &r) in self.step.iter_mut().zip(&reduce) {
                if r {
                    *s /= 2.0;
                }
            }
            self.x_adv = select(&reduce, &self.x_best, &self.x_adv)?;
            self.grad = select(&reduce, &self.grad_best, &self.grad)?;
        }
        Ok(())
    }

    /// Whether the objective reported success for every example: no later iterate can change
    /// the result then.
    fn every_example_succeeded(&self) -> bool {
        self.success.as_ref().is_some_and(|s| s.iter().all(|&b| b))
    }

    /// Per example, the first successful point when one was found, else the highest-loss point.
    fn result(self) -> Result<Tensor> {
        Ok(match self.success {
            Some(found) => select(&found, &self.x_best_adv, &self.x_best)?,
            None => self.x_best,
        })
    }
}

rossl_api::register! {
    kind: attack,
    name: "apgd",
    summary: "Auto-PGD (Croce & Hein 2020): step-size-free PGD with momentum, step halving and restart from the best point; any loss (CE, DLR); L-infinity or L2 (`norm`)",
    params: ApgdParams,
    build: |p, _ctx| Ok(Box::new(Apgd::new(p))),
}
