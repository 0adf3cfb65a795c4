//! The optimiser's update as in-place operations on the CPU: one pass over each parameter, its
//! gradient and its momentum buffer, on every core, instead of a chain of tensor operations that
//! each allocate.

use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Storage, Tensor};
use rossl_kernels::share::{for_each_chunk_mut, map_tasks};

const CHUNK: usize = 1 << 14;

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => Err(candle_core::Error::Msg(
            "in-place update: contiguous f32 tensors only".into(),
        )),
    }
}

fn slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => Err(candle_core::Error::Msg(
            "in-place update: contiguous f32 tensors only".into(),
        )),
    }
}

/// `update(d, a, b)` on every element `d` of `dst` with the elements of `a` and `b` at the same
/// index, in parallel chunks.
fn update_in_place(
    dst: &mut [f32],
    a: &[f32],
    b: &[f32],
    update: impl Fn(&mut f32, f32, f32) + Sync + Send,
) {
    // (as a zip: shorter `a` or `b` leave the rest of `dst` as it is)
    for_each_chunk_mut(dst, CHUNK, |i, d| {
        let (a, b) = (chunk_of(a, i), chunk_of(b, i));
        for ((d, a), b) in d.iter_mut().zip(a).zip(b) {
            update(d, *a, *b);
        }
    });
}

/// Chunk `i` of `v` (elements `i * CHUNK ..`, at most [`CHUNK`]; empty past its end).
fn chunk_of(v: &[f32], i: usize) -> &[f32] {
    let start = (i * CHUNK).min(v.len());
    &v[start..(start + CHUNK).min(v.len())]
}

/// `true` when the in-place path applies: CPU, f32, contiguous.
pub fn applies(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous())
}

/// The L2 norm of a CPU f32 tensor, read in place.
pub fn norm(t: &Tensor) -> candle_core::Result<f64> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(candle_core::Error::Msg(
            "in-place norm: CPU tensors only".into(),
        ));
    };
    let v = slice(cpu, layout)?;
    // per chunk in parallel; the chunks' sums added in chunk order, whichever thread computed
    // each, so that the norm does not depend on the schedule
    let sum: f64 = map_tasks(v.len().div_ceil(CHUNK), |i| {
        chunk_of(v, i)
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
    })
    .into_iter()
    .sum();
    Ok(sum.sqrt())
}

/// How a gradient becomes an update direction: `g' = (g + wd p) rate`.
#[derive(Clone, Copy, Debug)]
pub struct Direction {
    /// Weight decay folded into the gradient.
    pub weight_decay: f64,
    /// LARS scaling (1 without LARS).
    pub rate: f64,
}

impl Direction {
    fn f32(self) -> (f32, f32) {
        (self.weight_decay as f32, self.rate as f32)
    }
}

/// `buf <- momentum buf + g'` (in place on the buffer; sources: gradient, parameter).
pub struct MomentumUpdate {
    /// The direction.
    pub direction: Direction,
    /// Momentum.
    pub momentum: f32,
}

impl InplaceOp3 for MomentumUpdate {
    fn name(&self) -> &'static str {
        "sgd-momentum-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let buf = slice_mut(s1, l1)?;
        let (g, p) = (slice(s2, l2)?, slice(s3, l3)?);
        let (wd, rate) = self.direction.f32();
        let m = self.momentum;
        update_in_place(buf, g, p, |b, g, p| *b = m * *b + (g + wd * p) * rate);
        Ok(())
    }
}

/// `p <- p - lr d` with `d = g' + momentum buf` (Nesterov) or `d = buf` (in place on the parameter;
/// sources: gradient, buffer).
pub struct ParameterUpdate {
    /// The direction.
    pub direction: Direction,
    /// Momentum.
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Learning rate.
    pub lr: f32,
}

impl InplaceOp3 for ParameterUpdate {
    fn name(&self) -> &'static str {
        "sgd-parameter-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let p = slice_mut(s1, l1)?;
        let (g, buf) = (slice(s2, l2)?, slice(s3, l3)?);
        let (wd, rate) = self.direction.f32();
        let (m, lr, nesterov) = (self.momentum, self.lr, self.nesterov);
        update_in_place(p, g, buf, |p, g, b| {
            let d = if nesterov {
                (g + wd * *p) * rate + m * b
            } else {
                b
            };
            *p -= lr * d;
        });
        Ok(())
    }
}

/// `p <- p - lr g'` without momentum (in place on the parameter; source: gradient).
pub struct PlainUpdate {
    /// The direction.
    pub direction: Direction,
    /// Learning rate.
    pub lr: f32,
}

impl InplaceOp2 for PlainUpdate {
    fn name(&self) -> &'static str {
        "sgd-plain-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let p = slice_mut(s1, l1)?;
        let g = slice(s2, l2)?;
        let (wd, rate) = self.direction.f32();
        let lr = self.lr;
        for_each_chunk_mut(p, CHUNK, |i, p| {
            for (p, g) in p.iter_mut().zip(chunk_of(g, i)) {
                *p -= lr * (g + wd * *p) * rate;
            }
        });
        Ok(())
    }
}
