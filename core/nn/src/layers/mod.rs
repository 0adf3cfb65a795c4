//! Layers with PyTorch's parameter names and initialisations, aware of the encoder [`Mode`]:
//! weights are detached outside training mode, so that attack and evaluation passes give
//! gradients to the input only, and batch normalisation updates its running statistics only in
//! training mode.
//!
//! [`Mode`]: rossl_api::components::Mode

mod batch_norm;
mod conv;
mod init;
mod linear;

pub use batch_norm::BatchNorm;
pub use conv::Conv2d;
pub use init::{kaiming_normal_fan_out, uniform_fan_in, Init};
pub use linear::Linear;

use candle_core::{Tensor, Var};
use rossl_api::components::{Buffer, Mode, ParamRole, Parameter};

/// The value of a parameter as the mode needs it: tracked in training mode, detached otherwise.
pub fn weight(var: &Var, mode: Mode) -> Tensor {
    if mode.tracks_weights() {
        var.as_tensor().clone()
    } else {
        var.as_tensor().detach()
    }
}

/// Something with parameters and buffers.
pub trait Module {
    /// Appends the trainable parameters, in a stable order.
    fn collect_parameters(&self, out: &mut Vec<Parameter>);
    /// Appends the buffers (running statistics), in a stable order.
    fn collect_buffers(&self, _out: &mut Vec<Buffer>) {}
}

pub(crate) fn parameter(name: &str, var: &Var, role: ParamRole) -> Parameter {
    Parameter {
        name: name.to_string(),
        var: var.clone(),
        role,
    }
}

/// `x / max(|x|_2, 1e-12)` along the last dimension (PyTorch's `F.normalize`). A half-precision
/// `x` (bf16) is widened to f32 first, and the result is f32: the norm's sum is a reduction.
pub fn l2_normalize(x: &Tensor) -> rossl_api::Result<Tensor> {
    let x = &widen(x)?;
    let norm = x.sqr()?.sum_keepdim(candle_core::D::Minus1)?.sqrt()?;
    let norm = norm.clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

/// `x` in f32 when it is in a half precision (bf16, f16); otherwise `x` itself.
pub fn widen(x: &Tensor) -> rossl_api::Result<Tensor> {
    Ok(match x.dtype() {
        candle_core::DType::BF16 | candle_core::DType::F16 => {
            x.to_dtype(candle_core::DType::F32)?
        }
        _ => x.clone(),
    })
}
