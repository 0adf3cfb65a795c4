//! `barlow-twins`: Barlow Twins (Zbontar et al., ICML 2021), as solo-learn computes it
//! (`solo/losses/barlow.py`): each view's projections (N, D) are standardised per dimension with
//! batch statistics (an affine-free batch norm in training mode: biased variance, eps 1e-5), their
//! cross-correlation C = z1^T z2 / N is pulled to the identity:
//! L = scale * ( sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 ).
//! With more than two views, the mean of L over every pair of views.

use crate::mean_over_view_pairs;
use candle_core::{Tensor, D};
use rossl_api::components::SslLoss;
use rossl_api::registry::{positive, ParamError, Params};
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `barlow-twins`. Defaults: the authors' code (facebookresearch/barlowtwins,
    /// `--lambd 0.0051`, no scale); solo-learn's CIFAR config sets `scale = 0.1`.
    pub struct BarlowTwinsParams {
        /// Weight of the off-diagonal (redundancy reduction) term.
        pub lambda: f64 = 0.0051,
        /// Factor on the whole loss.
        pub scale: f64 = 1.0,
    }
}

impl Params for BarlowTwinsParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return Err(ParamError::new("lambda", "must be >= 0 and finite"));
        }
        if !positive(self.scale) {
            return Err(ParamError::new("scale", "must be > 0"));
        }
        Ok(())
    }
}

/// The Barlow Twins loss.
#[derive(Clone, Debug)]
pub struct BarlowTwins {
    params: BarlowTwinsParams,
}

impl BarlowTwins {
    /// The loss with these weights.
    pub fn new(params: BarlowTwinsParams) -> Self {
        BarlowTwins { params }
    }

    /// The loss of one pair of views, each (N, D).
    fn pair(&self, z1: &Tensor, z2: &Tensor) -> Result<Tensor> {
        let (n, d) = z1.dims2()?;
        let c = standardise(z1)?
            .t()?
            .matmul(&standardise(z2)?)?
            .affine(1.0 / n as f64, 0.0)?;
        let eye = Tensor::eye(d, c.dtype(), c.device())?;
        let diagonal = (&c * &eye)?.sum(D::Minus1)?;
        let on = (diagonal - 1.0)?.sqr()?.sum_all()?;
        let off = ((&c - (&c * &eye)?)?).sqr()?.sum_all()?;
        Ok(((on + (off * self.params.lambda)?)? * self.params.scale)?)
    }
}

/// Each column of `z` (N, D) standardised with its batch mean and biased variance, eps 1e-5
/// (PyTorch's `BatchNorm1d(D, affine=False)` in training mode).
fn standardise(z: &Tensor) -> Result<Tensor> {
    let centred = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let var = centred.sqr()?.mean_keepdim(0)?;
    Ok(centred.broadcast_div(&(var + 1e-5)?.sqrt()?)?)
}

impl SslLoss for BarlowTwins {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        mean_over_view_pairs(z, views, "barlow-twins", |a, b| self.pair(a, b))
    }
}

rossl_api::register! {
    kind: loss,
    name: "barlow-twins",
    summary: "Barlow Twins: the cross-correlation of standardised views pulled to the identity (Zbontar et al. 2021)",
    params: BarlowTwinsParams,
    build: |p, _ctx| Ok(Box::new(BarlowTwins::new(p))),
}
