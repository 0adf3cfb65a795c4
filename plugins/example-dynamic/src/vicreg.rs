//! `vicreg`: Variance-Invariance-Covariance Regularisation (Bardes, Ponce and LeCun, 2022),
//! generalised to n views: invariance is the mean squared distance between every pair of views,
//! variance and covariance are computed per view and averaged.

use candle_core::Tensor;
use rossl_api::components::SslLoss;
use rossl_api::registry::{positive, ParamError, Params};
use rossl_api::{Error, Result};

rossl_api::params! {
    /// Parameters of `vicreg` (defaults: the paper's 25 / 25 / 1).
    pub struct VicRegParams {
        /// Weight of the invariance (mean squared error between views).
        pub invariance: f64 = 25.0,
        /// Weight of the variance hinge.
        pub variance: f64 = 25.0,
        /// Weight of the covariance penalty.
        pub covariance: f64 = 1.0,
        /// Target standard deviation of each dimension.
        pub gamma: f64 = 1.0,
    }
}

impl Params for VicRegParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !positive(self.gamma) {
            return Err(ParamError::new("gamma", "must be > 0"));
        }
        Ok(())
    }
}

/// The VICReg loss.
pub struct VicReg {
    params: VicRegParams,
}

/// Variance hinge and covariance penalty of one view's embeddings (B, D).
fn variance_and_covariance(z: &Tensor, gamma: f64) -> Result<(Tensor, Tensor)> {
    let (b, d) = z.dims2()?;
    let centred = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let var = (centred.sqr()?.sum(0)? / (b as f64 - 1.0))?;
    let std = (var + 1e-4)?.sqrt()?;
    let hinge = (std.neg()? + gamma)?.relu()?.mean_all()?;
    let cov = (centred.t()?.matmul(&centred)? / (b as f64 - 1.0))?;
    let mask = (Tensor::ones((d, d), cov.dtype(), cov.device())?
        - Tensor::eye(d, cov.dtype(), cov.device())?)?;
    let off_diagonal = cov.sqr()?.mul(&mask)?.sum_all()?;
    Ok((hinge, (off_diagonal / d as f64)?))
}

impl SslLoss for VicReg {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        let (rows, _) = z.dims2()?;
        if views < 2 || rows % views != 0 || rows / views < 2 {
            return Err(Error::msg(format!("vicreg needs at least 2 views of at least 2 images; got {rows} rows for {views} views")));
        }
        let b = rows / views;
        let view = |v: usize| z.narrow(0, v * b, b);
        let mut invariance = Vec::new();
        for v in 0..views {
            for w in v + 1..views {
                invariance.push((view(v)? - view(w)?)?.sqr()?.mean_all()?);
            }
        }
        let invariance = Tensor::stack(&invariance, 0)?.mean_all()?;
        let mut variance = Vec::new();
        let mut covariance = Vec::new();
        for v in 0..views {
            let (var, cov) = variance_and_covariance(&view(v)?, self.params.gamma)?;
            variance.push(var);
            covariance.push(cov);
        }
        let variance = Tensor::stack(&variance, 0)?.mean_all()?;
        let covariance = Tensor::stack(&covariance, 0)?.mean_all()?;
        let p = &self.params;
        Ok(((invariance * p.invariance)?
            + (variance * p.variance)?
            + (covariance * p.covariance)?)?)
    }
}

rossl_api::register! {
    kind: loss,
    name: "vicreg",
    summary: "(example dynamic plugin) VICReg: pairwise invariance + variance hinge + covariance penalty",
    params: VicRegParams,
    build: |p, _ctx| Ok(Box::new(VicReg { params: p })),
}
