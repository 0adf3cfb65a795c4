//! The convolution of the non-CPU devices as one matrix product over windows cut by slicing
//! (im2col in the channels-last layout): the forward pass, the input gradient and the weight
//! gradient are then matrix products (cuBLAS on a GPU) and copies. candle differentiates its own
//! `conv2d` with respect to the input through `conv_transpose2d`, whose CUDA kernel is a naive
//! direct loop; every PGD, APGD, free-training and evaluation step takes that gradient through
//! every convolution, so the GPU path never goes through it. No permute of the activations either:
//! windows are cut from the (N, H, W, C) tensor as it is, and only the small weight is reordered.

use candle_core::{Result, Tensor};

/// `x` (N, H, W, C) convolved with `w` (O, C, K, K), stride and zero padding on both sides:
/// (N, OH, OW, O), as `K * K` strided windows of `x` side by side, times the weight as a
/// (K K C, O) matrix. The same function as `conv2d_nhwc_reference` (candle's convolution); used on
/// every device but the CPU, and testable on the CPU.
pub fn conv2d_nhwc_gemm(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (n, h, width, c) = x.dims4()?;
    let (o, wc, k, kw) = w.dims4()?;
    if wc != c || kw != k || stride == 0 || h + 2 * padding < k || width + 2 * padding < k {
        candle_core::bail!(
            "conv2d_nhwc_gemm: input (N, H, W, C) = {:?} and weight (O, C, K, K) = {:?} with stride {stride} and padding {padding} do not fit",
            x.dims(),
            w.dims()
        );
    }
    let (oh, ow) = (
        (h + 2 * padding - k) / stride + 1,
        (width + 2 * padding - k) / stride + 1,
    );
    // extra zeros at the bottom and right, so that every window offset can take `stride * out`
    // rows (columns) and keep every `stride`-th one
    let extra = |size: usize, out: usize| (k - 1 + stride * out).saturating_sub(size + 2 * padding);
    let padded = x
        .pad_with_zeros(1, padding, padding + extra(h, oh))?
        .pad_with_zeros(2, padding, padding + extra(width, ow))?;
    let mut windows = Vec::with_capacity(k * k);
    for i in 0..k {
        let rows = every_nth(&padded.narrow(1, i, stride * oh)?, 1, stride)?;
        for j in 0..k {
            windows.push(every_nth(&rows.narrow(2, j, stride * ow)?, 2, stride)?);
        }
    }
    // columns in (i, j, c) order, matching the weight reordered to (K, K, C, O)
    let patches = Tensor::cat(&windows, 3)?.reshape((n * oh * ow, k * k * c))?;
    let weight = w.permute((2, 3, 1, 0))?.reshape((k * k * c, o))?;
    patches.matmul(&weight)?.reshape((n, oh, ow, o))
}

/// Every `step`-th index of dimension `dim` (of size a multiple of `step`), from the first.
fn every_nth(t: &Tensor, dim: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return Ok(t.clone());
    }
    let mut split: Vec<usize> = t.dims().to_vec();
    let size = split[dim];
    split[dim] = size / step;
    split.insert(dim + 1, step);
    t.reshape(split)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}
