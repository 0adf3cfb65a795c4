//! Self-supervised losses over a set of views.

use crate::Result;
use candle_core::Tensor;

/// A self-supervised loss over the projections of several views of each image.
pub trait SslLoss: Send + Sync {
    /// The loss (a scalar tensor) for projections `z` of shape (views * B, D), laid out
    /// view-major: rows `v * B .. (v + 1) * B` are view `v` of the B images.
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor>;
}
