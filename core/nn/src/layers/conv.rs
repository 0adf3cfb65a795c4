//! 2-D convolution without bias (as in ResNets), on channels-last tensors.

use super::{parameter, weight, Init, Module};
use candle_core::{Device, Tensor, Var};
use rossl_api::components::{Mode, ParamRole, Parameter};
use rossl_api::rng::Rng;
use rossl_api::Result;

/// A square-kernel 2-D convolution without bias; weight (out, in, k, k) named `NAME.weight`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    name: String,
    weight: Var,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// A convolution `in_channels -> out_channels` with a `kernel` x `kernel` window.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        init: Init,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Self> {
        let weight = init.var((out_channels, in_channels, kernel, kernel), rng, device)?;
        Ok(Conv2d {
            name: name.to_string(),
            weight,
            stride,
            padding,
        })
    }

    /// The weight variable (out, in, k, k).
    pub fn weight_var(&self) -> &Var {
        &self.weight
    }

    /// (stride, padding).
    pub fn geometry(&self) -> (usize, usize) {
        (self.stride, self.padding)
    }

    /// Channels-last (B, H, W, in) -> (B, H', W', out), in the precision of `x`: the weight is
    /// cast to it (a bf16 input computes in bf16; the gradient reaches the weight in its own
    /// precision through the cast).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let w = weight(&self.weight, mode).to_dtype(x.dtype())?;
        crate::ops::conv2d_nhwc(x, &w, self.stride, self.padding)
    }
}

impl Module for Conv2d {
    fn collect_parameters(&self, out: &mut Vec<Parameter>) {
        out.push(parameter(
            &format!("{}.weight", self.name),
            &self.weight,
            ParamRole::Weight,
        ));
    }
}
