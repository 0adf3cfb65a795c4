//! The ResNet backbone as one custom operation on the CPU.
//!
//! candle's autograd allocates and zero-fills a gradient buffer for every node and adds into it,
//! and runs ReLU and residual additions as several passes each; for a ResNet that overhead costs
//! as much as a third of a training step on two cores. Here the whole backbone (stem, basic
//! blocks, global pooling) is a single operation with a hand-written backward pass over the fast
//! kernels of `rossl_kernels`: channels-last im2col + GEMM convolutions, fused batch norm +
//! ReLU, fused residual add + ReLU.
//!
//! Gradients with respect to the weights flow through a flat "gradient sink" variable (the
//! operation's second input); [`crate::resnet::ResNetEncoder`] splits it into per-parameter
//! gradients after the backward pass (`Encoder::route_gradients`). Attack and evaluation passes
//! (weights detached) skip every weight-gradient product. The layered implementation (candle
//! operations per layer) remains the path on GPUs and the reference the tests compare against.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Storage, Tensor};
use rossl_kernels::batch_norm::{affine, backward_affine, backward_train, moments};
use rossl_kernels::conv::{
    forward as conv_forward, input_grad, weight_grad, weights_from_kkco, weights_to_kkco, ConvShape,
};
use rossl_kernels::elementwise::{
    add_into, add_relu, global_average_pool, global_average_pool_backward, nchw_to_nhwc,
    nhwc_to_nchw, relu_mask,
};
use rossl_kernels::profile;
use std::sync::{Arc, Mutex};

type CResult<T> = candle_core::Result<T>;

fn fail<T>(message: impl Into<String>) -> CResult<T> {
    Err(candle_core::Error::Msg(message.into()))
}

/// Runs `f` on the contiguous f32 CPU data of `t`.
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> CResult<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(f(&v[a..b])),
        _ => fail("fused backbone: parameters must be contiguous f32 CPU tensors"),
    }
}

fn host(t: &Tensor) -> CResult<Vec<f32>> {
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
    fn shape(&self, n: usize, h: usize, w: usize, c: usize) -> CResult<ConvShape> {
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

/// What a batch norm saved for its backward pass.
struct SavedBn {
    /// Batch statistics: mean, 1 / std, gamma. Frozen statistics: the per-channel scale.
    mean: Vec<f64>,
    invstd: Vec<f64>,
    gamma: Vec<f32>,
    scale: Vec<f32>,
    batch: bool,
    var: Vec<f64>,
}

fn bn_forward(
    x: &[f32],
    c: usize,
    bn: &BnDesc,
    batch: bool,
    relu: bool,
) -> CResult<(Vec<f32>, SavedBn)> {
    let _t = profile::scope("batchnorm.forward");
    let gamma = host(&bn.gamma)?;
    let beta = host(&bn.beta)?;
    let (mean, var) = if batch {
        moments(x, c)
    } else {
        let m = host(&bn.running_mean)?;
        let v = host(&bn.running_var)?;
        (
            m.iter().map(|&x| f64::from(x)).collect(),
            v.iter().map(|&x| f64::from(x)).collect(),
        )
    };
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + bn.eps).sqrt()).collect();
    let scale: Vec<f32> = (0..c)
        .map(|j| (f64::from(gamma[j]) * invstd[j]) as f32)
        .collect();
    let shift: Vec<f32> = (0..c)
        .map(|j| (f64::from(beta[j]) - mean[j] * f64::from(scale[j])) as f32)
        .collect();
    let y = affine(x, c, &scale, &shift, relu);
    Ok((
        y,
        SavedBn {
            mean,
            invstd,
            gamma,
            scale,
            batch,
            var,
        },
    ))
}

/// dx (and dgamma, dbeta) of a batch norm whose input was `x` and output `y`.
fn bn_backward(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    c: usize,
    saved: &SavedBn,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let _t = profile::scope("batchnorm.backward");
    if saved.batch {
        backward_train(x, y, dy, c, &saved.mean, &saved.invstd, &saved.gamma, relu)
    } else {
        let dx = backward_affine(y, dy, c, &saved.scale, relu);
        (dx, vec![0.0; c], vec![0.0; c])
    }
}

struct SavedConv {
    shape: ConvShape,
    kkco: Vec<f32>,
}

fn conv_run(
    desc: &ConvDesc,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
) -> CResult<(Vec<f32>, SavedConv)> {
    let shape = desc.shape(n, h, w, c)?;
    let kkco = with_data(&desc.weight, |wv| weights_to_kkco(wv, &shape))?;
    let _t = profile::scope("conv.forward");
    let z = conv_forward(x, &kkco, &shape);
    Ok((z, SavedConv { shape, kkco }))
}

struct SavedBlock {
    conv1: SavedConv,
    z1: Vec<f32>,
    bn1: SavedBn,
    a1: Vec<f32>,
    conv2: SavedConv,
    z2: Vec<f32>,
    bn2: SavedBn,
    down: Option<(SavedConv, Vec<f32>, SavedBn)>,
    y: Vec<f32>,
}

/// Everything the backward pass needs.
struct Saved {
    dims: (usize, usize, usize, usize),
    x: Vec<f32>,
    stem: SavedConv,
    stem_z: Vec<f32>,
    stem_bn: SavedBn,
    stem_a: Vec<f32>,
    blocks: Vec<SavedBlock>,
    last: (usize, usize),
}

impl Saved {
    /// Batch means and variances of every batch norm in forward order (for running statistics).
    fn moments(&self) -> Vec<(Vec<f64>, Vec<f64>)> {
        let mut out = vec![(self.stem_bn.mean.clone(), self.stem_bn.var.clone())];
        for b in &self.blocks {
            out.push((b.bn1.mean.clone(), b.bn1.var.clone()));
            out.push((b.bn2.mean.clone(), b.bn2.var.clone()));
            if let Some((_, _, bn)) = &b.down {
                out.push((bn.mean.clone(), bn.var.clone()));
            }
        }
        out
    }
}

/// Batch statistics of the last forward pass, per batch norm in forward order, with the number
/// of values each was computed over.
pub(crate) type BatchMoments = Vec<(Vec<f64>, Vec<f64>, usize)>;

/// The forward pass: returns the pooled features (N, C) and what backward needs.
fn forward(
    desc: &BackboneDesc,
    x: &[f32],
    dims: (usize, usize, usize, usize),
    batch: bool,
) -> CResult<(Vec<f32>, Saved)> {
    let (n, c, h, w) = dims;
    let x = nchw_to_nhwc(x, dims);
    let (stem_z, stem) = conv_run(&desc.conv1, &x, n, h, w, c)?;
    let (mut hh, mut ww, mut cc) = (stem.shape.oh(), stem.shape.ow(), stem.shape.o);
    let (stem_a, stem_bn) = bn_forward(&stem_z, cc, &desc.bn1, batch, true)?;
    let mut blocks: Vec<SavedBlock> = Vec::with_capacity(desc.blocks.len());
    for block in &desc.blocks {
        let input: &[f32] = blocks.last().map_or(&stem_a, |b| &b.y);
        let (z1, conv1) = conv_run(&block.conv1, input, n, hh, ww, cc)?;
        let (oh, ow, oc) = (conv1.shape.oh(), conv1.shape.ow(), conv1.shape.o);
        let (a1, bn1) = bn_forward(&z1, oc, &block.bn1, batch, true)?;
        let (z2, conv2) = conv_run(&block.conv2, &a1, n, oh, ow, oc)?;
        let (b2, bn2) = bn_forward(&z2, oc, &block.bn2, batch, false)?;
        let (y, down) = match &block.down {
            Some((conv, bn)) => {
                let (zd, sconv) = conv_run(conv, input, n, hh, ww, cc)?;
                let (bd, sbn) = bn_forward(&zd, oc, bn, batch, false)?;
                (add_relu(&b2, &bd), Some((sconv, zd, sbn)))
            }
            None => (add_relu(&b2, input), None),
        };
        blocks.push(SavedBlock {
            conv1,
            z1,
            bn1,
            a1,
            conv2,
            z2,
            bn2,
            down,
            y,
        });
        (hh, ww, cc) = (oh, ow, oc);
    }
    let last: &[f32] = blocks.last().map_or(&stem_a, |b| &b.y);
    let pooled = global_average_pool(last, n, hh * ww, cc);
    Ok((
        pooled,
        Saved {
            dims,
            x,
            stem,
            stem_z,
            stem_bn,
            stem_a,
            blocks,
            last: (hh * ww, cc),
        },
    ))
}

fn timed_input_grad(dz: &[f32], conv: &SavedConv) -> Vec<f32> {
    let _t = profile::scope("conv.backward.input");
    input_grad(dz, &conv.kkco, &conv.shape)
}

fn timed_weight_grad(x: &[f32], dz: &[f32], conv: &SavedConv) -> Vec<f32> {
    let _t = profile::scope("conv.backward.weight");
    weights_from_kkco(&weight_grad(x, dz, &conv.shape), &conv.shape)
}

/// The backward pass: (dx in NCHW if asked, flat weight gradient if asked).
fn backward(saved: &Saved, d_pooled: &[f32], want_dx: bool, want_dw: bool) -> (Vec<f32>, Vec<f32>) {
    let (n, _, _, _) = saved.dims;
    let (positions, c_last) = saved.last;
    let mut dy = global_average_pool_backward(d_pooled, n, positions, c_last);
    // gradients per layer, in reverse order; reversed at the end
    let mut grads: Vec<Vec<f32>> = Vec::new();
    let mut push = |dw: Vec<f32>, dgamma: Vec<f32>, dbeta: Vec<f32>| {
        if want_dw {
            let mut layer = dw;
            layer.extend(dgamma);
            layer.extend(dbeta);
            grads.push(layer);
        }
    };
    for (i, b) in saved.blocks.iter().enumerate().rev() {
        let input: &[f32] = if i == 0 {
            &saved.stem_a
        } else {
            &saved.blocks[i - 1].y
        };
        let oc = b.conv1.shape.o;
        let g = relu_mask(&dy, &b.y);
        let (dz2, dg2, db2) = bn_backward(&b.z2, &b.z2, &g, oc, &b.bn2, false);
        let mut dx_in = match &b.down {
            Some((conv, zd, bn)) => {
                let (dzd, dgd, dbd) = bn_backward(zd, zd, &g, oc, bn, false);
                let dx = timed_input_grad(&dzd, conv);
                push(
                    if want_dw {
                        timed_weight_grad(input, &dzd, conv)
                    } else {
                        Vec::new()
                    },
                    dgd,
                    dbd,
                );
                dx
            }
            None => g,
        };
        let da1 = timed_input_grad(&dz2, &b.conv2);
        push(
            if want_dw {
                timed_weight_grad(&b.a1, &dz2, &b.conv2)
            } else {
                Vec::new()
            },
            dg2,
            db2,
        );
        let (dz1, dg1, db1) = bn_backward(&b.z1, &b.a1, &da1, oc, &b.bn1, true);
        add_into(&mut dx_in, &timed_input_grad(&dz1, &b.conv1));
        push(
            if want_dw {
                timed_weight_grad(input, &dz1, &b.conv1)
            } else {
                Vec::new()
            },
            dg1,
            db1,
        );
        dy = dx_in;
    }
    let c0 = saved.stem.shape.o;
    let (dz, dg, db) = bn_backward(&saved.stem_z, &saved.stem_a, &dy, c0, &saved.stem_bn, true);
    let dx = if want_dx {
        let s = &saved.stem.shape;
        nhwc_to_nchw(&timed_input_grad(&dz, &saved.stem), (s.n, s.c, s.h, s.w))
    } else {
        Vec::new()
    };
    push(
        if want_dw {
            timed_weight_grad(&saved.x, &dz, &saved.stem)
        } else {
            Vec::new()
        },
        dg,
        db,
    );
    grads.reverse();
    (dx, grads.concat())
}

/// The backbone on images (N, C, H, W): pooled features (N, C_last). With two inputs
/// (images, flat sink) the backward pass also returns the flat weight gradient.
pub(crate) struct BackboneOp {
    pub desc: Arc<BackboneDesc>,
    pub batch_statistics: bool,
    pub moments: Arc<Mutex<BatchMoments>>,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl BackboneOp {
    pub fn new(desc: Arc<BackboneDesc>, batch_statistics: bool) -> Self {
        BackboneOp {
            desc,
            batch_statistics,
            moments: Arc::default(),
            saved: Arc::default(),
        }
    }

    fn run(&self, storage: &CpuStorage, layout: &Layout) -> CResult<(CpuStorage, Shape)> {
        let dims = layout.shape().dims4()?;
        let x = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => return fail("fused backbone: images must be contiguous f32"),
        };
        let _t = profile::scope("backbone.forward (all)");
        let (pooled, saved) = forward(&self.desc, x, dims, self.batch_statistics)?;
        let c_last = saved.last.1;
        if self.batch_statistics {
            let counts = self.counts(&saved);
            if let Ok(mut m) = self.moments.lock() {
                *m = saved
                    .moments()
                    .into_iter()
                    .zip(counts)
                    .map(|((a, b), n)| (a, b, n))
                    .collect();
            }
        }
        if let Ok(mut slot) = self.saved.lock() {
            *slot = Some(saved);
        }
        Ok((CpuStorage::F32(pooled), Shape::from((dims.0, c_last))))
    }

    fn counts(&self, saved: &Saved) -> Vec<usize> {
        let n = saved.dims.0;
        let mut out = vec![n * saved.stem.shape.oh() * saved.stem.shape.ow()];
        for b in &saved.blocks {
            let rows = n * b.conv1.shape.oh() * b.conv1.shape.ow();
            out.push(rows);
            out.push(rows);
            if b.down.is_some() {
                out.push(rows);
            }
        }
        out
    }

    fn grads(
        &self,
        grad: &Tensor,
        want_dx: bool,
        want_dw: bool,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.clone();
        let op = BackboneBackward {
            saved,
            want_dx,
            want_dw,
            flat: self.desc.flat_len(),
        };
        let packed = grad.contiguous()?.apply_op1_no_bwd(&op)?;
        let (n, c, h, w) = op.dims()?;
        let dx_len = if want_dx { n * c * h * w } else { 0 };
        let dx = want_dx
            .then(|| packed.narrow(0, 0, dx_len)?.reshape((n, c, h, w)))
            .transpose()?;
        let dw = want_dw
            .then(|| packed.narrow(0, dx_len, op.flat))
            .transpose()?;
        Ok((dx, dw))
    }
}

impl CustomOp1 for BackboneOp {
    fn name(&self) -> &'static str {
        "resnet-backbone"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CResult<(CpuStorage, Shape)> {
        self.run(storage, layout)
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        Ok(self.grads(grad, x.track_op(), false)?.0)
    }
}

impl CustomOp2 for BackboneOp {
    fn name(&self) -> &'static str {
        "resnet-backbone"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        self.run(s1, l1)
    }

    fn bwd(
        &self,
        x: &Tensor,
        sink: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        self.grads(grad, x.track_op(), sink.track_op())
    }
}

/// d(pooled) -> [dx | flat weight gradient], one 1-D tensor.
struct BackboneBackward {
    saved: Arc<Mutex<Option<Saved>>>,
    want_dx: bool,
    want_dw: bool,
    flat: usize,
}

impl BackboneBackward {
    fn dims(&self) -> CResult<(usize, usize, usize, usize)> {
        match self
            .saved
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.dims))
        {
            Some(d) => Ok(d),
            None => fail("fused backbone: backward without a forward pass"),
        }
    }
}

impl CustomOp1 for BackboneBackward {
    fn name(&self) -> &'static str {
        "resnet-backbone-backward"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CResult<(CpuStorage, Shape)> {
        let d = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => return fail("fused backbone backward: gradient must be contiguous f32"),
        };
        let _t = profile::scope("backbone.backward (all)");
        let guard = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused backbone: poisoned state".into()))?;
        let saved = match guard.as_ref() {
            Some(s) => s,
            None => return fail("fused backbone: backward without a forward pass"),
        };
        let (mut dx, dw) = backward(saved, d, self.want_dx, self.want_dw);
        if self.want_dw && dw.len() != self.flat {
            return fail(format!(
                "fused backbone: {} weight-gradient values, expected {}",
                dw.len(),
                self.flat
            ));
        }
        dx.extend(dw);
        let len = dx.len();
        Ok((CpuStorage::F32(dx), Shape::from(len)))
    }
}
