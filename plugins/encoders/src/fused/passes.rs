//! The fused backbone's forward and backward passes over the CPU kernels.

use rossl_kernels::batch_norm::{
    affine, affine_add_relu_in_place, affine_in_place, backward_affine, backward_affine_in_place,
    backward_train, moments,
};
use rossl_kernels::conv::{
    forward as conv_forward, forward_then_with as conv_forward_then, input_grad_then_with,
    weight_grad, weights_from_kkco_into, weights_to_kkco, ConvShape, Winograd,
};
use rossl_kernels::elementwise::{
    add_in_place, add_relu, global_average_pool, global_average_pool_backward, nchw_to_nhwc,
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

/// A batch norm's statistics (of `x` with `batch`, else its running ones) and its per-channel
/// shift: what its forward pass applies and its backward pass reads.
fn bn_state(x: &[f32], c: usize, bn: &BnDesc, batch: bool) -> CResult<(SavedBn, Vec<f32>)> {
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
    let saved = SavedBn {
        mean,
        invstd,
        gamma,
        scale,
        batch,
        var,
    };
    Ok((saved, shift))
}

/// What a convolution followed by its batch norm (and ReLU, or residual addition and ReLU)
/// computed.
pub(super) struct ConvBn {
    pub(super) conv: SavedConv,
    /// The convolution's output, for batch statistics' backward pass (empty with frozen ones,
    /// whose backward pass reads `y` only).
    pub(super) z: Vec<f32>,
    pub(super) bn: SavedBn,
    pub(super) y: Vec<f32>,
}

/// Convolution, batch norm, then ReLU if `relu`, or with `residual` the residual addition and
/// ReLU. With batch statistics these are separate passes (the statistics need the whole
/// output); with frozen ones the batch norm and what follows run as the convolution's epilogue,
/// on each part of its output while it is in cache, giving the same values.
pub(super) fn conv_bn(
    (conv, bn): (&ConvDesc, &BnDesc),
    x: &[f32],
    (n, h, w, c): (usize, usize, usize, usize),
    batch: bool,
    relu: bool,
    residual: Option<&[f32]>,
) -> CResult<ConvBn> {
    let shape = conv.shape(n, h, w, c)?;
    let kkco = with_data(&conv.weight, |wv| weights_to_kkco(wv, &shape))?;
    let o = shape.o;
    if batch {
        let z = {
            let _t = profile::scope("conv.forward");
            conv_forward(x, &kkco, &shape)
        };
        let _t = profile::scope("batchnorm.forward");
        let (saved, shift) = bn_state(&z, o, bn, true)?;
        let y = match residual {
            Some(r) => add_relu(&affine(&z, o, &saved.scale, &shift, false), r),
            None => affine(&z, o, &saved.scale, &shift, relu),
        };
        let winograd = Winograd::F2x2;
        let conv = SavedConv {
            shape,
            kkco,
            winograd,
        };
        return Ok(ConvBn {
            conv,
            z,
            bn: saved,
            y,
        });
    }
    let (saved, shift) = bn_state(&[], o, bn, false)?;
    let scale = &saved.scale;
    let _t = profile::scope("conv.forward (frozen batch norm fused)");
    // evaluation mode (evaluations and the attacks on them, training attacks run in evaluation
    // mode, DeACL's frozen teacher): F(4x4, 3x3), whose bits no test pins
    let winograd = Winograd::F4x4;
    let y = conv_forward_then(x, &kkco, &shape, winograd, |row, part| match residual {
        Some(r) => affine_add_relu_in_place(part, o, scale, &shift, &r[row * o..][..part.len()]),
        None => affine_in_place(part, o, scale, &shift, relu),
    });
    let conv = SavedConv {
        shape,
        kkco,
        winograd,
    };
    Ok(ConvBn {
        conv,
        z: Vec::new(),
        bn: saved,
        y,
    })
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
    /// The algorithm of its forward pass, which its input gradient uses too.
    pub(super) winograd: Winograd,
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
    let stem = conv_bn(
        (&desc.conv1, &desc.bn1),
        &x,
        (n, h, w, c),
        batch,
        true,
        None,
    )?;
    let (mut hh, mut ww, mut cc) = (
        stem.conv.shape.oh(),
        stem.conv.shape.ow(),
        stem.conv.shape.o,
    );
    let mut blocks: Vec<SavedBlock> = Vec::with_capacity(desc.blocks.len());
    for block in &desc.blocks {
        let input: &[f32] = blocks.last().map_or(&stem.y, |b| &b.y);
        let at = (n, hh, ww, cc);
        let first = conv_bn((&block.conv1, &block.bn1), input, at, batch, true, None)?;
        let s = &first.conv.shape;
        let (oh, ow, oc) = (s.oh(), s.ow(), s.o);
        let down = match &block.down {
            Some((conv, bn)) => Some(conv_bn((conv, bn), input, at, batch, false, None)?),
            None => None,
        };
        let shortcut: &[f32] = down.as_ref().map_or(input, |d| &d.y);
        let second = conv_bn(
            (&block.conv2, &block.bn2),
            &first.y,
            (n, oh, ow, oc),
            batch,
            true,
            Some(shortcut),
        )?;
        blocks.push(SavedBlock {
            conv1: first.conv,
            z1: first.z,
            bn1: first.bn,
            a1: first.y,
            conv2: second.conv,
            z2: second.z,
            bn2: second.bn,
            down: down.map(|d| (d.conv, d.z, d.bn)),
            y: second.y,
        });
        (hh, ww, cc) = (oh, ow, oc);
    }
    let ConvBn {
        conv: stem,
        z: stem_z,
        bn: stem_bn,
        y: stem_a,
    } = stem;
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

/// The gradient through a block's shortcut of its output gradient `dy`: the downsampling
/// convolution's input gradient (its weight gradients go into `packed`), or the identity's,
/// masked by the closing ReLU.
fn shortcut_backward(
    b: &SavedBlock,
    input: &[f32],
    dy: &[f32],
    packed: &mut Packed,
) -> CResult<Vec<f32>> {
    let Some((conv, zd, bn)) = &b.down else {
        return Ok(relu_mask(dy, &b.y));
    };
    let (dzd, dgd, dbd) = bn_backward(zd, &b.y, dy, b.conv1.shape.o, bn, true);
    let dx = timed_input_grad(&dzd, conv);
    packed.layer(
        conv,
        |o| timed_weight_grad(input, &dzd, conv, o),
        &dgd,
        &dbd,
    )?;
    Ok(dx)
}

/// The gradient of a block's first batch norm's input (with its ReLU), from that of the second
/// convolution's output `dz2`: (dz1, dgamma, dbeta). With frozen statistics the batch norm's
/// backward pass runs as the epilogue of the convolution's input gradient.
fn first_bn_backward(dz2: &[f32], b: &SavedBlock, oc: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    if b.bn1.batch {
        let da1 = timed_input_grad(dz2, &b.conv2);
        return bn_backward(&b.z1, &b.a1, &da1, oc, &b.bn1, true);
    }
    let _t = profile::scope("conv.backward.input (frozen batch norm fused)");
    let scale = &b.bn1.scale;
    let conv2 = &b.conv2;
    let dz1 = input_grad_then_with(
        dz2,
        &conv2.kkco,
        &conv2.shape,
        conv2.winograd,
        |at, part| backward_affine_in_place(part, &b.a1[at * oc..][..part.len()], oc, scale, true),
    );
    (dz1, vec![0.0; oc], vec![0.0; oc])
}

pub(super) fn timed_input_grad(dz: &[f32], conv: &SavedConv) -> Vec<f32> {
    let _t = profile::scope("conv.backward.input");
    input_grad_then_with(dz, &conv.kkco, &conv.shape, conv.winograd, |_, _| {})
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
        let dx_in = shortcut_backward(b, input, &dy, &mut packed)?;
        let (dz1, dg1, db1) = first_bn_backward(&dz2, b, oc);
        packed.layer(
            &b.conv2,
            |o| timed_weight_grad(&b.a1, &dz2, &b.conv2, o),
            &dg2,
            &db2,
        )?;
        // the shortcut's gradient added as the epilogue of the first convolution's
        let c_in = b.conv1.shape.c;
        let _t = profile::scope("conv.backward.input");
        let conv1 = &b.conv1;
        let dx = input_grad_then_with(
            &dz1,
            &conv1.kkco,
            &conv1.shape,
            conv1.winograd,
            |at, part| add_in_place(part, &dx_in[at * c_in..][..part.len()]),
        );
        drop(_t);
        packed.layer(
            &b.conv1,
            |o| timed_weight_grad(input, &dz1, &b.conv1, o),
            &dg1,
            &db1,
        )?;
        dy = dx;
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
