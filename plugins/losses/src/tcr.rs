//! `tcr`: the total coding rate of EMP-SSL.
//!
//! For each view's projections Z_i (B x d): R(Z_i) = 1/2 logdet(I_d + d / (B eps) Z_i^T Z_i),
//! computed on the smaller Gram side, 1/2 logdet(I_B + d / (B eps) Z_i Z_i^T) (the two are equal).
//! The loss is -(1/n) sum_i R(Z_i): minimising it spreads the embeddings out. `eps` = 0.2 plays the
//! role of eps^2 in the EMP-SSL paper's notation (paper-spec section 2).

use crate::split_views;
use candle_core::{DType, Tensor};
use rossl_api::components::SslLoss;
use rossl_api::registry::{ParamError, Params};
use rossl_api::Result;
use rossl_nn::ops::logdet_spd;

rossl_api::params! {
    /// Parameters of `tcr`.
    pub struct TcrParams {
        /// The distortion eps (EMP-SSL: 0.2).
        pub eps: f64 = 0.2,
    }
}

impl Params for TcrParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(ParamError::new("eps", "must be a finite number > 0"));
        }
        Ok(())
    }
}

/// The total coding rate loss.
#[derive(Clone, Debug)]
pub struct TotalCodingRate {
    eps: f64,
}

impl TotalCodingRate {
    /// The loss with distortion `eps`.
    pub fn new(eps: f64) -> Self {
        TotalCodingRate { eps }
    }

    /// R(Z_i) for every view: (views,).
    pub fn coding_rates(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        let (z3, b, d) = split_views(z, views)?;
        let gram = z3.matmul(&z3.transpose(1, 2)?.contiguous()?)?;
        let scale = d as f64 / (b as f64 * self.eps);
        let identity = Tensor::eye(b, z.dtype(), z.device())?.unsqueeze(0)?;
        let a = (gram * scale)?.broadcast_add(&identity)?;
        let a = if a.dtype() == DType::F64 {
            a
        } else {
            a.to_dtype(DType::F32)?
        };
        Ok((logdet_spd(&a)? * 0.5)?)
    }
}

impl SslLoss for TotalCodingRate {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        Ok(self.coding_rates(z, views)?.mean_all()?.neg()?)
    }
}

rossl_api::register! {
    kind: loss,
    name: "tcr",
    summary: "total coding rate -1/2 logdet(I + d/(B eps) Z^T Z), averaged over the views (EMP-SSL)",
    params: TcrParams,
    build: |p, _ctx| Ok(Box::new(TotalCodingRate::new(p.eps))),
}
