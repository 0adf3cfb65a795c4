//! rossl's built-in SSL losses: `tcr` (total coding rate), `invariance` (cosine similarity to the
//! views' mean), `infonce` (SimCLR/SupCon contrastive loss), `barlow-twins` (cross-correlation to
//! the identity), `vicreg` (variance, invariance, covariance), `simsiam` (a predictor of its own,
//! stop-gradient targets), `byol` (a predictor, and the trainer's target network), `deacl` (a
//! student of a frozen teacher, stable under attack), and the supervised `cross-entropy` and `trades` (each with a
//! classifier head of its own). All take projections laid out view-major: rows
//! `v * B .. (v + 1) * B` are view `v` of the B images.
#![warn(missing_docs)]

pub mod barlow_twins;
pub mod byol;
pub mod cross_entropy;
pub mod deacl;
mod head;
pub mod infonce;
pub mod invariance;
mod predictor;
pub mod simsiam;
pub mod tcr;
pub mod trades;
pub mod vicreg;

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

/// The mean over every pair of views `v < w` of `pair(view v, view w)`, each view (B, D): how a
/// loss defined on two views (Barlow Twins, VICReg) takes any number of them. With two views it
/// is the two-view loss itself. `name` names the loss in the error for fewer than two views.
pub(crate) fn mean_over_view_pairs(
    z: &Tensor,
    views: usize,
    name: &str,
    pair: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    require_two_views(name, views)?;
    let (z3, _, _) = split_views(z, views)?;
    let mut total: Option<Tensor> = None;
    for v in 0..views {
        for w in v + 1..views {
            let value = pair(&z3.get(v)?, &z3.get(w)?)?;
            total = Some(match total {
                Some(t) => (t + value)?,
                None => value,
            });
        }
    }
    let pairs = (views * (views - 1) / 2) as f64;
    Ok((total.expect("at least one pair of views") / pairs)?)
}

/// An error naming loss `name` when it gets fewer than two views per image.
pub(crate) fn require_two_views(name: &str, views: usize) -> Result<()> {
    if views < 2 {
        return Err(Error::msg(format!(
            "the `{name}` loss compares views of each image and needs at least 2 views per \
             image, got {views}: set `views.<strategy>.views` (the strategy `views.name` \
             names, e.g. `views.multi-crop.views`) to 2 or more"
        )));
    }
    Ok(())
}
