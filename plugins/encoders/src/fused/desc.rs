//! Descriptions of the backbone's layers (weights and geometry) and access to their data.

use candle_core::{CpuStorage, Storage, Tensor};
use rossl_kernels::conv::ConvShape;

pub(super) type CResult<T> = candle_core::Result<T>;

pub(super) fn fail<T>(message: impl Into<String>) -> CResult<T> {
    Err(candle_core::Error::Msg(message.into()))
}

/// Runs `f` on the contiguous f32 CPU data of `t`.
pub(super) fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> CResult<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(f(&v[a..b])),
        _ => fail("fused backbone: parameters must be contiguous f32 CPU tensors"),
    }
}

pub(super) fn host(t: &Tensor) -> CResult<Vec<f32>> {
    with_data(t, <[f32]>::to_vec)
}

/// A convolution: its weight and geometry.
#[derive(Clone)]
pub(crate) struct ConvDesc {
    pub weight: Tensor,
    pub stride: usize,
    pub pad: usize,
}

impl ConvDesc {
    pub(super) fn shape(&self, n: usize, h: usize, w: usize, c: usize) -> CResult<ConvShape> {
        let (o, wc, k, _) = self.weight.dims4()?;
        if wc != c {
            return fail(format!(
                "fused backbone: a convolution expects {wc} channels, got {c}"
            ));
        }
        Ok(ConvShape {
            n,
            h,
            w,
            c,
            o,
            k,
            stride: self.stride,
            pad: self.pad,
        })
    }
}

/// A batch norm: scale, shift, running statistics.
#[derive(Clone)]
pub(crate) struct BnDesc {
    pub gamma: Tensor,
    pub beta: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub eps: f64,
}

/// A basic block.
#[derive(Clone)]
pub(crate) struct BlockDesc {
    pub conv1: ConvDesc,
    pub bn1: BnDesc,
    pub conv2: ConvDesc,
    pub bn2: BnDesc,
    pub down: Option<(ConvDesc, BnDesc)>,
}

/// The whole backbone.
#[derive(Clone)]
pub(crate) struct BackboneDesc {
    pub conv1: ConvDesc,
    pub bn1: BnDesc,
    pub blocks: Vec<BlockDesc>,
}

impl BackboneDesc {
    /// Every (conv, bn) pair in forward order, which is also the order of the flat gradient:
    /// conv weight, bn gamma, bn beta for the stem, then conv1, bn1, conv2, bn2, [downsample] of
    /// each block.
    pub fn layers(&self) -> Vec<(&ConvDesc, &BnDesc)> {
        let mut out = vec![(&self.conv1, &self.bn1)];
        for b in &self.blocks {
            out.push((&b.conv1, &b.bn1));
            out.push((&b.conv2, &b.bn2));
            if let Some((c, n)) = &b.down {
                out.push((c, n));
            }
        }
        out
    }

    /// Total number of values of the flat gradient.
    pub fn flat_len(&self) -> usize {
        self.layers()
            .iter()
            .map(|(c, b)| c.weight.elem_count() + b.gamma.elem_count() + b.beta.elem_count())
            .sum()
    }
}
