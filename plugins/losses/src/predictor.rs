//! The predictor MLP that SimSiam and BYOL put on the online projections: Linear, batch norm and
//! ReLU, Linear (`loss.<name>.predictor.0`, `.1`, `.3`), trained with the encoder.

use crate::invariance::cosine_similarity;
use candle_core::Tensor;
use rossl_api::components::{BuildContext, Mode, Parameter};
use rossl_api::rng::{stream, Rng};
use rossl_api::{Error, Result};
use rossl_nn::layers::{BatchNorm, Linear, Module};

/// A predictor D -> hidden -> D, where D is the encoder's projection width.
#[derive(Debug)]
pub(crate) struct Predictor {
    first: Linear,
    norm: BatchNorm,
    second: Linear,
}

impl Predictor {
    /// The predictor of the loss registered as `loss`, `hidden` wide, built in `ctx` (which must
    /// know the encoder's projection width), drawn from stream `index` of the losses' weights.
    pub(crate) fn build(loss: &str, hidden: usize, index: u64, ctx: &BuildContext) -> Result<Self> {
        let width = ctx.projection_dim.ok_or_else(|| {
            Error::msg(format!(
                "the `{loss}` loss needs the encoder's projection width to build its predictor"
            ))
        })?;
        let mut rng = Rng::derive(ctx.seed, &[stream::LOSS, index]);
        let name = format!("loss.{loss}.predictor");
        Ok(Predictor {
            first: Linear::new(&format!("{name}.0"), width, hidden, &mut rng, &ctx.device)?,
            norm: BatchNorm::new(&format!("{name}.1"), hidden, &ctx.device)?,
            second: Linear::new(&format!("{name}.3"), hidden, width, &mut rng, &ctx.device)?,
        })
    }

    /// The prediction for one view's projections `z` (B, D): training mode throughout, so the
    /// batch norm normalises with the batch and its scale and shift are trained (its running
    /// statistics are never read, and not kept in the checkpoint).
    pub(crate) fn predict(&self, z: &Tensor) -> Result<Tensor> {
        let h = self.first.forward(z, Mode::Train)?;
        let h = self.norm.forward(&h, Mode::Train, true)?;
        self.second.forward(&h, Mode::Train)
    }

    /// The mean over every ordered pair of views v != w of the cosine similarity between the
    /// prediction of view v's projection (from `online`, (views, B, D)) and view w of `target`
    /// ((views, B, D), not differentiated), each averaged over the images.
    pub(crate) fn mean_cosine_to_other_views(
        &self,
        online: &Tensor,
        target: &Tensor,
        views: usize,
    ) -> Result<Tensor> {
        let target = target.detach();
        let mut total: Option<Tensor> = None;
        for v in 0..views {
            let prediction = self.predict(&online.get(v)?)?;
            for w in (0..views).filter(|&w| w != v) {
                let value = cosine_similarity(&prediction, &target.get(w)?)?.mean_all()?;
                total = Some(match total {
                    Some(t) => (t + value)?,
                    None => value,
                });
            }
        }
        let total = total.ok_or_else(|| Error::msg("a predictor loss needs two views"))?;
        Ok((total / (views * (views - 1)) as f64)?)
    }

    /// Its trainable weights.
    pub(crate) fn parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        self.first.collect_parameters(&mut out);
        self.norm.collect_parameters(&mut out);
        self.second.collect_parameters(&mut out);
        out
    }
}
