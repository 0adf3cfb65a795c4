//! rossl's built-in SSL losses: `tcr` (total coding rate), `invariance` (cosine similarity to the
//! views' mean) and `infonce` (SimCLR/SupCon contrastive loss). All take projections laid out
//! view-major: rows `v * B .. (v + 1) * B` are view `v` of the B images.
#![warn(missing_docs)]

pub mod infonce;
pub mod invariance;
pub mod tcr;

use candle_core::Tensor;
use rossl_api::{Error, Result};

/// (views, B, D) from (views * B, D), or an error when the rows do not split into `views`.
pub(crate) fn split_views(z: &Tensor, views: usize) -> Result<(Tensor, usize, usize)> {
    let (rows, dim) = z.dims2()?;
    if views == 0 || rows % views != 0 || rows == 0 {
        return Err(Error::msg(format!(
            "a loss got {rows} projections, which do not split into {views} views"
        )));
    }
    let b = rows / views;
    Ok((z.reshape((views, b, dim))?, b, dim))
}
