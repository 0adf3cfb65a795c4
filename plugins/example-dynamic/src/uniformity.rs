//! `uniformity`: the uniformity loss of Wang and Isola, "Understanding Contrastive Representation
//! Learning through Alignment and Uniformity on the Hypersphere" (ICML 2020). For each view, with
//! the rows L2-normalised,
//!
//! `L_uniform = log( mean over pairs i != j of exp(-t * ||z_i - z_j||^2) )`,
//!
//! averaged over the views; the log-mean-exp subtracts its largest term, so a large `t` neither
//! underflows to `-inf` nor loses the gradient. An optional `alignment` weight adds the paper's
//! alignment term, the mean of `||z_i^v - z_i^w||^2` (alpha = 2) over the pairs of views `v < w`.

use candle_core::Tensor;
use rossl_api::components::SslLoss;
use rossl_api::params::finite_positive;
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};

rossl_api::params! {
    /// Parameters of `uniformity` (defaults: the paper's t = 2, no alignment term).
    pub struct UniformityParams {
        /// Temperature of the Gaussian potential `exp(-t * ||z_i - z_j||^2)`, > 0.
        pub t: f64 = 2.0,
        /// Weight of the alignment term (mean squared distance between the normalised views of
        /// each image), >= 0; 0 leaves it out.
        pub alignment: f64 = 0.0,
    }
}

impl Params for UniformityParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        finite_positive("t", self.t)?;
        rossl_api::params::radius("alignment", self.alignment)
    }
}

/// The uniformity loss (with the optional alignment term).
pub struct Uniformity {
    params: UniformityParams,
}

/// Rows divided by their L2 norm (clamped at 1e-12, as PyTorch's `F.normalize`).
fn normalise_rows(z: &Tensor) -> Result<Tensor> {
    let norm = z
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(z.broadcast_div(&norm)?)
}

/// Flat indices of the off-diagonal entries of a (b, b) matrix.
fn off_diagonal(b: usize, device: &candle_core::Device) -> Result<Tensor> {
    let idx: Vec<u32> = (0..b * b)
        .filter(|k| k / b != k % b)
        .map(|k| k as u32)
        .collect();
    Ok(Tensor::from_vec(idx, b * (b - 1), device)?)
}

/// `log(mean over i != j of exp(-t * ||z_i - z_j||^2))` for one view's normalised rows (b, D).
fn log_mean_exp_potential(z: &Tensor, t: f64, pairs: &Tensor) -> Result<Tensor> {
    let b = z.dim(0)?;
    let sq = z.sqr()?.sum_keepdim(1)?;
    let gram = z.matmul(&z.t()?)?;
    // ||z_i||^2 + ||z_j||^2 - 2 z_i . z_j
    let dist = (sq.broadcast_add(&sq.t()?)? - (gram * 2.0)?)?;
    let a = (dist.reshape(b * b)?.index_select(pairs, 0)? * -t)?;
    let max = a.max_keepdim(0)?.detach();
    let lme = a.broadcast_sub(&max)?.exp()?.mean_all()?.log()?;
    Ok((lme + max.squeeze(0)?)?)
}

impl SslLoss for Uniformity {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        let (rows, _) = z.dims2()?;
        if views == 0 || rows % views != 0 || rows / views < 2 {
            return Err(Error::msg(format!(
                "uniformity needs at least 2 images per view (it compares distinct images); \
                 got {rows} rows for {views} views"
            )));
        }
        let p = &self.params;
        if p.alignment > 0.0 && views < 2 {
            return Err(Error::msg(
                "uniformity's alignment term needs at least 2 views; got 1 (set alignment = 0)",
            ));
        }
        let b = rows / views;
        let z = normalise_rows(z)?;
        let view = |v: usize| z.narrow(0, v * b, b);
        let pairs = off_diagonal(b, z.device())?;
        let mut uniform = Vec::with_capacity(views);
        for v in 0..views {
            uniform.push(log_mean_exp_potential(&view(v)?, p.t, &pairs)?);
        }
        let loss = Tensor::stack(&uniform, 0)?.mean_all()?;
        if p.alignment == 0.0 {
            return Ok(loss);
        }
        let mut align = Vec::new();
        for v in 0..views {
            for w in v + 1..views {
                let d = (view(v)? - view(w)?)?.sqr()?.sum(1)?;
                align.push(d.mean_all()?);
            }
        }
        let align = Tensor::stack(&align, 0)?.mean_all()?;
        Ok((loss + (align * p.alignment)?)?)
    }
}

rossl_api::register! {
    kind: loss,
    name: "uniformity",
    summary: "(example dynamic plugin) Wang & Isola's uniformity: log of the mean Gaussian potential between normalised rows, optional alignment",
    params: UniformityParams,
    build: |p, _ctx| Ok(Box::new(Uniformity { params: p })),
}
