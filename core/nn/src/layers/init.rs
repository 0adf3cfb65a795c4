//! Seeded initialisation matching PyTorch's.

use candle_core::{Device, Shape, Tensor, Var};
use rossl_api::rng::Rng;
use rossl_api::Result;

/// How a weight is initialised.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
    /// Uniform in [-bound, bound].
    Uniform(f64),
    /// A constant.
    Constant(f64),
}

impl Init {
    /// A variable of `shape` on `device`, drawn from `rng`.
    pub fn var(self, shape: impl Into<Shape>, rng: &mut Rng, device: &Device) -> Result<Var> {
        let shape = shape.into();
        let n = shape.elem_count();
        let values: Vec<f32> = match self {
            Init::Normal(std) => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
            Init::Uniform(b) => (0..n).map(|_| rng.uniform_range(-b, b) as f32).collect(),
            Init::Constant(c) => vec![c as f32; n],
        };
        Ok(Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?)
    }
}

/// torchvision's ResNet convolution init: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
/// std = sqrt(2 / (out_channels * kernel area)).
pub fn kaiming_normal_fan_out(out_channels: usize, kernel_area: usize) -> Init {
    Init::Normal((2.0 / (out_channels * kernel_area) as f64).sqrt())
}

/// PyTorch's default for `Linear` and `Conv2d` (`kaiming_uniform_(a=sqrt(5))`) and their biases:
/// uniform in +-1/sqrt(fan_in).
pub fn uniform_fan_in(fan_in: usize) -> Init {
    Init::Uniform(1.0 / (fan_in as f64).sqrt())
}
