//! Self-supervised (and supervised) training losses over a set of views.

use super::encoder::{Embedding, Parameter};
use crate::Result;
use candle_core::Tensor;

/// What a loss sees of one batch: the encoder's outputs for every view, and the images' labels
/// when the loss asks for them ([`SslLoss::uses_labels`]).
#[derive(Clone, Copy, Debug)]
pub struct LossInput<'a> {
    /// Projections (views * B, D), view-major: rows `v * B .. (v + 1) * B` are view `v` of the B
    /// images.
    pub projection: &'a Tensor,
    /// Probed features (views * B, F), in the same order.
    pub feature: &'a Tensor,
    /// Views per image.
    pub views: usize,
    /// The labels (B, u32) of the B images, or `None` when no term of the loss uses labels.
    pub labels: Option<&'a Tensor>,
    /// In adversarial training, the embedding of the same views unperturbed (in attack passes
    /// detached, in the update differentiable), when a term asks for it
    /// ([`SslLoss::uses_clean`]); `None` otherwise.
    pub clean: Option<&'a Embedding>,
    /// The target network's embedding of the same (clean) views, detached, when a term asks
    /// for it ([`SslLoss::uses_target`]); `None` otherwise.
    pub target: Option<&'a Embedding>,
    /// Whether this is a pass of the training attack (which maximises the loss) rather than
    /// the update: a loss whose attack objective differs from its training loss (DeACL) reads it.
    pub attack: bool,
}

impl<'a> LossInput<'a> {
    /// The input of an encoder's `embedding` of `views` views per image, with the images'
    /// `labels` when known.
    pub fn new(embedding: &'a Embedding, views: usize, labels: Option<&'a Tensor>) -> Self {
        LossInput {
            projection: &embedding.projection,
            feature: &embedding.feature,
            views,
            labels,
            clean: None,
            target: None,
            attack: false,
        }
    }

    /// The same input, marked as a pass of the training attack.
    pub fn in_attack(mut self) -> Self {
        self.attack = true;
        self
    }

    /// The same input with the target network's embedding.
    pub fn with_target(mut self, target: Option<&'a Embedding>) -> Self {
        self.target = target;
        self
    }

    /// The same input with the embedding of the unperturbed views.
    pub fn with_clean(mut self, clean: Option<&'a Embedding>) -> Self {
        self.clean = clean;
        self
    }
}

/// A training loss over the projections (and features) of several views of each image.
///
/// Most losses implement [`SslLoss::loss`] alone. A loss that needs more (the features, the
/// labels, weights of its own such as a classifier or a predictor head) also overrides
/// [`SslLoss::loss_of`], and [`SslLoss::uses_labels`] or [`SslLoss::parameters`]: the trainer
/// optimises those parameters with the encoder's and keeps them in the run's checkpoint.
pub trait SslLoss: Send + Sync {
    /// The loss (a scalar tensor) for projections `z` of shape (views * B, D), laid out
    /// view-major: rows `v * B .. (v + 1) * B` are view `v` of the B images.
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor>;

    /// The loss of one batch; by default [`SslLoss::loss`] of its projections.
    fn loss_of(&self, input: &LossInput<'_>) -> Result<Tensor> {
        self.loss(input.projection, input.views)
    }

    /// Whether the loss needs the images' labels (supervised baselines); the trainer then passes
    /// them in [`LossInput::labels`].
    fn uses_labels(&self) -> bool {
        false
    }

    /// Whether the loss compares the adversarial views with the same views unperturbed (TRADES,
    /// DeACL): the `pgd` and `free` regimes then pass the clean embedding in
    /// [`LossInput::clean`]; the `standard` regime refuses the loss.
    fn uses_clean(&self) -> bool {
        false
    }

    /// Whether the loss regresses onto a target network (BYOL): the trainer then keeps an
    /// exponential moving average of the encoder (`[train.target]`) and passes its embedding of
    /// the clean views in [`LossInput::target`].
    fn uses_target(&self) -> bool {
        false
    }

    /// Whether the target must be a frozen teacher from a finished run (`train.target.from`,
    /// DeACL) rather than the moving average; the run is refused without one.
    fn needs_teacher(&self) -> bool {
        false
    }

    /// Trainable weights the loss owns (a classifier or predictor head), with names unique in the
    /// run (prefix them with the loss's name); none by default.
    fn parameters(&self) -> Vec<Parameter> {
        Vec::new()
    }
}
