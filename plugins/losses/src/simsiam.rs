//! `simsiam`: SimSiam (Chen and He, CVPR 2021), as solo-learn computes it
//! (`solo/losses/simsiam.py`, `solo/methods/simsiam.py`). A predictor that the loss owns
//! (`loss.simsiam.predictor.0` Linear D -> hidden, `.1` batch norm and ReLU, `.3` Linear
//! hidden -> D) maps each view's projection z to p; the loss pulls p towards the other view's
//! projection, which is not differentiated (stop-gradient):
//! L = 1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1)),  D(p, z) = -cos(p, z).
//! With more than two views, the mean of D(p_v, sg(z_w)) over every ordered pair v != w.

use crate::predictor::Predictor;
use crate::{require_two_views, split_views};
use candle_core::Tensor;
use rossl_api::components::{BuildContext, Parameter, SslLoss};
use rossl_api::registry::{ParamError, Params};
use rossl_api::Result;

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
    predictor: Predictor,
}

impl SimSiam {
    /// Builds the loss in `ctx` (which must know the encoder's projection width).
    pub fn build(params: &SimSiamParams, ctx: &BuildContext) -> Result<Self> {
        Ok(SimSiam {
            // its own stream: a run that adds this loss keeps the encoder's initialisation
            predictor: Predictor::build("simsiam", params.hidden, 1, ctx)?,
        })
    }
}

impl SslLoss for SimSiam {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        require_two_views("simsiam", views)?;
        let (z3, _, _) = split_views(z, views)?;
        // each view through the predictor on its own, as solo-learn does (batch statistics per
        // view); D(p, z) = -cos(p, z)
        Ok(self
            .predictor
            .mean_cosine_to_other_views(&z3, &z3, views)?
            .neg()?)
    }

    fn parameters(&self) -> Vec<Parameter> {
        self.predictor.parameters()
    }
}

rossl_api::register! {
    kind: loss,
    name: "simsiam",
    summary: "SimSiam: a predictor on each view's projection pulled towards the other view's, stop-gradient (Chen and He 2021)",
    params: SimSiamParams,
    build: |p, ctx| Ok(Box::new(SimSiam::build(&p, ctx)?)),
}
