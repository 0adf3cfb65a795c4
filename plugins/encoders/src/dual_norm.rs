//! A batch norm with an optional second branch for adversarial inputs (dual batch norm).

use candle_core::{Device, Tensor};
use rossl_api::components::{BnBranch, Mode};
use rossl_api::Result;
use rossl_nn::{BatchNorm, Module};

/// One batch-norm site of the encoder: the clean branch, and the adversarial one when the encoder
/// has dual batch norm.
#[derive(Clone)]
pub(crate) struct DualNorm {
    clean: BatchNorm,
    adversarial: Option<BatchNorm>,
}

impl DualNorm {
    /// A site named `name` over `channels` features; with `dual`, a second branch named
    /// `name.adversarial` ([`BnBranch::ADVERSARIAL_SEGMENT`]).
    pub fn new(name: &str, channels: usize, dual: bool, device: &Device) -> Result<Self> {
        let adversarial = if dual {
            Some(BatchNorm::new(
                &format!("{name}.{}", BnBranch::ADVERSARIAL_SEGMENT),
                channels,
                device,
            )?)
        } else {
            None
        };
        Ok(DualNorm {
            clean: BatchNorm::new(name, channels, device)?,
            adversarial,
        })
    }

    /// The batch norm that `branch` runs through (the clean one when there is only one).
    pub fn pick(&self, branch: BnBranch) -> &BatchNorm {
        match (branch, &self.adversarial) {
            (BnBranch::Adversarial, Some(adversarial)) => adversarial,
            _ => &self.clean,
        }
    }

    /// [`BatchNorm::forward`] through the branch's batch norm.
    pub fn forward(&self, x: &Tensor, mode: Mode, relu: bool, branch: BnBranch) -> Result<Tensor> {
        self.pick(branch).forward(x, mode, relu)
    }

    /// Its modules: the clean branch, then the adversarial one.
    pub fn modules(&self) -> Vec<&dyn Module> {
        let mut out: Vec<&dyn Module> = vec![&self.clean];
        if let Some(adversarial) = &self.adversarial {
            out.push(adversarial);
        }
        out
    }
}
