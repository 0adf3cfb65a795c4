//! The predictor MLP that SimSiam and BYOL put on the online projections: Linear, batch norm and
//! ReLU, Linear (`loss.<name>.predictor.0`, `.1`, `.3`), trained with the encoder.

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

    /// Its trainable weights.
    pub(crate) fn parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        self.first.collect_parameters(&mut out);
        self.norm.collect_parameters(&mut out);
        self.second.collect_parameters(&mut out);
        out
    }
}
