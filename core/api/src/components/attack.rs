//! Attacks: perturbations within an L-infinity ball that maximise an objective.

use super::windowed::WindowedScore;
use crate::rng::Rng;
use crate::Result;
use candle_core::Tensor;

/// What an attack maximises, as a function of its input.
///
/// Any closure `FnMut(&Tensor) -> Result<Tensor>` is an objective, so one PGD serves training (the
/// SSL loss of the perturbed views) and evaluation (the cross-entropy of a probe).
pub trait Objective {
    /// The loss to maximise at input `x`: a scalar, or one value per example (shape `[B]`), in
    /// which case the attack maximises each example's value.
    fn loss(&mut self, x: &Tensor) -> Result<Tensor>;

    /// Per-example success of the attack at `x` (for a classifier: misclassified), when the
    /// objective knows it; attacks with restarts keep, per example, a successful perturbation.
    fn succeeded(&mut self, _x: &Tensor) -> Result<Option<Vec<bool>>> {
        Ok(None)
    }

    /// The score at `x`: the loss (detached) and the per-example success there, together.
    /// Score-based attacks query both at every step, and an objective that can compute them from
    /// one forward pass overrides this.
    fn score(&mut self, x: &Tensor) -> Result<(Tensor, Option<Vec<bool>>)> {
        let loss = self.loss(x)?.detach();
        Ok((loss, self.succeeded(x)?))
    }

    /// The score of `x`, the rows `rows` (ascending) of the batch this objective scores: each
    /// row's loss (shape `[R]`) and success as [`Objective::score`] of the whole batch would give
    /// them, computed on those rows alone. Score-based attacks query only the images they have
    /// not fooled yet through it. `None` (the default) when the objective cannot score part of
    /// its batch that way; the attack then scores the whole batch.
    fn score_rows(
        &mut self,
        _x: &Tensor,
        _rows: &[usize],
    ) -> Result<Option<(Tensor, Option<Vec<bool>>)>> {
        Ok(None)
    }

    /// The loss at `x` as [`Objective::loss`] computes it (attached to `x`'s graph, so that its
    /// gradient can be taken) and the per-example success at the same point: attacks that track
    /// success at every iterate (APGD) call this through
    /// [`crate::adversarial::input_gradient_and_success`]. An objective that can read both from
    /// one forward pass overrides this, saving the second pass.
    fn loss_and_success(&mut self, x: &Tensor) -> Result<(Tensor, Option<Vec<bool>>)> {
        let loss = self.loss(x)?;
        Ok((loss, self.succeeded(&x.detach())?))
    }

    /// A scorer of images that differ from `base` (this objective's batch) only inside one window
    /// each, scoring rows as [`Objective::score_rows`] does while recomputing only what each
    /// window reaches; `None` (the default) when the objective cannot. Square under L-infinity
    /// queries through it.
    fn windowed(&self, _base: &Tensor) -> Result<Option<Box<dyn WindowedScore + '_>>> {
        Ok(None)
    }
}

impl<F> Objective for F
where
    F: FnMut(&Tensor) -> Result<Tensor>,
{
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        self(x)
    }
}

/// The settings of an attack, for reports (its name is its registration's).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AttackSpec {
    /// Radius of the L-infinity ball.
    pub eps: f64,
    /// Iterations.
    pub steps: usize,
    /// Step size, where the attack has a fixed one.
    pub step_size: Option<f64>,
    /// Random restarts (1 = a single run).
    pub restarts: usize,
    /// Whether it starts from a random point of the ball.
    pub random_start: bool,
}

/// An L-infinity attack on inputs in [0, 1].
pub trait Attack: Send + Sync {
    /// Its settings.
    fn spec(&self) -> AttackSpec;

    /// Returns `x + delta` with `|delta| <= eps` and `x + delta` in [0, 1], chosen to maximise
    /// `objective`. Only the gradient with respect to the input is read: an attack never touches
    /// weights. Random starts draw from `rng`.
    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor>;
}
