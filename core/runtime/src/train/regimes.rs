//! One optimiser step (or one free replay) of each regime.

use crate::ssl_loss::WeightedSslLoss;
use crate::Result;
use candle_core::{Tensor, Var, D};
use rossl_api::components::{Attack, Embedding, Encoder, LossInput, Mode};
use rossl_api::rng::Rng;
use rossl_nn::ops::signed_step;
use rossl_nn::optim::{SgdLars, StepReport};
use std::cell::Cell;

/// Encoder passes so far; a pass is one forward (or backward) through the encoder of a whole
/// batch of views.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Passes {
    /// Forward passes.
    pub forward: u64,
    /// Backward passes.
    pub backward: u64,
}

/// What a step did.
pub struct StepOutcome {
    /// The objective before the update.
    pub loss: f64,
    /// Unweighted terms.
    pub terms: Vec<(String, f64)>,
    /// The optimiser's report.
    pub report: StepReport,
    /// (largest |delta|, mean per-view L2 norm of delta), in adversarial regimes.
    pub perturbation: Option<(f64, f64)>,
    /// The input the update was computed on (the perturbed views in the PGD regime).
    pub input: Option<Tensor>,
}

/// What every regime needs.
pub struct StepContext<'a> {
    /// The encoder.
    pub encoder: &'a dyn Encoder,
    /// The objective.
    pub objective: &'a WeightedSslLoss,
    /// Views per image.
    pub views: usize,
    /// The batch's labels (B, u32), when a loss term uses them.
    pub labels: Option<&'a Tensor>,
}

impl StepContext<'_> {
    /// The loss input of an embedding of this batch's views.
    fn input<'e>(&'e self, embedding: &'e Embedding) -> LossInput<'e> {
        LossInput::new(embedding, self.views, self.labels)
    }
}

fn perturbation_stats(delta: &Tensor) -> Result<(f64, f64)> {
    let rows = delta.dim(0)?;
    let flat = delta.reshape((rows, ()))?;
    let linf = flat
        .abs()?
        .max_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    let l2 = flat
        .sqr()?
        .sum(D::Minus1)?
        .sqrt()?
        .mean_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    Ok((linf, l2))
}

/// The loss, its terms and the optimiser's report of one update.
type UpdateResult = (f64, Vec<(String, f64)>, StepReport);

/// Forward, objective, backward and update on `x`.
fn update(
    ctx: &StepContext<'_>,
    optimizer: &mut SgdLars,
    x: &Tensor,
    lr: f64,
    passes: &mut Passes,
) -> Result<UpdateResult> {
    let embedding = ctx.encoder.forward(x, Mode::Train)?;
    passes.forward += 1;
    let value = ctx.objective.loss(&ctx.input(&embedding))?;
    let loss = value.finite_total()?;
    let mut grads = value.total.backward()?;
    passes.backward += 1;
    ctx.encoder.route_gradients(&mut grads)?;
    let report = optimizer.step(&grads, lr)?;
    Ok((loss, value.term_values()?, report))
}

/// A standard step on clean views.
pub fn standard(
    ctx: &StepContext<'_>,
    optimizer: &mut SgdLars,
    x: &Tensor,
    lr: f64,
    passes: &mut Passes,
) -> Result<StepOutcome> {
    let (loss, terms, report) = update(ctx, optimizer, x, lr, passes)?;
    Ok(StepOutcome {
        loss,
        terms,
        report,
        perturbation: None,
        input: None,
    })
}

/// A PGD step: the attack maximises the objective over one perturbation per view, then the
/// update runs on the perturbed views. Attack passes use `attack_mode` ([`Mode::Attack`] unless
/// the reference behaviour of updating batch-norm statistics is asked for) and read only the
/// input gradient, so no weight gradient from an attack pass reaches the update.
#[allow(clippy::too_many_arguments)]
pub fn pgd(
    ctx: &StepContext<'_>,
    optimizer: &mut SgdLars,
    attack: &dyn Attack,
    attack_mode: Mode,
    x: &Tensor,
    lr: f64,
    rng: &mut Rng,
    passes: &mut Passes,
) -> Result<StepOutcome> {
    let forward_calls = Cell::new(0u64);
    let mut objective = |input: &Tensor| -> Result<Tensor> {
        forward_calls.set(forward_calls.get() + 1);
        let embedding = ctx.encoder.forward(input, attack_mode)?;
        Ok(ctx.objective.loss(&ctx.input(&embedding))?.total)
    };
    let adversarial = attack.perturb(x, &mut objective, rng)?.detach();
    let spec = attack.spec();
    passes.forward += forward_calls.get();
    passes.backward += (spec.steps * spec.restarts) as u64;
    let perturbation = perturbation_stats(&(&adversarial - x)?)?;
    let (loss, terms, report) = update(ctx, optimizer, &adversarial, lr, passes)?;
    Ok(StepOutcome {
        loss,
        terms,
        report,
        perturbation: Some(perturbation),
        input: Some(adversarial),
    })
}

/// The persistent perturbation of free adversarial training.
pub struct FreeState {
    /// The perturbation, tied to the batch slot; None until the first batch.
    pub delta: Option<Tensor>,
    /// Radius of the L-infinity ball.
    pub eps: f64,
    /// Ascent step.
    pub step: f64,
    /// Clamp x + delta to [0, 1] before the forward pass.
    pub clamp_input: bool,
}

/// One replay of free adversarial training: one forward and one backward pass give the weight
/// gradient (the update) and the perturbation gradient (a signed ascent step, clipped to the ball
/// and so that x + delta stays in [0, 1]).
pub fn free_replay(
    ctx: &StepContext<'_>,
    optimizer: &mut SgdLars,
    state: &mut FreeState,
    x: &Tensor,
    lr: f64,
    passes: &mut Passes,
) -> Result<StepOutcome> {
    let delta = match &state.delta {
        Some(d) if d.shape() == x.shape() => d.clone(),
        _ => x.zeros_like()?,
    };
    let delta_var = Var::from_tensor(&delta)?;
    let mut input = (x + delta_var.as_tensor())?;
    if state.clamp_input {
        input = input.clamp(0.0, 1.0)?;
    }
    let embedding = ctx.encoder.forward(&input, Mode::Train)?;
    passes.forward += 1;
    let value = ctx.objective.loss(&ctx.input(&embedding))?;
    let loss = value.finite_total()?;
    let mut grads = value.total.backward()?;
    passes.backward += 1;
    ctx.encoder.route_gradients(&mut grads)?;
    let report = optimizer.step(&grads, lr)?;
    let gradient = match grads.get(delta_var.as_tensor()) {
        Some(g) => g.clone(),
        None => delta.zeros_like()?,
    };
    let next = signed_step(x, &delta, &gradient, state.step, state.eps)?;
    let perturbation = perturbation_stats(&next)?;
    state.delta = Some(next);
    Ok(StepOutcome {
        loss,
        terms: value.term_values()?,
        report,
        perturbation: Some(perturbation),
        input: Some(input.detach()),
    })
}
