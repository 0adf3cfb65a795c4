//! Convolution on channels-last tensors: the fast CPU kernels of [`rossl_kernels::conv`] as a
//! differentiable custom operation, candle's own convolution on other devices.
//!
//! The backward pass computes the input gradient only when the input is tracked and the weight
//! gradient only when the weight is tracked: attack passes (weights detached) cost one GEMM, not
//! two.

use super::storage::{pair, Data};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rossl_api::Result;
use rossl_kernels::conv::{
    forward, input_grad, weight_grad, weights_from_kkco, weights_to_kkco, ConvShape,
};
use rossl_kernels::profile;

fn shape_of(x: &Layout, w: &Layout, stride: usize, pad: usize) -> candle_core::Result<ConvShape> {
    let (n, h, wd, c) = x.shape().dims4()?;
    let (o, wc, k, k2) = w.shape().dims4()?;
    if wc != c || k != k2 {
        return Err(candle_core::Error::Msg(format!(
            "conv2d: input (N,H,W,C) = {:?} does not fit weights (O,C,K,K) = {:?}",
            x.dims(),
            w.dims()
        )));
    }
    if h + 2 * pad < k || wd + 2 * pad < k || stride == 0 {
        return Err(candle_core::Error::Msg(format!(
            "conv2d: a {k}x{k} kernel does not fit a {h}x{wd} input"
        )));
    }
    Ok(ConvShape {
        n,
        h,
        w: wd,
        c,
        o,
        k,
        stride,
        pad,
    })
}

struct Conv2dNhwc {
    stride: usize,
    pad: usize,
}

impl CustomOp2 for Conv2dNhwc {
    fn name(&self) -> &'static str {
        "conv2d-nhwc"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = shape_of(l1, l2, self.stride, self.pad)?;
        let _t = profile::scope("conv.forward");
        let out = match pair("conv2d", (s1, l1), (s2, l2))? {
            (Data::F32(x), Data::F32(w)) => {
                CpuStorage::F32(forward(x, &weights_to_kkco(w, &s), &s))
            }
            (Data::F64(x), Data::F64(w)) => {
                CpuStorage::F64(forward(x, &weights_to_kkco(w, &s), &s))
            }
            _ => unreachable!("pair checks dtypes"),
        };
        Ok((out, Shape::from((s.n, s.oh(), s.ow(), s.o))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(
                w,
                &ConvInputGrad {
                    stride: self.stride,
                    pad: self.pad,
                    input: x.shape().clone(),
                },
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(
                &grad,
                &ConvWeightGrad {
                    stride: self.stride,
                    pad: self.pad,
                    weight: w.shape().clone(),
                },
            )?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// dx from (grad, w).
struct ConvInputGrad {
    stride: usize,
    pad: usize,
    input: Shape,
}

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "conv2d-nhwc-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = shape_of(
            &Layout::contiguous(self.input.clone()),
            l2,
            self.stride,
            self.pad,
        )?;
        let _t = profile::scope("conv.backward.input");
        let out = match pair("conv2d input gradient", (s1, l1), (s2, l2))? {
            (Data::F32(g), Data::F32(w)) => {
                CpuStorage::F32(input_grad(g, &weights_to_kkco(w, &s), &s))
            }
            (Data::F64(g), Data::F64(w)) => {
                CpuStorage::F64(input_grad(g, &weights_to_kkco(w, &s), &s))
            }
            _ => unreachable!("pair checks dtypes"),
        };
        Ok((out, self.input.clone()))
    }
}

/// dw from (x, grad).
struct ConvWeightGrad {
    stride: usize,
    pad: usize,
    weight: Shape,
}

impl CustomOp2 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d-nhwc-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = shape_of(
            l1,
            &Layout::contiguous(self.weight.clone()),
            self.stride,
            self.pad,
        )?;
        let _t = profile::scope("conv.backward.weight");
        let out = match pair("conv2d weight gradient", (s1, l1), (s2, l2))? {
            (Data::F32(x), Data::F32(g)) => {
                CpuStorage::F32(weights_from_kkco(&weight_grad(x, g, &s), &s))
            }
            (Data::F64(x), Data::F64(g)) => {
                CpuStorage::F64(weights_from_kkco(&weight_grad(x, g, &s), &s))
            }
            _ => unreachable!("pair checks dtypes"),
        };
        Ok((out, self.weight.clone()))
    }
}

/// `x` (N, H, W, C) convolved with `w` (O, C, K, K), stride and zero padding on both sides:
/// (N, OH, OW, O). Fast kernels on the CPU in f32 and f64; elsewhere, and in other precisions
/// (bf16), windows and one matrix product ([`super::conv2d_nhwc_gemm`]), whose gradients are
/// matrix products too (candle's own convolution would take the input gradient through its naive
/// CUDA transposed convolution).
pub fn conv2d_nhwc(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    if super::storage::fast_cpu(x) {
        Ok(x.contiguous()?.apply_op2(
            &w.contiguous()?,
            Conv2dNhwc {
                stride,
                pad: padding,
            },
        )?)
    } else {
        Ok(super::conv2d_nhwc_gemm(x, w, stride, padding)?)
    }
}

/// The same convolution with candle's own operations (NCHW convolution between permutes): the
/// reference the fast kernels and the GPU path are tested against.
pub fn conv2d_nhwc_reference(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let nchw = x.permute((0, 3, 1, 2))?.contiguous()?;
    Ok(nchw
        .conv2d(w, padding, stride, 1, 1)?
        .permute((0, 2, 3, 1))?
        .contiguous()?)
}
