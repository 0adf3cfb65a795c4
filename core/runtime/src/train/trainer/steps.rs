//! One optimiser step of the training loop: the regime's step on a batch, with the target
//! network's embedding before it and its average after it.

use super::Loop;
use crate::config::Regime;
use crate::train::regimes::{self, StepContext, StepOutcome};
use crate::{Error, Result};
use candle_core::Tensor;
use rossl_api::components::Embedding;
use rossl_api::rng::{stream, Rng};

impl Loop<'_> {
    /// How many optimiser steps this batch gets: one for standard and PGD training, `m` replays
    /// for free training (fewer when an exact step budget ends part-way through the replays).
    pub(super) fn steps_for_batch(&self) -> usize {
        match self.asm.config.run.train.regime {
            Regime::Free => {
                let left = self.plan.total_steps.saturating_sub(self.steps);
                self.plan.steps_per_batch.min(left)
            }
            Regime::Standard | Regime::Pgd => 1,
        }
    }

    /// One optimiser step on a batch (its views `x`, and its labels when a loss term uses them),
    /// as the regime says (for free training: the next replay), on a worker thread of the pool
    /// (see [`rossl_kernels::on_pool`]).
    pub(super) fn step(&mut self, x: &Tensor, labels: Option<&Tensor>) -> Result<StepOutcome> {
        rossl_kernels::on_pool(|| self.step_here(x, labels))
    }

    /// [`Self::step`] on the calling thread: the regime's step, then the target network's
    /// average when there is one.
    fn step_here(&mut self, x: &Tensor, labels: Option<&Tensor>) -> Result<StepOutcome> {
        let target = match &self.target {
            Some(t) => {
                self.passes.forward += 1;
                Some(t.embed(x)?)
            }
            None => None,
        };
        let outcome = self.regime_step(x, labels, target.as_ref())?;
        if let Some(t) = &self.target {
            t.update(self.asm.encoder.as_ref(), self.steps)?;
        }
        Ok(outcome)
    }

    /// The regime's step on views `x`, with their labels and target embedding when used.
    fn regime_step(
        &mut self,
        x: &Tensor,
        labels: Option<&Tensor>,
        target: Option<&Embedding>,
    ) -> Result<StepOutcome> {
        let asm = self.asm;
        let run = &asm.config.run;
        let ctx = StepContext {
            encoder: asm.encoder.as_ref(),
            objective: &asm.objective,
            views: asm.views.views_per_image(),
            labels,
            target,
        };
        let lr = self.schedule.lr(self.steps);
        match run.train.regime {
            Regime::Standard => {
                regimes::standard(&ctx, &mut self.optimizer, x, lr, &mut self.passes)
            }
            Regime::Pgd => {
                let attack = asm
                    .train_attack
                    .as_deref()
                    .ok_or_else(|| Error::msg("the pgd regime has no attack"))?;
                let attack_mode = run.train.pgd.attack_mode();
                let step = regimes::PgdStep {
                    attack,
                    attack_mode,
                    clean_weight: run.train.pgd.clean_weight,
                    adversarial_weight: run.train.pgd.adversarial_weight,
                };
                let mut rng = Rng::derive(run.seed, &[stream::ATTACK, self.steps as u64]);
                regimes::pgd(
                    &ctx,
                    &mut self.optimizer,
                    &step,
                    (x, lr),
                    &mut rng,
                    &mut self.passes,
                )
            }
            Regime::Free => regimes::free_replay(
                &ctx,
                &mut self.optimizer,
                &mut self.free,
                x,
                lr,
                &mut self.passes,
            ),
        }
    }
}
