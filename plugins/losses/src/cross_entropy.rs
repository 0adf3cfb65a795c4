//! `cross-entropy`: supervised training, for the supervised adversarial-training baselines
//! (PGD-AT, Madry et al. 2018, is this loss under the `pgd` regime). A linear classifier that the
//! loss owns (`loss.cross-entropy.head.weight` and `.bias`, PyTorch's default initialisation,
//! trained with the encoder and kept in the checkpoint) maps each view's probed feature to the
//! class logits; the loss is the cross-entropy with the image's label, averaged over every view
//! of every image: `F.cross_entropy(head(feature), labels.repeat(views))`.

use crate::head::{labels_per_view, ClassifierHead};
use candle_core::Tensor;
use rossl_api::components::{BuildContext, LossInput, Parameter, SslLoss};
use rossl_api::registry::Params;
use rossl_api::{Error, Result};
use rossl_nn::classify::cross_entropy;

rossl_api::params! {
    /// Parameters of `cross-entropy`.
    pub struct CrossEntropyParams {
        /// Number of classes (0: the dataset's).
        pub classes: usize = 0,
    }
}

impl Params for CrossEntropyParams {}

/// The supervised cross-entropy loss with its classifier head.
#[derive(Debug)]
pub struct CrossEntropy {
    head: ClassifierHead,
}

impl CrossEntropy {
    /// Builds the loss in `ctx` (which must know the encoder's feature width and, unless
    /// `classes` is set, the dataset's classes).
    pub fn build(params: &CrossEntropyParams, ctx: &BuildContext) -> Result<Self> {
        Ok(CrossEntropy {
            head: ClassifierHead::build("cross-entropy", params.classes, ctx)?,
        })
    }
}

impl SslLoss for CrossEntropy {
    fn loss(&self, _z: &Tensor, _views: usize) -> Result<Tensor> {
        Err(Error::msg(
            "the `cross-entropy` loss needs the images' labels and features: call `loss_of`",
        ))
    }

    fn loss_of(&self, input: &LossInput<'_>) -> Result<Tensor> {
        let rows = input.feature.dim(0)?;
        let labels = labels_per_view("cross-entropy", input.labels, input.views, rows)?;
        let logits = self.head.logits(input.feature)?;
        Ok(cross_entropy(&logits, &labels)?.mean_all()?)
    }

    fn uses_labels(&self) -> bool {
        true
    }

    fn parameters(&self) -> Vec<Parameter> {
        self.head.parameters()
    }
}

rossl_api::register! {
    kind: loss,
    name: "cross-entropy",
    summary: "supervised cross-entropy of a linear head on the features, with the labels (PGD-AT under the pgd regime)",
    params: CrossEntropyParams,
    build: |p, ctx| Ok(Box::new(CrossEntropy::build(&p, ctx)?)),
}
