//! `byol`: BYOL (Grill et al., NeurIPS 2020), as solo-learn computes it (`solo/losses/byol.py`,
//! `solo/methods/byol.py`). A predictor that the loss owns (`loss.byol.predictor.0` Linear
//! D -> hidden, `.1` batch norm and ReLU, `.3` Linear hidden -> D) maps each view's online
//! projection to q; the target network (an exponential moving average of the encoder, kept by
//! the trainer: `[train.target]`) gives z' of the views, not differentiated. For two views
//! L = l(q1, z'2) + l(q2, z'1), l(q, z') = 2 - 2 cos(q, z') (a sum over the views, as solo-learn);
//! with V views, 2 / (V (V - 1)) times the sum over every ordered pair v != w (for V = 2, the
//! same sum).

use crate::predictor::Predictor;
use crate::{require_two_views, split_views};
use candle_core::Tensor;
use rossl_api::components::{BuildContext, LossInput, Parameter, SslLoss};
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};

rossl_api::params! {
    /// Parameters of `byol`. Default: solo-learn's CIFAR predictor width.
    pub struct ByolParams {
        /// Width of the predictor's hidden layer.
        pub hidden: usize = 4096,
    }
}

impl Params for ByolParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.hidden == 0 {
            return Err(ParamError::new("hidden", "must be at least 1"));
        }
        Ok(())
    }
}

/// The BYOL loss with its predictor.
#[derive(Debug)]
pub struct Byol {
    predictor: Predictor,
}

impl Byol {
    /// Builds the loss in `ctx` (which must know the encoder's projection width).
    pub fn build(params: &ByolParams, ctx: &BuildContext) -> Result<Self> {
        Ok(Byol {
            predictor: Predictor::build("byol", params.hidden, 2, ctx)?,
        })
    }
}

impl SslLoss for Byol {
    fn loss(&self, _z: &Tensor, _views: usize) -> Result<Tensor> {
        Err(Error::msg(
            "the `byol` loss needs the target network's projections: call `loss_of`",
        ))
    }

    fn loss_of(&self, input: &LossInput<'_>) -> Result<Tensor> {
        let views = input.views;
        require_two_views("byol", views)?;
        let target = input
            .target
            .ok_or_else(|| Error::msg("the `byol` loss got no target network's projections"))?;
        let (online, _, _) = split_views(input.projection, views)?;
        let (target, _, _) = split_views(&target.projection.detach(), views)?;
        // 2 - 2 cos averaged over the ordered pairs, times 2: two views give solo-learn's sum
        let cos = self
            .predictor
            .mean_cosine_to_other_views(&online, &target, views)?;
        Ok((cos.affine(-2.0, 2.0)? * 2.0)?)
    }

    fn uses_target(&self) -> bool {
        true
    }

    fn parameters(&self) -> Vec<Parameter> {
        self.predictor.parameters()
    }
}

rossl_api::register! {
    kind: loss,
    name: "byol",
    summary: "BYOL: a predictor on each view's projection regressed onto the target network's other view (Grill et al. 2020)",
    params: ByolParams,
    build: |p, ctx| Ok(Box::new(Byol::build(&p, ctx)?)),
}
