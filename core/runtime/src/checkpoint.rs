//! Checkpoints: safetensors files with the resolved configuration and the training state embedded
//! as metadata, written atomically (a temporary file, then a rename), so that an interruption never
//! leaves a half-written checkpoint in place of the last good one.

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Metadata key of the resolved configuration (TOML).
pub const CONFIG_KEY: &str = "rossl.config";
/// Metadata key of the training state (JSON of [`TrainingState`]).
pub const STATE_KEY: &str = "rossl.state";

/// Where training stands at a checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainingState {
    /// Passes over the data completed.
    pub epochs_done: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Encoder forward passes so far.
    pub forward_passes: u64,
    /// Encoder backward passes so far.
    pub backward_passes: u64,
    /// Wall-clock seconds spent training so far.
    pub train_seconds: f64,
    /// The part of `train_seconds` spent waiting for batches.
    #[serde(default)]
    pub loader_wait_seconds: f64,
    /// `true` once every epoch is done.
    pub complete: bool,
    /// The rossl version that wrote it.
    pub rossl_version: String,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// Tensors by name (encoder parameters and buffers under their PyTorch names, optimiser state
    /// under `momentum.NAME`, the free-training perturbation under `free.delta`).
    pub tensors: HashMap<String, Tensor>,
    /// The resolved configuration it was trained with.
    pub config: String,
    /// The training state.
    pub state: TrainingState,
}

/// Writes `tensors` with `config` and `state` to `path` atomically.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    config: &str,
    state: &TrainingState,
) -> Result<()> {
    let mut metadata = HashMap::new();
    metadata.insert(CONFIG_KEY.to_string(), config.to_string());
    metadata.insert(
        STATE_KEY.to_string(),
        serde_json::to_string(state).map_err(|e| Error::msg(format!("checkpoint state: {e}")))?,
    );
    let host: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(
        host.iter().map(|(n, t)| (n.as_str(), t)),
        Some(metadata),
        &tmp,
    )
    .map_err(|e| Error::msg(format!("writing checkpoint {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::io(
            format!("moving the checkpoint into place at {}", path.display()),
            e,
        )
    })
}

/// Reads a checkpoint written by [`save`], its tensors on `device`. Errors name the file.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::data(
                path,
                "no checkpoint here (was the run started, and did it finish an epoch?)",
            )
        } else {
            Error::data(path, format!("cannot read: {e}"))
        }
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::data(path, format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let config = meta
        .get(CONFIG_KEY)
        .cloned()
        .ok_or_else(|| Error::data(path, "not a rossl checkpoint: no embedded configuration"))?;
    let state: TrainingState = meta
        .get(STATE_KEY)
        .map(|s| serde_json::from_str(s))
        .transpose()
        .map_err(|e| Error::data(path, format!("corrupt training state: {e}")))?
        .unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| Error::data(path, format!("corrupt tensors: {e}")))?;
    Ok(Checkpoint {
        tensors,
        config,
        state,
    })
}
