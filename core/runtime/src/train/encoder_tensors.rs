//! The tensors of an encoder, by name, for checkpoints and weight exchange.

use crate::{Error, Result};
use candle_core::Tensor;
use rossl_api::components::Encoder;
use std::collections::HashMap;

/// Every parameter and buffer of `encoder` under its PyTorch name.
pub fn encoder_tensors(encoder: &dyn Encoder) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = encoder
        .parameters()
        .into_iter()
        .map(|p| (p.name, p.var.as_tensor().clone()))
        .collect();
    out.extend(
        encoder
            .buffers()
            .into_iter()
            .map(|b| (b.name, b.var.as_tensor().clone())),
    );
    out
}

/// Sets every parameter and buffer of `encoder` from `tensors`. A missing name or a shape that
/// differs is an error naming the tensor.
pub fn restore_encoder(encoder: &dyn Encoder, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let targets = encoder
        .parameters()
        .into_iter()
        .map(|p| (p.name, p.var))
        .chain(encoder.buffers().into_iter().map(|b| (b.name, b.var)));
    for (name, var) in targets {
        let value = tensors.get(&name).ok_or_else(|| {
            Error::msg(format!("checkpoint has no tensor `{name}` for the encoder"))
        })?;
        if value.dims() != var.dims() {
            return Err(Error::msg(format!(
                "checkpoint tensor `{name}` has shape {:?}, the encoder expects {:?}",
                value.dims(),
                var.dims()
            )));
        }
        var.set(&value.to_device(var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}
