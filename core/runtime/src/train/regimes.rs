//! One optimiser step (or one free replay) of each regime.

use crate::ssl_loss::WeightedSslLoss;
use crate::Result;
use candle_core::{Tensor, Var, D};
use rossl_api::components::{Attack, BnBranch, Embedding, Encoder, LossInput, Mode};
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
    /// The target network's embedding of the batch's clean views, when a loss term uses one.
    pub target: Option<&'a Embedding>,
}

impl StepContext<'_> {
    /// The loss input of an embedding of this batch's views.
    fn input<'e>(&'e self, embedding: &'e Embedding) -> LossInput<'e> {
        LossInput::new(embedding, self.views, self.labels).with_target(self.target)
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

/// How the `pgd` regime attacks and weighs its update.
pub struct PgdStep<'a> {
    /// The training attack.
    pub attack: &'a dyn Attack,
    /// The mode of attack passes ([`Mode::Attack`] unless the reference behaviour of updating
    /// batch-norm statistics is asked for).
    pub attack_mode: Mode,
    /// Weight of the loss on the clean views in the update (ACL: 1).
    pub clean_weight: f64,
    /// Weight of the loss on the perturbed views.
    pub adversarial_weight: f64,
}

/// Runs `f` with the encoder's adversarial batch-norm branch selected (with dual batch norm),
/// then selects the clean branch again, whatever `f` returned.
fn on_adversarial_branch<T>(encoder: &dyn Encoder, f: impl FnOnce() -> Result<T>) -> Result<T> {
    encoder.select_branch(BnBranch::Adversarial);
    let out = f();
    encoder.select_branch(BnBranch::Clean);
    out
}

/// A PGD step: the attack maximises the objective over one perturbation per view, then the
/// update minimises `adversarial_weight` times the objective on the perturbed views plus
/// `clean_weight` times the objective on the clean views. Attack passes read only the input
/// gradient, so no weight gradient from an attack pass reaches the update. A loss that compares
/// the perturbed views with the clean ones ([`SslLoss::uses_clean`], TRADES) sees the clean
/// embedding: detached from an attack-mode pass while attacking, differentiable in the update.
/// With dual batch norm, the attack's passes and the perturbed views run through the adversarial
/// branch, the clean views through the clean one.
///
/// [`SslLoss::uses_clean`]: rossl_api::components::SslLoss::uses_clean
pub fn pgd(
    ctx: &StepContext<'_>,
    optimizer: &mut SgdLars,
    step: &PgdStep<'_>,
    (x, lr): (&Tensor, f64),
    rng: &mut Rng,
    passes: &mut Passes,
) -> Result<StepOutcome> {
    let uses_clean = ctx.objective.uses_clean();
    let attack_clean = if uses_clean {
        passes.forward += 1;
        let e = ctx.encoder.forward(x, step.attack_mode)?;
        Some(Embedding {
            feature: e.feature.detach(),
            projection: e.projection.detach(),
        })
    } else {
        None
    };
    let forward_calls = Cell::new(0u64);
    let mut objective = |input: &Tensor| -> Result<Tensor> {
        forward_calls.set(forward_calls.get() + 1);
        let embedding =
            on_adversarial_branch(ctx.encoder, || ctx.encoder.forward(input, step.attack_mode))?;
        let input = ctx
            .input(&embedding)
            .with_clean(attack_clean.as_ref())
            .in_attack();
        Ok(ctx.objective.loss(&input)?.total)
    };
    let adversarial = step.attack.perturb(x, &mut objective, rng)?.detach();
    let spec = step.attack.spec();
    passes.forward += forward_calls.get();
    passes.backward += (spec.steps * spec.restarts) as u64;
    let perturbation = perturbation_stats(&(&adversarial - x)?)?;
    let (loss, terms, report) =
        weighted_update(ctx, optimizer, step, (x, &adversarial), lr, passes)?;
    Ok(StepOutcome {
        loss,
        terms,
        report,
        perturbation: Some(perturbation),
        input: Some(adversarial),
    })
}

/// The update of a PGD step: [`weighted_objective`], backward, step.
fn weighted_update(
    ctx: &StepContext<'_>,
    optimizer: &mut SgdLars,
    step: &PgdStep<'_>,
    (x, adversarial): (&Tensor, &Tensor),
    lr: f64,
    passes: &mut Passes,
) -> Result<UpdateResult> {
    let weights = [step.clean_weight, step.adversarial_weight];
    let (total, loss, terms) = weighted_objective(ctx, weights, x, adversarial, passes)?;
    let mut grads = total.backward()?;
    passes.backward += 1;
    ctx.encoder.route_gradients(&mut grads)?;
    let report = optimizer.step(&grads, lr)?;
    Ok((loss, terms, report))
}

/// The total of a weighted objective (to differentiate), its finite value, and its terms.
type WeightedObjective = (Tensor, f64, Vec<(String, f64)>);

/// The objective of an update on perturbed views: forward passes of the perturbed views (through
/// the adversarial batch-norm branch) and of the clean ones when the clean loss is weighted or a
/// term compares with them, then `adversarial_weight` x the perturbed views' objective +
/// `clean_weight` x the clean views'. The total (to differentiate), its finite value, and the
/// terms: those of the perturbed views, then `clean <name>` for the clean ones.
fn weighted_objective(
    ctx: &StepContext<'_>,
    [clean_weight, adversarial_weight]: [f64; 2],
    x: &Tensor,
    perturbed: &Tensor,
    passes: &mut Passes,
) -> Result<WeightedObjective> {
    let clean = if ctx.objective.uses_clean() || clean_weight > 0.0 {
        passes.forward += 1;
        Some(ctx.encoder.forward(x, Mode::Train)?)
    } else {
        None
    };
    let embedding =
        on_adversarial_branch(ctx.encoder, || ctx.encoder.forward(perturbed, Mode::Train))?;
    passes.forward += 1;
    let value = ctx
        .objective
        .loss(&ctx.input(&embedding).with_clean(clean.as_ref()))?;
    let mut total = (&value.total * adversarial_weight)?;
    let mut terms = value.term_values()?;
    if let (Some(clean), true) = (&clean, clean_weight > 0.0) {
        let clean_value = ctx
            .objective
            .loss(&ctx.input(clean).with_clean(Some(clean)))?;
        total = (total + (&clean_value.total * clean_weight)?)?;
        terms.extend(
            clean_value
                .term_values()?
                .into_iter()
                .map(|(name, v)| (format!("clean {name}"), v)),
        );
    }
    let loss = crate::ssl_loss::finite(&total, &terms)?;
    Ok((total, loss, terms))
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
    /// Weight of the loss on the clean views (free ACL; 0: the perturbed views only).
    pub clean_weight: f64,
    /// Weight of the loss on the perturbed views.
    pub adversarial_weight: f64,
}

/// One replay of free adversarial training: one forward and one backward pass give the weight
/// gradient (the update) and the perturbation gradient (a signed ascent step, clipped to the ball
/// and so that x + delta stays in [0, 1]). With a clean weight, or a loss that compares with the
/// clean views, the replay also runs the clean views, and the update minimises the weighted sum
/// as a PGD step's does; the perturbation ascends that same objective.
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
    let weights = [state.clean_weight, state.adversarial_weight];
    let (total, loss, terms) = weighted_objective(ctx, weights, x, &input, passes)?;
    let mut grads = total.backward()?;
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
        terms,
        report,
        perturbation: Some(perturbation),
        input: Some(input.detach()),
    })
}
