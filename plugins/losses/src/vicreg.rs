//! `vicreg`: VICReg (Bardes, Ponce and LeCun, ICLR 2022), as solo-learn computes it
//! (`solo/losses/vicreg.py`) for two views z1, z2 (N, D):
//! invariance s = mean((z1 - z2)^2) over all N * D entries;
//! variance v = mean_d relu(gamma - sqrt(Var(z1)_d + 1e-4)) + the same for z2 (unbiased variance);
//! covariance c = sum_{i != j} Cov(z1)_ij^2 / D + the same for z2, Cov = centred z^T z / (N - 1);
//! L = invariance * s + variance * v + covariance * c.
//! With more than two views, the mean of L over every pair of views.

use crate::mean_over_view_pairs;
use candle_core::Tensor;
use rossl_api::components::SslLoss;
use rossl_api::registry::{positive, ParamError, Params};
use rossl_api::{Error, Result};

rossl_api::params! {
    /// Parameters of `vicreg`. Defaults: the paper's and solo-learn's CIFAR config (25, 25, 1).
    pub struct VicRegParams {
        /// Weight of the invariance term (mean squared error between the views).
        pub invariance: f64 = 25.0,
        /// Weight of the variance hinge.
        pub variance: f64 = 25.0,
        /// Weight of the covariance penalty.
        pub covariance: f64 = 1.0,
        /// Target standard deviation of each dimension (1 in the paper).
        pub gamma: f64 = 1.0,
    }
}

impl Params for VicRegParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        for (key, value) in [
            ("invariance", self.invariance),
            ("variance", self.variance),
            ("covariance", self.covariance),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(ParamError::new(key, "must be >= 0 and finite"));
            }
        }
        if !positive(self.gamma) {
            return Err(ParamError::new("gamma", "must be > 0"));
        }
        Ok(())
    }
}

/// The VICReg loss.
#[derive(Clone, Debug)]
pub struct VicReg {
    params: VicRegParams,
}

impl VicReg {
    /// The loss with these weights.
    pub fn new(params: VicRegParams) -> Self {
        VicReg { params }
    }

    /// The loss of one pair of views, each (N, D).
    fn pair(&self, z1: &Tensor, z2: &Tensor) -> Result<Tensor> {
        let p = &self.params;
        let (n, _) = z1.dims2()?;
        if n < 2 {
            return Err(Error::msg(
                "the `vicreg` loss needs at least 2 images per batch (a variance over 1 image is undefined)",
            ));
        }
        let invariance = (z1 - z2)?.sqr()?.mean_all()?;
        let (v1, c1) = variance_and_covariance(z1, p.gamma)?;
        let (v2, c2) = variance_and_covariance(z2, p.gamma)?;
        let variance = (v1 + v2)?;
        let covariance = (c1 + c2)?;
        Ok(((invariance * p.invariance)?
            + (variance * p.variance)?
            + (covariance * p.covariance)?)?)
    }
}

/// The variance hinge and the covariance penalty of one view's projections `z` (N, D).
fn variance_and_covariance(z: &Tensor, gamma: f64) -> Result<(Tensor, Tensor)> {
    let (n, d) = z.dims2()?;
    let centred = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let var = (centred.sqr()?.sum(0)? / (n as f64 - 1.0))?;
    let std = (var + 1e-4)?.sqrt()?;
    let hinge = (std.neg()? + gamma)?.relu()?.mean_all()?;
    let cov = (centred.t()?.matmul(&centred)? / (n as f64 - 1.0))?;
    let eye = Tensor::eye(d, cov.dtype(), cov.device())?;
    let off = (&cov - (&cov * &eye)?)?.sqr()?.sum_all()?;
    Ok((hinge, (off / d as f64)?))
}

impl SslLoss for VicReg {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        mean_over_view_pairs(z, views, "vicreg", |a, b| self.pair(a, b))
    }
}

rossl_api::register! {
    kind: loss,
    name: "vicreg",
    summary: "VICReg: invariance between views, a variance hinge and a covariance penalty per view (Bardes et al. 2022)",
    params: VicRegParams,
    build: |p, _ctx| Ok(Box::new(VicReg::new(p))),
}
