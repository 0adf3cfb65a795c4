//! Mixed precision: an encoder whose training passes compute in bf16 over f32 master weights.
//!
//! [`MixedPrecision`] casts the images of a training pass ([`Mode::Train`], [`Mode::Attack`]) to
//! bf16 and hands them to the encoder it wraps; rossl's layers cast their f32 weights to the
//! precision of their input (convolutions and linear layers compute in bf16, batch norm in f32 and
//! hands bf16 on) and the embeddings come back in f32, so that losses, the log-determinant and
//! every reduction after the encoder stay f32 (or f64). The weights stay f32 variables: the
//! optimiser updates them, and their gradients reach them in f32 through the casts.
//! Evaluation passes ([`Mode::Eval`]) compute in f32, so that a run's accuracies measure its
//! weights, not the precision of the passes.

use crate::layers::widen;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use rossl_api::components::{BnBranch, Buffer, Embedding, Encoder, Mode, Parameter};
use rossl_api::Result;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The precision of the encoder's training passes (the top-level `precision` key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// The encoder's forward and backward in bf16, over f32 master weights.
    Bf16,
}

impl Precision {
    /// `true` for the default, f32.
    pub fn is_default(&self) -> bool {
        *self == Precision::F32
    }

    /// The dtype of the encoder's training passes.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }

    /// `encoder` computing its training passes in this precision: itself for f32, wrapped in a
    /// [`MixedPrecision`] otherwise.
    pub fn wrap(self, encoder: Box<dyn Encoder>) -> Box<dyn Encoder> {
        match self {
            Precision::F32 => encoder,
            Precision::Bf16 => Box::new(MixedPrecision::new(encoder, DType::BF16)),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!(
                "`{other}` is not a precision: use \"f32\" or \"bf16\""
            )),
        }
    }
}

/// An encoder whose training passes compute in a lower precision (see the module's
/// documentation); parameters, buffers and evaluation passes are the wrapped encoder's.
pub struct MixedPrecision {
    inner: Box<dyn Encoder>,
    compute: DType,
}

impl MixedPrecision {
    /// `inner` with its training passes in `compute` (bf16).
    pub fn new(inner: Box<dyn Encoder>, compute: DType) -> Self {
        MixedPrecision { inner, compute }
    }

    /// The images as the pass computes them: in the lower precision, except in evaluation.
    fn input(&self, images: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(if mode == Mode::Eval {
            images.clone()
        } else {
            images.to_dtype(self.compute)?
        })
    }
}

impl Encoder for MixedPrecision {
    fn forward(&self, images: &Tensor, mode: Mode) -> Result<Embedding> {
        let e = self.inner.forward(&self.input(images, mode)?, mode)?;
        Ok(Embedding {
            feature: widen(&e.feature)?,
            projection: widen(&e.projection)?,
        })
    }

    fn features(&self, images: &Tensor, mode: Mode) -> Result<Tensor> {
        widen(&self.inner.features(&self.input(images, mode)?, mode)?)
    }

    fn feature_dim(&self) -> usize {
        self.inner.feature_dim()
    }

    fn projection_dim(&self) -> usize {
        self.inner.projection_dim()
    }

    fn parameters(&self) -> Vec<Parameter> {
        self.inner.parameters()
    }

    fn buffers(&self) -> Vec<Buffer> {
        self.inner.buffers()
    }

    fn route_gradients(&self, grads: &mut GradStore) -> Result<()> {
        self.inner.route_gradients(grads)
    }

    fn dual_batch_norm(&self) -> bool {
        self.inner.dual_batch_norm()
    }

    fn select_branch(&self, branch: BnBranch) {
        self.inner.select_branch(branch)
    }
}
