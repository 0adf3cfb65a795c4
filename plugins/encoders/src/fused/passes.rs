//! The fused backbone's forward and backward passes over the CPU kernels.

use rossl_kernels::batch_norm::{affine, backward_affine, backward_train, moments};
use rossl_kernels::conv::{
    forward as conv_forward, input_grad, weight_grad, weights_from_kkco_into, weights_to_kkco,
    ConvShape,
};
use rossl_kernels::elementwise::{
    add_into, add_relu, global_average_pool, global_average_pool_backward, nchw_to_nhwc,
    nhwc_to_nchw, relu_mask,
};
use rossl_kernels::profile;

use super::desc::*;
/// What a batch norm saved for its backward pass.
pub(super) struct SavedBn {
    /// Batch statistics: mean, 1 / std, gamma. Frozen statistics: the per-channel scale.
    pub(super) mean: Vec<f64>,
    pub(super) invstd: Vec<f64>,
    pub(super) gamma: Vec<f32>,
    pub(super) scale: Vec<f32>,
    pub(super) batch: bool,
    pub(super) var: Vec<f64>,
}

pub(super) fn bn_forward(
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

/// dx (and dgamma, dbeta) of a batch norm whose input was `x`; with `relu`, `dy` is first masked
/// where `y` (the output of the ReLU that follows, possibly after a residual add) is not positive.
pub(super) fn bn_backward(
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

pub(super) struct SavedConv {
    pub(super) shape: ConvShape,
    pub(super) kkco: Vec<f32>,
}

pub(super) fn conv_run(
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

pub(super) struct SavedBlock {
    pub(super) conv1: SavedConv,
    pub(super) z1: Vec<f32>,
    pub(super) bn1: SavedBn,
    pub(super) a1: Vec<f32>,
    pub(super) conv2: SavedConv,
    pub(super) z2: Vec<f32>,
    pub(super) bn2: SavedBn,
    pub(super) down: Option<(SavedConv, Vec<f32>, SavedBn)>,
    pub(super) y: Vec<f32>,
}

/// Everything the backward pass needs.
pub(super) struct Saved {
    pub(super) dims: (usize, usize, usize, usize),
    pub(super) x: Vec<f32>,
    pub(super) stem: SavedConv,
    pub(super) stem_z: Vec<f32>,
    pub(super) stem_bn: SavedBn,
    pub(super) stem_a: Vec<f32>,
    pub(super) blocks: Vec<SavedBlock>,
    pub(super) last: (usize, usize),
}

impl Saved {
    /// Batch means and variances of every batch norm in forward order (for running statistics).
    pub(super) fn moments(&self) -> Vec<(Vec<f64>, Vec<f64>)> {
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
pub(super) fn forward(
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

pub(super) fn timed_input_grad(dz: &[f32], conv: &SavedConv) -> Vec<f32> {
    let _t = profile::scope("conv.backward.input");
    input_grad(dz, &conv.kkco, &conv.shape)
}

/// The weight gradient, written in PyTorch's layout into `out`.
pub(super) fn timed_weight_grad(x: &[f32], dz: &[f32], conv: &SavedConv, out: &mut [f32]) {
    let _t = profile::scope("conv.backward.weight");
    weights_from_kkco_into(&weight_grad(x, dz, &conv.shape), &conv.shape, out);
}

/// The flat gradient [dx | weights], filled from its end: the backward pass meets the layers in
/// reverse order, and each writes its (weight, gamma, beta) gradients just before the last.
struct Packed {
    values: Vec<f32>,
    /// Where the last layer written starts.
    end: usize,
    /// Where the weight gradients start (after dx).
    floor: usize,
    want_dw: bool,
}

impl Packed {
    /// The next layer's gradients: `weight` writes the weight gradient into the slice it gets.
    fn layer(
        &mut self,
        conv: &SavedConv,
        weight: impl FnOnce(&mut [f32]),
        dgamma: &[f32],
        dbeta: &[f32],
    ) -> CResult<()> {
        if !self.want_dw {
            return Ok(());
        }
        let len = conv.kkco.len() + dgamma.len() + dbeta.len();
        let Some(start) = self.end.checked_sub(len).filter(|s| *s >= self.floor) else {
            return fail("fused backbone: more weight-gradient values than parameters");
        };
        let slot = &mut self.values[start..self.end];
        let (w, rest) = slot.split_at_mut(conv.kkco.len());
        weight(w);
        rest[..dgamma.len()].copy_from_slice(dgamma);
        rest[dgamma.len()..].copy_from_slice(dbeta);
        self.end = start;
        Ok(())
    }
}

/// The backward pass: one vector, dx in NCHW (if asked) then the flat weight gradient of
/// `flat` values (if asked).
pub(super) fn backward(
    saved: &Saved,
    d_pooled: &[f32],
    want_dx: bool,
    want_dw: bool,
    flat: usize,
) -> CResult<Vec<f32>> {
    let (n, c, h, w) = saved.dims;
    let dx_len = if want_dx { n * c * h * w } else { 0 };
    let total = dx_len + if want_dw { flat } else { 0 };
    let mut packed = Packed {
        values: vec![0.0; total],
        end: total,
        floor: dx_len,
        want_dw,
    };
    let (positions, c_last) = saved.last;
    let mut dy = global_average_pool_backward(d_pooled, n, positions, c_last);
    for (i, b) in saved.blocks.iter().enumerate().rev() {
        let input: &[f32] = if i == 0 {
            &saved.stem_a
        } else {
            &saved.blocks[i - 1].y
        };
        let oc = b.conv1.shape.o;
        // the block's closing ReLU (output `b.y`) is applied inside the batch norms' backward
        // passes; only the identity shortcut needs the masked gradient on its own
        let (dz2, dg2, db2) = bn_backward(&b.z2, &b.y, &dy, oc, &b.bn2, true);
        let mut dx_in = match &b.down {
            Some((conv, zd, bn)) => {
                let (dzd, dgd, dbd) = bn_backward(zd, &b.y, &dy, oc, bn, true);
                let dx = timed_input_grad(&dzd, conv);
                packed.layer(
                    conv,
                    |o| timed_weight_grad(input, &dzd, conv, o),
                    &dgd,
                    &dbd,
                )?;
                dx
            }
            None => relu_mask(&dy, &b.y),
        };
        let da1 = timed_input_grad(&dz2, &b.conv2);
        packed.layer(
            &b.conv2,
            |o| timed_weight_grad(&b.a1, &dz2, &b.conv2, o),
            &dg2,
            &db2,
        )?;
        let (dz1, dg1, db1) = bn_backward(&b.z1, &b.a1, &da1, oc, &b.bn1, true);
        add_into(&mut dx_in, &timed_input_grad(&dz1, &b.conv1));
        packed.layer(
            &b.conv1,
            |o| timed_weight_grad(input, &dz1, &b.conv1, o),
            &dg1,
            &db1,
        )?;
        dy = dx_in;
    }
    let c0 = saved.stem.shape.o;
    let (dz, dg, db) = bn_backward(&saved.stem_z, &saved.stem_a, &dy, c0, &saved.stem_bn, true);
    let stem = &saved.stem;
    packed.layer(
        stem,
        |o| timed_weight_grad(&saved.x, &dz, stem, o),
        &dg,
        &db,
    )?;
    if packed.end != dx_len {
        return fail(format!(
            "fused backbone: {} weight-gradient values, expected {flat}",
            flat - (packed.end - dx_len)
        ));
    }
    if want_dx {
        let s = &stem.shape;
        let dx = nhwc_to_nchw(&timed_input_grad(&dz, stem), (s.n, s.c, s.h, s.w));
        packed.values[..dx_len].copy_from_slice(&dx);
    }
    Ok(packed.values)
}
