//! Evaluators: classifiers fitted on a frozen encoder.

use super::{Encoder, FrozenEncoder, ImageSet, WindowedPass};
use crate::rng::Rng;
use crate::Result;
use candle_core::{Device, Tensor};

/// Keys of an evaluator's section (`[eval.<evaluator>]`) that the runtime reads for every
/// evaluator and never passes to the evaluator's own parameters: `label_fraction` (fit on a
/// class-balanced, seeded share of the training labels), `dataset` (fit and test on another
/// dataset: transfer), `resize` and `channels` (the adaptations a transfer dataset's images may
/// need to reach the encoder's input shape). An evaluator's parameters cannot use these names.
pub const RUNTIME_KEYS: [&str; 4] = ["label_fraction", "dataset", "resize", "channels"];

/// Builds a trainable copy of the evaluated encoder: the same architecture, weights, buffers and
/// batch-norm branch, sharing no storage with it.
pub type EncoderCopier<'a> = dyn Fn() -> Result<Box<dyn Encoder>> + Sync + 'a;

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
    /// Trainable copies of the encoder, for evaluators that fine-tune it (the frozen encoder
    /// above, and its checkpoint, must stay as they are). `None` where no copy can be made (the
    /// training monitor's probes).
    pub copy_encoder: Option<&'a EncoderCopier<'a>>,
}

/// What fitting a classifier cost, for evaluators that train the encoder (reported as
/// training's cost is).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitCost {
    /// Passes over the training images.
    pub epochs: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Encoder forward passes (one per batch forwarded, attack iterations included).
    pub forward_passes: u64,
    /// Encoder backward passes.
    pub backward_passes: u64,
}

/// A classifier on images, end to end through the frozen encoder and differentiable with respect to
/// its input, so that attacks can be run against it.
pub trait Classifier: Send + Sync {
    /// Logits (B, classes) of images (B, C, H, W). A random classifier (one that averages random
    /// views, say) draws its randomness from `rng`.
    fn logits(&self, images: &Tensor, rng: &mut Rng) -> Result<Tensor>;

    /// Logits (R, classes) of `images` (R, C, H, W), the rows `rows` (ascending, each below
    /// `batch_len`) of a batch of `batch_len` images: each image is judged under the draw it has
    /// at its row of the whole batch under `rng`, so that a subset of a batch (the points an
    /// attack runs on) sees the randomness the whole batch saw.
    ///
    /// The default is [`Classifier::logits`] for a deterministic classifier, and for a random one
    /// [`Classifier::logits`] of the whole batch with `images` at `rows` (and zeros elsewhere),
    /// read at `rows`. A random classifier whose draw per row can be cut out more cheaply
    /// overrides it.
    fn logits_at_rows(
        &self,
        images: &Tensor,
        rows: &[usize],
        batch_len: usize,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let whole = rows.len() == batch_len && rows.iter().enumerate().all(|(i, &r)| i == r);
        if !self.is_random() || whole || rows.is_empty() {
            return self.logits(images, rng);
        }
        let blank = images.narrow(0, 0, 1)?.zeros_like()?;
        let mut parts = vec![blank; batch_len];
        for (j, &r) in rows.iter().enumerate() {
            parts[r] = images.narrow(0, j, 1)?;
        }
        let logits = self.logits(&Tensor::cat(&parts, 0)?, rng)?;
        let index: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let index = Tensor::from_vec(index, rows.len(), logits.device())?;
        Ok(logits.index_select(&index, 0)?)
    }

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

    /// What fitting it cost in encoder passes, for a classifier whose fitting trained the
    /// encoder (a fine-tuned copy); `None` (the default) for heads fitted on frozen features.
    fn fit_cost(&self) -> Option<FitCost> {
        None
    }

    /// A pass giving the logits of images that differ from `base` only inside one window each,
    /// recomputing only what each window reaches, for a deterministic classifier whose encoder
    /// offers one ([`crate::components::Encoder::windowed`]); `None` (the default) otherwise.
    fn windowed(&self, _base: &Tensor) -> Result<Option<Box<dyn WindowedPass + '_>>> {
        Ok(None)
    }
}

/// Fits a classifier on a frozen encoder (a linear probe, kNN, ...).
pub trait Evaluator: Send + Sync {
    /// Fits the classifier on `ctx.train`.
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>>;
}
