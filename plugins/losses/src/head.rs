//! The linear classifier head that supervised losses own: `loss.<name>.head.weight` and `.bias`,
//! PyTorch's default initialisation drawn from the run's seed.

use candle_core::Tensor;
use rossl_api::components::{BuildContext, Mode, Parameter};
use rossl_api::rng::{stream, Rng};
use rossl_api::{Error, Result};
use rossl_nn::layers::{Linear, Module};

/// A linear classifier on the encoder's feature, trained with it.
#[derive(Debug)]
pub(crate) struct ClassifierHead {
    linear: Linear,
}

impl ClassifierHead {
    /// A head from the encoder's feature to `classes` logits (0: the dataset's classes) for the
    /// loss registered as `loss`, built in `ctx`.
    pub(crate) fn build(loss: &str, classes: usize, ctx: &BuildContext) -> Result<Self> {
        let features = ctx.feature_dim.ok_or_else(|| {
            Error::msg(format!(
                "the `{loss}` loss needs the encoder's feature width to build its head"
            ))
        })?;
        let classes = head_classes(loss, classes, ctx)?;
        let mut rng = Rng::derive(ctx.seed, &[stream::LOSS, 0]);
        let name = format!("loss.{loss}.head");
        Ok(ClassifierHead {
            linear: Linear::new(&name, features, classes, &mut rng, &ctx.device)?,
        })
    }

    /// The logits (rows, classes) of features (rows, F), differentiable in both.
    pub(crate) fn logits(&self, features: &Tensor) -> Result<Tensor> {
        self.linear.forward(features, Mode::Train)
    }

    /// Its weight and bias.
    pub(crate) fn parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        self.linear.collect_parameters(&mut out);
        out
    }
}

/// The head's number of classes: `classes`, or the dataset's for 0; fewer than the dataset's,
/// or than 2, is an error naming `loss.<loss>.classes`.
fn head_classes(loss: &str, classes: usize, ctx: &BuildContext) -> Result<usize> {
    let classes = match (classes, ctx.input) {
        (0, Some(input)) => input.classes,
        (0, None) => {
            return Err(Error::Config(format!(
                "`loss.{loss}.classes` = 0 follows the dataset, whose classes are not known here; set it"
            )))
        }
        (c, _) => c,
    };
    if let Some(input) = ctx.input {
        if classes < input.classes {
            return Err(Error::Config(format!(
                "`loss.{loss}.classes` is {classes}, but the dataset has {} classes: set it to \
                 {} or more (0 follows the dataset)",
                input.classes, input.classes
            )));
        }
    }
    if classes < 2 {
        return Err(Error::Config(format!(
            "`loss.{loss}.classes` is {classes}: a classifier needs at least 2 classes"
        )));
    }
    Ok(classes)
}

/// The labels of `labels` (B) once per view, view-major (views * B), checked against `rows`
/// feature rows; `loss` names the loss in errors.
pub(crate) fn labels_per_view(
    loss: &str,
    labels: Option<&candle_core::Tensor>,
    views: usize,
    rows: usize,
) -> Result<candle_core::Tensor> {
    let labels = labels
        .ok_or_else(|| Error::msg(format!("the `{loss}` loss got a batch without labels")))?;
    let images = labels.dim(0)?;
    if images * views != rows {
        return Err(Error::msg(format!(
            "the `{loss}` loss got {rows} features for {images} labels and {views} views"
        )));
    }
    Ok(labels.repeat(views)?)
}
