//! `infonce`: the SimCLR contrastive loss as SupCon's `SupConLoss` computes it without labels
//! (`contrast_mode = "all"`): every view is an anchor, the other views of the same image are its
//! positives, every other projection is in the denominator:
//! l_a = -(T / T_b) mean_{p in P(a)} log( exp(z_a.z_p / T) / sum_{k != a} exp(z_a.z_k / T) ),
//! averaged over all anchors.

use candle_core::{Device, Tensor, D};
use rossl_api::components::SslLoss;
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};

rossl_api::params! {
    /// Parameters of `infonce`.
    pub struct InfoNceParams {
        /// Temperature T (SimCLR in the paper: 0.07).
        pub temperature: f64 = 0.07,
        /// Base temperature T_b (SupCon: 0.07).
        pub base_temperature: f64 = 0.07,
    }
}

impl Params for InfoNceParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !rossl_api::registry::positive(self.temperature) {
            return Err(ParamError::new("temperature", "must be > 0"));
        }
        if !rossl_api::registry::positive(self.base_temperature) {
            return Err(ParamError::new("base_temperature", "must be > 0"));
        }
        Ok(())
    }
}

/// The InfoNCE / SupCon loss.
#[derive(Clone, Debug)]
pub struct InfoNce {
    params: InfoNceParams,
}

impl InfoNce {
    /// The loss with these temperatures.
    pub fn new(params: InfoNceParams) -> Self {
        InfoNce { params }
    }
}

fn masks(rows: usize, b: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let mut not_self = vec![1.0f32; rows * rows];
    let mut positive = vec![0.0f32; rows * rows];
    for i in 0..rows {
        not_self[i * rows + i] = 0.0;
        for j in 0..rows {
            if i != j && i % b == j % b {
                positive[i * rows + j] = 1.0;
            }
        }
    }
    Ok((
        Tensor::from_vec(not_self, (rows, rows), device)?,
        Tensor::from_vec(positive, (rows, rows), device)?,
    ))
}

impl SslLoss for InfoNce {
    fn loss(&self, z: &Tensor, views: usize) -> Result<Tensor> {
        let (rows, _) = z.dims2()?;
        if views < 2 || rows % views != 0 {
            return Err(Error::msg(format!(
                "infonce needs at least 2 views and rows divisible by them; got {rows} rows, {views} views"
            )));
        }
        let b = rows / views;
        let t = self.params.temperature;
        let logits = (z.matmul(&z.t()?)? / t)?;
        let row_max = logits.max_keepdim(D::Minus1)?.detach();
        let logits = logits.broadcast_sub(&row_max)?;
        let (not_self, positive) = masks(rows, b, z.device())?;
        let not_self = not_self.to_dtype(z.dtype())?;
        let positive = positive.to_dtype(z.dtype())?;
        let denominator = logits
            .exp()?
            .mul(&not_self)?
            .sum_keepdim(D::Minus1)?
            .log()?;
        let log_prob = logits.broadcast_sub(&denominator)?;
        let mean_positive = (log_prob.mul(&positive)?.sum(D::Minus1)? / (views - 1) as f64)?;
        let scale = -(t / self.params.base_temperature);
        Ok((mean_positive.mean_all()? * scale)?)
    }
}

rossl_api::register! {
    kind: loss,
    name: "infonce",
    summary: "SimCLR/SupCon contrastive loss over the views (temperature, base temperature), every view an anchor",
    params: InfoNceParams,
    build: |p, _ctx| Ok(Box::new(InfoNce::new(p))),
}
