//! One optimiser step of the training loop: the regime's step on a batch, with the target
//! network's embedding before it and its average after it.

use super::Loop;
use crate::config::{Regime, Scheduled};
use crate::train::regimes::{self, StepContext, StepOutcome};
use crate::{Error, Result};
use candle_core::Tensor;
use rossl_api::components::Embedding;
use rossl_api::rng::{stream, Rng};

impl Loop<'_> {
    /// At the start of pass `epoch`, whose views the loader renders at augmentation `strength`:
    /// the values `train.anneal` schedules for it, when it schedules any.
    pub(super) fn begin_pass(&mut self, epoch: usize, strength: f64) {
        let run = &self.asm.config.run;
        let anneal = &run.train.anneal;
        self.scheduled = anneal.is_active().then(|| {
            let pgd = (run.train.pgd.clean_weight, run.train.pgd.adversarial_weight);
            let scheduled = anneal.at(epoch, self.plan.passes, pgd);
            debug_assert_eq!(scheduled.view_strength, strength);
            Scheduled {
                view_strength: strength,
                ..scheduled
            }
        });
    }

    /// The PGD update's (clean, perturbed) weights for this pass: `train.pgd`'s, or as
    /// `train.anneal` schedules them.
    fn pgd_weights(&self) -> (f64, f64) {
        let pgd = &self.asm.config.run.train.pgd;
        self.scheduled
            .map_or((pgd.clean_weight, pgd.adversarial_weight), |s| {
                (s.clean_weight, s.adversarial_weight)
            })
    }

    /// The scheduled PGD weights of this pass, in the `pgd` regime under a schedule.
    pub(super) fn scheduled_weights(&self) -> Option<(f64, f64)> {
        let pgd = self.asm.config.run.train.regime == Regime::Pgd;
        (pgd && self.scheduled.is_some()).then(|| self.pgd_weights())
    }

    /// The scheduled values of this pass for its log line (empty without a schedule).
    pub(super) fn schedule_note(&self) -> String {
        let Some(s) = self.scheduled else {
            return String::new();
        };
        let weights = self.scheduled_weights().map_or(String::new(), |(c, a)| {
            format!(", loss weights clean {c:.4} perturbed {a:.4}")
        });
        format!(
            " (stage {}/{}: view strength {:.3}{weights})",
            s.stage + 1,
            self.asm.config.run.train.anneal.stages,
            s.view_strength
        )
    }

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
                let (clean_weight, adversarial_weight) = self.pgd_weights();
                let step = regimes::PgdStep {
                    attack,
                    attack_mode,
                    clean_weight,
                    adversarial_weight,
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
