//! Evaluators: classifiers fitted on a frozen encoder.

use super::{FrozenEncoder, ImageSet};
use crate::rng::Rng;
use crate::Result;
use candle_core::{Device, Tensor};

/// What an evaluator fits its classifier with.
pub struct FitContext<'a> {
    /// The encoder, frozen (evaluation mode, no gradient to its weights).
    pub encoder: FrozenEncoder<'a>,
    /// Labelled training images.
    pub train: &'a ImageSet,
    /// The device of the encoder.
    pub device: &'a Device,
    /// A seed for the evaluator's own randomness.
    pub seed: u64,
}

/// A classifier on images, end to end through the frozen encoder and differentiable with respect to
/// its input, so that attacks can be run against it.
pub trait Classifier: Send + Sync {
    /// Logits (B, classes) of images (B, C, H, W). A random classifier (one that averages random
    /// views, say) draws its randomness from `rng`.
    fn logits(&self, images: &Tensor, rng: &mut Rng) -> Result<Tensor>;

    /// `true` when [`Classifier::logits`] is random: attacks then use expectation over
    /// transformation (gradients averaged over several draws).
    fn is_random(&self) -> bool {
        false
    }

    /// The classifier's own state, not the encoder's: a probe head's `weight` and `bias`, a kNN
    /// classifier's feature bank. Names are those of the equivalent PyTorch module's
    /// `state_dict` (an `nn.Linear` head: `weight`, `bias`), so that the head can be loaded
    /// strictly there. Evaluation saves them beside `results.json` and checks that attacks left
    /// them unchanged.
    fn tensors(&self) -> Vec<(String, Tensor)>;
}

/// Fits a classifier on a frozen encoder (a linear probe, kNN, ...).
pub trait Evaluator: Send + Sync {
    /// Fits the classifier on `ctx.train`.
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>>;
}
