//! `simsiam`: SimSiam (Chen and He, CVPR 2021), as solo-learn computes it
//! (`solo/losses/simsiam.py`, `solo/methods/simsiam.py`). A predictor that the loss owns
//! (`loss.simsiam.predictor.0` Linear D -> hidden, `.1` batch norm and ReLU, `.3` Linear
//! hidden -> D) maps each view's projection z to p; the loss pulls p towards the other view's
//! projection, which is not differentiated (stop-gradient):
//! L = 1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1)),  D(p, z) = -cos(p, z).
//! With more than two views, the mean of D(p_v, sg(z_w)) over every ordered pair v != w.

use crate::invariance::cosine_similarity;
use crate::split_views;
use candle_core::Tensor;
use rossl_api::components::{BuildContext, Mode, Parameter, SslLoss};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::{stream, Rng};
use rossl_api::{Error, Result};
use rossl_nn::layers::{BatchNorm, Linear, Module};

rossl_api::params! {
    /// Parameters of `simsiam`. Default: solo-learn's CIFAR predictor width.
    pub struct SimSiamParams {
        /// Width of the predictor's hidden layer.
        pub hidden: usize = 512,
    }
}

impl Params for SimSiamParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.hidden == 0 {
            return Err(ParamError::new("hidden", "must be at least 1"));
        }
        Ok(())
    }
}

/// The SimSiam loss with its predictor.
#[derive(Debug)]
pub struct SimSiam {
    first: Linear,
    norm: BatchNorm,
    second: Linear,
}

impl SimSiam {
    /// Builds the loss in `ctx` (which must know the encoder's projection width).
    pub fn build(params: &SimSiamParams, ctx: &BuildContext) -> Result<Self> {
        let width = ctx.projection_dim.ok_or_else(|| {
            Error::msg(
                "the `simsiam` loss needs the encoder's projection width to build its predictor",
            )
        })?;
        // its own stream: a run that adds this loss keeps the encoder's initialisation
        let mut rng = Rng::derive(ctx.seed, &[stream::LOSS, 1]);
        let name = "loss.simsiam.predictor";
        Ok(SimSiam {
            first: Linear::new(
                &format!("{name}.0"),
                width,
                params.hidden,
                &mut rng,
                &ctx.device,
            )?,
            norm: BatchNorm::new(&format!("{name}.1"), params.hidden, &ctx.device)?,
            second: Linear::new(
                &format!("{name}.3"),
                params.hidden,
                width,
                &mut rng,
                &ctx.device,
            )?,
        })
    }

    /// The predictor's output for one view's projections `z` (B, D): batch statistics in the
    /// batch norm (the predictor is used only in training; its running statistics are not kept).
    fn predict(&self, z: &Tensor) -> Result<Tensor> {
        let h = self.first.forward(z, Mode::Train)?;
        let h = self.norm.forward(&h, Mode::Attack, true)?;
        self.second.forward(&h, Mode::Train)
    }
}

impl SslLoss for SimSiam {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        if views < 2 {
            return Err(Error::msg(format!(
                "the `simsiam` loss compares views of each image and needs at least 2 views per \
                 image, got {views}: set `views` of the view strategy to 2 or more"
            )));
        }
        let (z3, _, _) = split_views(z, views)?;
        // each view through the predictor on its own, as solo-learn does (batch statistics per view)
        let p3 = (0..views)
            .map(|v| self.predict(&z3.get(v)?))
            .collect::<Result<Vec<_>>>()?;
        let target = z3.detach();
        let mut total: Option<Tensor> = None;
        for v in 0..views {
            for w in (0..views).filter(|&w| w != v) {
                let value = cosine_similarity(&p3[v], &target.get(w)?)?.mean_all()?;
                total = Some(match total {
                    Some(t) => (t + value)?,
                    None => value,
                });
            }
        }
        let pairs = (views * (views - 1)) as f64;
        Ok((total.expect("at least one pair of views").neg()? / pairs)?)
    }

    fn parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        self.first.collect_parameters(&mut out);
        self.norm.collect_parameters(&mut out);
        self.second.collect_parameters(&mut out);
        out
    }
}

rossl_api::register! {
    kind: loss,
    name: "simsiam",
    summary: "SimSiam: a predictor on each view's projection pulled towards the other view's, stop-gradient (Chen and He 2021)",
    params: SimSiamParams,
    build: |p, ctx| Ok(Box::new(SimSiam::build(&p, ctx)?)),
}
