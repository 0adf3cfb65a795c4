//! The target network of losses that regress onto one: an exponential moving average of the
//! online encoder, updated after every optimiser step and kept in the checkpoint (BYOL), or a
//! frozen teacher loaded from a finished run (DeACL).

use super::encoder_tensors::{encoder_tensors, restore_encoder};
use crate::assembly::Assembly;
use crate::{Error, Result};
use candle_core::Tensor;
use rossl_api::components::{Embedding, Encoder, Mode};
use std::collections::HashMap;
use std::path::Path;

/// The prefix of the target network's tensors in a checkpoint.
const PREFIX: &str = "target.";

/// An exponential moving average of the online encoder, or a frozen teacher.
pub struct TargetNetwork {
    encoder: Box<dyn Encoder>,
    /// Base momentum tau.
    base: f64,
    /// Optimiser steps of the whole run (the horizon of the momentum's cosine).
    total_steps: usize,
    /// A frozen teacher: never updated, run in evaluation mode, not checkpointed (it is
    /// reloaded from its run folder).
    frozen: bool,
}

impl TargetNetwork {
    /// A copy of `asm`'s encoder (built from the same configuration, the online weights and
    /// buffers copied into it), averaging with base momentum `[train.target] momentum` over
    /// `total_steps`.
    pub fn new(asm: &Assembly, total_steps: usize) -> Result<Self> {
        let encoder = asm.build_encoder()?;
        let online: HashMap<String, Tensor> =
            encoder_tensors(asm.encoder.as_ref()).into_iter().collect();
        restore_encoder(encoder.as_ref(), &online)?;
        Ok(TargetNetwork {
            encoder,
            base: asm.config.run.train.target.momentum,
            total_steps,
            frozen: false,
        })
    }

    /// The target of `asm`'s run: the frozen teacher of `[train.target] from` when set, the
    /// moving average of the encoder otherwise.
    pub fn for_run(asm: &Assembly, total_steps: usize) -> Result<Self> {
        let target = &asm.config.run.train.target;
        let from = &target.from;
        if from.is_empty() && !target.teacher_config.is_empty() {
            return Err(Error::Config(
                "`train.target.teacher_config` names a teacher that has not been trained: \
                 `rossl run`, `compare` and studies train it before the student; a program \
                 using the runtime directly sets `train.target.from` to the teacher's run folder"
                    .into(),
            ));
        }
        if from.is_empty() {
            return Self::new(asm, total_steps);
        }
        let encoder = super::teacher::load(Path::new(from), asm)?;
        Ok(TargetNetwork {
            encoder,
            base: 1.0,
            total_steps,
            frozen: true,
        })
    }

    /// Whether it is a frozen teacher.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The momentum after optimiser step `step` (0-based): 1 - (1 - tau) (cos(pi k / K) + 1) / 2,
    /// from tau at the first step towards 1 at step K, the run's length (BYOL's schedule, as
    /// solo-learn evaluates it).
    pub fn momentum(&self, step: usize) -> f64 {
        let k = step as f64 / self.total_steps.max(1) as f64;
        1.0 - (1.0 - self.base) * ((std::f64::consts::PI * k).cos() + 1.0) / 2.0
    }

    /// Its embedding of the views `x`, detached: a forward pass in training mode, so that its
    /// batch norms normalise with the batch and keep running statistics of their own (BYOL's
    /// target, whose buffers are not averaged).
    /// A frozen teacher runs in evaluation mode (running statistics, as DeACL keeps it).
    pub fn embed(&self, x: &Tensor) -> Result<Embedding> {
        let mode = if self.frozen { Mode::Eval } else { Mode::Train };
        let e = self.encoder.forward(x, mode)?;
        Ok(Embedding {
            feature: e.feature.detach(),
            projection: e.projection.detach(),
        })
    }

    /// After optimiser step `step`: theta' <- tau theta' + (1 - tau) theta over the parameters
    /// (not the buffers), tau = [`Self::momentum`] of the step.
    /// A frozen teacher is left as it is.
    pub fn update(&self, online: &dyn Encoder, step: usize) -> Result<()> {
        if self.frozen {
            return Ok(());
        }
        let tau = self.momentum(step);
        let targets = self.encoder.parameters();
        let sources = online.parameters();
        if targets.len() != sources.len() {
            return Err(Error::msg(
                "the target network's parameters do not match the encoder's",
            ));
        }
        for (t, o) in targets.iter().zip(&sources) {
            if t.name != o.name {
                return Err(Error::msg(format!(
                    "the target network's `{}` faces the encoder's `{}`",
                    t.name, o.name
                )));
            }
            let averaged = ((t.var.as_tensor().detach() * tau)?
                + (o.var.as_tensor().detach() * (1.0 - tau))?)?;
            t.var.set(&averaged)?;
        }
        Ok(())
    }

    /// Its parameters and buffers under `target.<name>`, for the checkpoint (none for a frozen
    /// teacher, which is reloaded from its run folder).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        if self.frozen {
            return Vec::new();
        }
        encoder_tensors(self.encoder.as_ref())
            .into_iter()
            .map(|(name, t)| (format!("{PREFIX}{name}"), t))
            .collect()
    }

    /// Sets its parameters and buffers from a checkpoint's `target.<name>` tensors.
    pub fn restore(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        if self.frozen {
            return Ok(());
        }
        let own: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(name, t)| {
                name.strip_prefix(PREFIX)
                    .map(|n| (n.to_string(), t.clone()))
            })
            .collect();
        restore_encoder(self.encoder.as_ref(), &own)
            .map_err(|e| Error::msg(format!("the target network: {e}")))
    }

    /// The averaged encoder.
    pub fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }
}
