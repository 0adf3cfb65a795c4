//! `invariance`: minus the mean cosine similarity of each view's projection to the mean projection
//! of the image's views (EMP-SSL). The mean is not renormalised and not detached.

use crate::split_views;
use candle_core::{Tensor, D};
use rossl_api::components::SslLoss;
use rossl_api::registry::Params;
use rossl_api::Result;
use serde::{Deserialize, Serialize};

/// `invariance` has no parameters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InvarianceParams {}

impl Params for InvarianceParams {}

/// The invariance loss.
#[derive(Clone, Copy, Debug, Default)]
pub struct Invariance;

/// Cosine similarity along the last dimension, norms clamped at 1e-8 (PyTorch's
/// `F.cosine_similarity`).
pub fn cosine_similarity(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let eps = 1e-8;
    let na = a.sqr()?.sum(D::Minus1)?.sqrt()?.clamp(eps, f64::INFINITY)?;
    let nb = b.sqr()?.sum(D::Minus1)?.sqrt()?.clamp(eps, f64::INFINITY)?;
    let dot = a.broadcast_mul(b)?.sum(D::Minus1)?;
    Ok(dot.div(&na.broadcast_mul(&nb)?)?)
}

impl SslLoss for Invariance {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        let (z3, _, _) = split_views(z, views)?;
        let mean = z3.mean_keepdim(0)?;
        let cos = cosine_similarity(&z3, &mean.broadcast_as(z3.shape())?)?;
        Ok(cos.mean_all()?.neg()?)
    }
}

rossl_api::register! {
    kind: loss,
    name: "invariance",
    summary: "minus the mean cosine similarity of each view to the mean over the image's views (EMP-SSL)",
    params: InvarianceParams,
    build: |_p, _ctx| Ok(Box::new(Invariance)),
}
