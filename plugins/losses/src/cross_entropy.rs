//! `cross-entropy`: supervised training, for the supervised adversarial-training baselines
//! (PGD-AT, Madry et al. 2018, is this loss under the `pgd` regime). A linear classifier that the
//! loss owns (`loss.cross-entropy.head.weight` and `.bias`, PyTorch's default initialisation,
//! trained with the encoder and kept in the checkpoint) maps each view's probed feature to the
//! class logits; the loss is the cross-entropy with the image's label, averaged over every view
//! of every image: `F.cross_entropy(head(feature), labels.repeat(views))`.

use candle_core::Tensor;
use rossl_api::components::{BuildContext, LossInput, Mode, Parameter, SslLoss};
use rossl_api::registry::Params;
use rossl_api::rng::{stream, Rng};
use rossl_api::{Error, Result};
use rossl_nn::classify::cross_entropy;
use rossl_nn::layers::{Linear, Module};

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
    head: Linear,
}

/// The registered name, which prefixes the head's parameters.
const NAME: &str = "cross-entropy";

impl CrossEntropy {
    /// The loss with a fresh head for `features` inputs and `classes` classes, drawn from `rng`.
    pub fn new(
        features: usize,
        classes: usize,
        rng: &mut Rng,
        device: &candle_core::Device,
    ) -> Result<Self> {
        let head = Linear::new(&format!("loss.{NAME}.head"), features, classes, rng, device)?;
        Ok(CrossEntropy { head })
    }

    /// Builds the loss in `ctx` (which must know the encoder's feature width and, unless
    /// `classes` is set, the dataset's classes).
    pub fn build(params: &CrossEntropyParams, ctx: &BuildContext) -> Result<Self> {
        let features = ctx.feature_dim.ok_or_else(|| {
            Error::msg(
                "the `cross-entropy` loss needs the encoder's feature width to build its head",
            )
        })?;
        let classes = match (params.classes, ctx.input) {
            (0, Some(input)) => input.classes,
            (0, None) => {
                return Err(Error::Config(
                    "`loss.cross-entropy.classes` = 0 follows the dataset, whose classes are not known here; set it".into(),
                ))
            }
            (c, _) => c,
        };
        if classes < 2 {
            return Err(Error::Config(format!(
                "`loss.cross-entropy.classes` is {classes}: a classifier needs at least 2 classes"
            )));
        }
        let mut rng = Rng::derive(ctx.seed, &[stream::LOSS]);
        Self::new(features, classes, &mut rng, &ctx.device)
    }
}

impl SslLoss for CrossEntropy {
    fn loss(&self, _z: &Tensor, _views: usize) -> Result<Tensor> {
        Err(Error::msg(
            "the `cross-entropy` loss needs the images' labels and features: call `loss_of`",
        ))
    }

    fn loss_of(&self, input: &LossInput<'_>) -> Result<Tensor> {
        let labels = input
            .labels
            .ok_or_else(|| Error::msg("the `cross-entropy` loss got a batch without labels"))?;
        let rows = input.feature.dim(0)?;
        let images = labels.dim(0)?;
        if images * input.views != rows {
            return Err(Error::msg(format!(
                "the `cross-entropy` loss got {rows} features for {images} labels and {} views",
                input.views
            )));
        }
        // view-major rows: the labels of the B images, once per view
        let labels = labels.repeat(input.views)?;
        let logits = self.head.forward(input.feature, Mode::Train)?;
        Ok(cross_entropy(&logits, &labels)?.mean_all()?)
    }

    fn uses_labels(&self) -> bool {
        true
    }

    fn parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        self.head.collect_parameters(&mut out);
        out
    }
}

rossl_api::register! {
    kind: loss,
    name: "cross-entropy",
    summary: "supervised cross-entropy of a linear head on the features, with the labels (PGD-AT under the pgd regime)",
    params: CrossEntropyParams,
    build: |p, ctx| Ok(Box::new(CrossEntropy::build(&p, ctx)?)),
}
