//! Encoders: images to the probed feature and the normalised projection.

use super::windowed::WindowedPass;
use crate::Result;
use candle_core::{Tensor, Var};

/// How an encoder runs its batch normalisation and whether its weights take gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: batch statistics, running statistics updated, weights tracked for gradients.
    Train,
    /// Attack passes during training: batch statistics (as the training pass sees them), running
    /// statistics left untouched, weights detached so that gradients reach only the input.
    Attack,
    /// Evaluation: running statistics, weights detached. What a frozen encoder runs.
    Eval,
}

impl Mode {
    /// `true` when batch normalisation uses the statistics of the batch.
    pub fn batch_statistics(self) -> bool {
        matches!(self, Mode::Train | Mode::Attack)
    }

    /// `true` when the weights are tracked for gradients.
    pub fn tracks_weights(self) -> bool {
        matches!(self, Mode::Train)
    }
}

/// The batch-norm branch of an encoder with dual batch norm (ACL's "dual stream"): clean inputs
/// run through one set of batch-norm statistics and affine parameters, adversarial inputs
/// through the other; every other weight is shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BnBranch {
    /// The branch of clean inputs, the one evaluations use by default (as ACL evaluates).
    #[default]
    Clean,
    /// The branch of adversarial inputs: the training attack's passes and the update's forward
    /// pass on the perturbed views.
    Adversarial,
}

impl BnBranch {
    /// The segment that marks the adversarial branch's tensors in their names:
    /// `backbone.bn1.adversarial.weight` beside the clean branch's `backbone.bn1.weight`, so that
    /// the clean branch keeps the names of a single-batch-norm model.
    pub const ADVERSARIAL_SEGMENT: &'static str = "adversarial";

    /// The clean branch's name of an adversarial branch's tensor (`bn1.adversarial.weight` ->
    /// `bn1.weight`); `None` for any other name.
    pub fn clean_twin(name: &str) -> Option<String> {
        let marker = format!(".{}.", Self::ADVERSARIAL_SEGMENT);
        name.contains(&marker)
            .then(|| name.replacen(&marker, ".", 1))
    }

    /// The name used in configurations and reports.
    pub fn name(self) -> &'static str {
        match self {
            BnBranch::Clean => "clean",
            BnBranch::Adversarial => "adversarial",
        }
    }
}

/// What an encoder produces for a batch of images.
#[derive(Clone, Debug)]
pub struct Embedding {
    /// The feature that probes read: the output of the head's first layer (B, feature_dim).
    pub feature: Tensor,
    /// The L2-normalised projection that SSL losses see (B, projection_dim).
    pub projection: Tensor,
}

/// How the optimiser treats a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRole {
    /// A weight matrix or convolution kernel: weight decay and LARS scaling apply.
    Weight,
    /// A bias or a normalisation scale/shift: excluded from weight decay and LARS scaling.
    BiasOrNorm,
}

/// A trainable parameter with its PyTorch `state_dict` name.
#[derive(Clone, Debug)]
pub struct Parameter {
    /// The name, as in the equivalent PyTorch module's `state_dict` (e.g. `layer1.0.conv1.weight`).
    pub name: String,
    /// The variable holding the value.
    pub var: Var,
    /// How the optimiser treats it.
    pub role: ParamRole,
}

/// A non-trainable state tensor (batch-norm running statistics, counters), never optimised.
#[derive(Clone, Debug)]
pub struct Buffer {
    /// The `state_dict` name (e.g. `bn1.running_mean`).
    pub name: String,
    /// The variable holding the value; updated in place by training-mode forward passes.
    pub var: Var,
}

/// An image encoder: a backbone and an SSL head.
pub trait Encoder: Send + Sync {
    /// Runs images (B, C, H, W) in [0, 1] through the encoder.
    fn forward(&self, images: &Tensor, mode: Mode) -> Result<Embedding>;

    /// The probed feature alone (B, feature_dim); skips the projection.
    fn features(&self, images: &Tensor, mode: Mode) -> Result<Tensor>;

    /// Width of the probed feature.
    fn feature_dim(&self) -> usize;

    /// Width of the projection.
    fn projection_dim(&self) -> usize;

    /// The trainable parameters, in a stable order.
    fn parameters(&self) -> Vec<Parameter>;

    /// The state that is saved but never optimised, in a stable order.
    fn buffers(&self) -> Vec<Buffer>;

    /// Completes a gradient store after a backward pass, before the optimiser reads it. Encoders
    /// implemented as fused operations receive their weights' gradients in one flat tensor and
    /// split it here into per-parameter gradients; others need do nothing.
    fn route_gradients(&self, _grads: &mut candle_core::backprop::GradStore) -> Result<()> {
        Ok(())
    }

    /// Whether the encoder keeps separate batch norms for clean and adversarial inputs
    /// ([`BnBranch`]). Encoders without dual batch norm have one branch serving both.
    fn dual_batch_norm(&self) -> bool {
        false
    }

    /// Selects the batch-norm branch of the forward passes that follow, until the next call. The
    /// runtime selects [`BnBranch::Adversarial`] around the training attack and the forward pass
    /// of the perturbed views, and the evaluation's branch (`eval.bn_branch`) before evaluating.
    /// Encoders without dual batch norm ignore it.
    fn select_branch(&self, _branch: BnBranch) {}

    /// A pass, in evaluation mode, giving the probed features ([`Encoder::features`]) of images
    /// that differ from `base` (B, C, H, W) only inside one window each, recomputing only what
    /// each window reaches; `None` (the default) when the encoder cannot, and its callers then
    /// run whole images through [`Encoder::features`].
    fn windowed(&self, _base: &Tensor) -> Result<Option<Box<dyn WindowedPass + '_>>> {
        Ok(None)
    }
}

/// An encoder that can only run in evaluation mode: what evaluators receive. Gradients flow to the
/// input only; weights and batch-norm statistics cannot change through it.
#[derive(Clone, Copy)]
pub struct FrozenEncoder<'a> {
    inner: &'a dyn Encoder,
}

impl<'a> FrozenEncoder<'a> {
    /// Freezes `encoder` for evaluation.
    pub fn new(encoder: &'a dyn Encoder) -> Self {
        FrozenEncoder { inner: encoder }
    }

    /// The probed feature of `images` in evaluation mode.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        self.inner.features(images, Mode::Eval)
    }

    /// Width of the probed feature.
    pub fn feature_dim(&self) -> usize {
        self.inner.feature_dim()
    }

    /// The encoder's [`Encoder::windowed`] pass from `base`, in evaluation mode.
    pub fn windowed(&self, base: &Tensor) -> Result<Option<Box<dyn WindowedPass + 'a>>> {
        self.inner.windowed(base)
    }
}
