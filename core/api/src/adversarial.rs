//! Building blocks shared by attacks and adversarial training: the input gradient of an objective,
//! the projection onto the L-infinity ball and the pixel range, random starts (the L2 ball's are
//! in [`crate::norm`]).

use crate::components::Objective;
use crate::norm::Norm;
use crate::rng::Rng;
use crate::{Error, Result};
use candle_core::{Tensor, Var};

/// The objective's loss at `x` (detached; scalar or per example) and the gradient of its sum with
/// respect to `x`. Only this gradient is read: whatever else the objective's graph tracks is
/// discarded.
pub fn input_gradient(objective: &mut dyn Objective, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let leaf = Var::from_tensor(&x.detach())?;
    let loss = objective.loss(leaf.as_tensor())?;
    Ok((loss.detach(), gradient_at(&leaf, &loss)?))
}

/// The gradient of the sum of `loss` with respect to `leaf` (zeros where `loss` does not depend
/// on it).
fn gradient_at(leaf: &Var, loss: &Tensor) -> Result<Tensor> {
    let grads = loss.sum_all()?.backward()?;
    Ok(match grads.get(leaf.as_tensor()) {
        Some(g) => g.clone(),
        None => leaf.as_tensor().zeros_like()?,
    })
}

/// As [`input_gradient`], with the per-example success at `x` (from
/// [`Objective::loss_and_success`]: one forward pass where the objective allows it).
pub fn input_gradient_and_success(
    objective: &mut dyn Objective,
    x: &Tensor,
) -> Result<(Tensor, Tensor, Option<Vec<bool>>)> {
    let leaf = Var::from_tensor(&x.detach())?;
    let (loss, success) = objective.loss_and_success(leaf.as_tensor())?;
    Ok((loss.detach(), gradient_at(&leaf, &loss)?, success))
}

/// Projects `candidate` onto the L-infinity ball of radius `eps` around `x`, then onto [0, 1]:
/// `clamp(x + clamp(candidate - x, -eps, eps), 0, 1)`.
/// ([`Norm::project`] for other balls.)
pub fn project(x: &Tensor, candidate: &Tensor, eps: f64) -> Result<Tensor> {
    Norm::Linf.project(x, candidate, eps)
}

/// The perturbation `delta` clipped to the ball and such that `x + delta` lies in [0, 1]:
/// `clamp(x + clamp(delta, -eps, eps), 0, 1) - x` (the reference code's two clips).
pub fn clip_delta(x: &Tensor, delta: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(((x + delta.clamp(-eps, eps)?)?.clamp(0.0, 1.0)? - x)?)
}

/// A perturbation of `x`'s shape, uniform in [-eps, eps], drawn from `rng`.
pub fn uniform_delta(x: &Tensor, eps: f64, rng: &mut Rng) -> Result<Tensor> {
    Norm::Linf.random_delta(x, eps, rng)
}

/// The starting point of an attack: a uniform point of the ball around `x` (projected onto
/// [0, 1]) when `random` and `eps > 0`, else `x` itself.
/// ([`Norm::start`] for other balls.)
pub fn start(x: &Tensor, eps: f64, random: bool, rng: &mut Rng) -> Result<Tensor> {
    Norm::Linf.start(x, eps, random, rng)
}

/// Checks an attack's settings: a finite radius >= 0 and a finite step >= 0.
pub fn check_budget(eps: f64, step: f64) -> Result<()> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::msg(format!(
            "attack radius eps = {eps} is not a finite number >= 0"
        )));
    }
    if !(step >= 0.0 && step.is_finite()) {
        return Err(Error::msg(format!(
            "attack step = {step} is not a finite number >= 0"
        )));
    }
    Ok(())
}
