//! Batch normalisation over the last (channel) dimension, with PyTorch's running statistics.

use super::{parameter, weight, Init, Module};
use crate::ops::{batch_norm_eval, batch_norm_train};
use candle_core::{DType, Device, Tensor, Var};
use rossl_api::components::{Buffer, Mode, ParamRole, Parameter};
use rossl_api::Result;

/// PyTorch's `BatchNorm1d`/`BatchNorm2d` on channels-last tensors ((B, C) or (B, H, W, C)):
/// momentum 0.1, eps 1e-5; normalises with the biased batch variance and tracks the unbiased one.
/// Names: `NAME.weight`, `NAME.bias`, `NAME.running_mean`, `NAME.running_var`,
/// `NAME.num_batches_tracked`. Optionally fused with the ReLU that follows it.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    name: String,
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// A batch norm over `channels` features.
    pub fn new(name: &str, channels: usize, device: &Device) -> Result<Self> {
        let mut unused = rossl_api::rng::Rng::new(0);
        Ok(BatchNorm {
            name: name.to_string(),
            gamma: Init::Constant(1.0).var(channels, &mut unused, device)?,
            beta: Init::Constant(0.0).var(channels, &mut unused, device)?,
            running_mean: Init::Constant(0.0).var(channels, &mut unused, device)?,
            running_var: Init::Constant(1.0).var(channels, &mut unused, device)?,
            num_batches_tracked: Var::from_tensor(&Tensor::zeros((), DType::I64, device)?)?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// Normalises `x` over its last dimension, then applies ReLU if `relu`. Batch statistics in
    /// [`Mode::Train`] and [`Mode::Attack`]; running statistics (updated only in [`Mode::Train`])
    /// in [`Mode::Eval`].
    ///
    /// A half-precision `x` (bf16) is normalised in the precision of the layer's own variables
    /// (f32: statistics, normalisation and running statistics) and the output cast back to the
    /// precision of `x`, as mixed-precision training keeps batch norm.
    pub fn forward(&self, x: &Tensor, mode: Mode, relu: bool) -> Result<Tensor> {
        let own = self.gamma.dtype();
        if matches!(x.dtype(), DType::BF16 | DType::F16) && x.dtype() != own {
            let y = self.forward_same(&x.to_dtype(own)?, mode, relu)?;
            return Ok(y.to_dtype(x.dtype())?);
        }
        self.forward_same(x, mode, relu)
    }

    /// [`Self::forward`] in the precision of `x` (f32 or f64), the variables cast to it.
    fn forward_same(&self, x: &Tensor, mode: Mode, relu: bool) -> Result<Tensor> {
        let gamma = weight(&self.gamma, mode).to_dtype(x.dtype())?;
        let beta = weight(&self.beta, mode).to_dtype(x.dtype())?;
        if !mode.batch_statistics() {
            return batch_norm_eval(
                x,
                &self.running_mean.as_tensor().to_dtype(x.dtype())?,
                &self.running_var.as_tensor().to_dtype(x.dtype())?,
                &gamma,
                &beta,
                self.eps,
                relu,
            );
        }
        let (y, (mean, var)) = batch_norm_train(x, &gamma, &beta, self.eps, relu)?;
        if mode == Mode::Train {
            let count = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
            self.update_running(&mean, &var, count)?;
        }
        Ok(y)
    }

    /// The scale (gamma), shift (beta), running mean and running variance variables.
    pub fn vars(&self) -> [&Var; 4] {
        [
            &self.gamma,
            &self.beta,
            &self.running_mean,
            &self.running_var,
        ]
    }

    /// The epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// Folds a batch's mean and biased variance over `count` values per channel into the running
    /// statistics (momentum 0.1, unbiased variance), as a training-mode forward pass does.
    pub fn update_running(&self, mean: &[f64], var: &[f64], count: usize) -> Result<()> {
        let m = self.momentum;
        let unbiased = if count > 1 {
            count as f64 / (count as f64 - 1.0)
        } else {
            1.0
        };
        let device = self.running_mean.device();
        let dtype = self.running_mean.dtype();
        let rm: Vec<f64> = self
            .running_mean
            .as_tensor()
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?
            .iter()
            .zip(mean)
            .map(|(r, b)| (1.0 - m) * r + m * b)
            .collect();
        let rv: Vec<f64> = self
            .running_var
            .as_tensor()
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?
            .iter()
            .zip(var)
            .map(|(r, b)| (1.0 - m) * r + m * b * unbiased)
            .collect();
        let n = rm.len();
        self.running_mean
            .set(&Tensor::from_vec(rm, n, device)?.to_dtype(dtype)?)?;
        self.running_var
            .set(&Tensor::from_vec(rv, n, device)?.to_dtype(dtype)?)?;
        let count = (self.num_batches_tracked.as_tensor() + 1.0)?;
        self.num_batches_tracked.set(&count)?;
        Ok(())
    }
}

impl Module for BatchNorm {
    fn collect_parameters(&self, out: &mut Vec<Parameter>) {
        out.push(parameter(
            &format!("{}.weight", self.name),
            &self.gamma,
            ParamRole::BiasOrNorm,
        ));
        out.push(parameter(
            &format!("{}.bias", self.name),
            &self.beta,
            ParamRole::BiasOrNorm,
        ));
    }

    fn collect_buffers(&self, out: &mut Vec<Buffer>) {
        for (suffix, var) in [
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
            ("num_batches_tracked", &self.num_batches_tracked),
        ] {
            out.push(Buffer {
                name: format!("{}.{suffix}", self.name),
                var: var.clone(),
            });
        }
    }
}
