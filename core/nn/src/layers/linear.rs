//! Fully connected layer.

use super::{parameter, uniform_fan_in, weight, Module};
use candle_core::{Device, Tensor, Var};
use rossl_api::components::{Mode, ParamRole, Parameter};
use rossl_api::rng::Rng;
use rossl_api::Result;

/// `y = x W^T + b`, weight (out, in) named `NAME.weight`, bias `NAME.bias`; PyTorch's default
/// initialisation.
#[derive(Clone, Debug)]
pub struct Linear {
    name: String,
    weight: Var,
    bias: Var,
}

impl Linear {
    /// A layer `in_features -> out_features`.
    pub fn new(
        name: &str,
        in_features: usize,
        out_features: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Self> {
        let init = uniform_fan_in(in_features);
        let weight = init.var((out_features, in_features), rng, device)?;
        let bias = init.var(out_features, rng, device)?;
        Ok(Linear {
            name: name.to_string(),
            weight,
            bias,
        })
    }

    /// (B, in) -> (B, out), in the precision of `x`: weight and bias are cast to it (a bf16
    /// input computes in bf16; the gradients reach them in their own precision through the cast).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let w = weight(&self.weight, mode).to_dtype(x.dtype())?;
        let b = weight(&self.bias, mode).to_dtype(x.dtype())?;
        crate::ops::dense(x, &w, &b)
    }

    /// The weight variable.
    pub fn weight_var(&self) -> &Var {
        &self.weight
    }

    /// The bias variable.
    pub fn bias_var(&self) -> &Var {
        &self.bias
    }
}

impl Module for Linear {
    fn collect_parameters(&self, out: &mut Vec<Parameter>) {
        out.push(parameter(
            &format!("{}.weight", self.name),
            &self.weight,
            ParamRole::Weight,
        ));
        out.push(parameter(
            &format!("{}.bias", self.name),
            &self.bias,
            ParamRole::BiasOrNorm,
        ));
    }
}
