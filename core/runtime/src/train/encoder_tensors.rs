//! The tensors of an encoder (and of a loss's own weights), by name, for checkpoints and weight
//! exchange.

use crate::ssl_loss::WeightedSslLoss;
use crate::{Error, Result};
use candle_core::{Tensor, Var};
use rossl_api::components::{BnBranch, Encoder};
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

/// Sets `encoder` from another model's tensors (a teacher's, an exported file's) as
/// [`restore_encoder`] does, except that an adversarial batch-norm branch they lack
/// (`X.adversarial.Y`) starts as a copy of its clean branch (`X.Y`): a dual-batch-norm student of
/// a single-batch-norm teacher.
pub fn init_encoder_from(encoder: &dyn Encoder, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let mut filled = tensors.clone();
    for (name, _) in encoder_tensors(encoder) {
        if filled.contains_key(&name) {
            continue;
        }
        if let Some(clean) = BnBranch::clean_twin(&name).and_then(|twin| tensors.get(&twin)) {
            filled.insert(name, clean.clone());
        }
    }
    restore_encoder(encoder, &filled)
}

/// The weights the loss terms own (heads), under their names.
pub fn loss_tensors(objective: &WeightedSslLoss) -> Vec<(String, Tensor)> {
    objective
        .parameters()
        .into_iter()
        .map(|p| (p.name, p.var.as_tensor().clone()))
        .collect()
}

/// Sets every parameter and buffer of `encoder` from `tensors`. A missing name or a shape that
/// differs is an error naming the tensor.
pub fn restore_encoder(encoder: &dyn Encoder, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let targets = encoder
        .parameters()
        .into_iter()
        .map(|p| (p.name, p.var))
        .chain(encoder.buffers().into_iter().map(|b| (b.name, b.var)));
    restore(targets, tensors, "the encoder")
}

/// Sets the weights the loss terms own from `tensors`, as [`restore_encoder`] does.
pub fn restore_loss(objective: &WeightedSslLoss, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let targets = objective.parameters().into_iter().map(|p| (p.name, p.var));
    restore(targets, tensors, "the loss")
}

fn restore(
    targets: impl Iterator<Item = (String, Var)>,
    tensors: &HashMap<String, Tensor>,
    owner: &str,
) -> Result<()> {
    for (name, var) in targets {
        let value = tensors
            .get(&name)
            .ok_or_else(|| Error::msg(format!("checkpoint has no tensor `{name}` for {owner}")))?;
        if value.dims() != var.dims() {
            return Err(Error::msg(format!(
                "checkpoint tensor `{name}` has shape {:?}, {owner} expects {:?}",
                value.dims(),
                var.dims()
            )));
        }
        var.set(&value.to_device(var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}
