//! The ResNet backbone as one custom operation on the CPU.
//!
//! candle's autograd allocates and zero-fills a gradient buffer for every node and adds into it,
//! and runs ReLU and residual additions as several passes each; for a ResNet that overhead costs
//! as much as a third of a training step on two cores. Here the whole backbone (stem, basic
//! blocks, global pooling) is a single operation with a hand-written backward pass over the fast
//! kernels of `rossl_kernels`: channels-last im2col + GEMM convolutions, fused batch norm +
//! ReLU, fused residual add + ReLU.
//!
//! Gradients with respect to the weights are one flat vector. A flat "gradient sink" variable
//! (the operation's second input) puts the operation in candle's backward pass; the backward
//! pass leaves the flat gradient in a [`FlatGradient`] slot rather than returning it as the
//! sink's, since candle would first add it into a buffer of its own, zero-filled on one core
//! (44 MB for ResNet-18), and [`crate::resnet::ResNetEncoder`] splits it into per-parameter
//! gradients after the backward pass (`Encoder::route_gradients`). Attack and evaluation passes
//! (weights detached) skip every weight-gradient product. The layered implementation (candle
//! operations per layer) remains the path on GPUs and the reference the tests compare against.

mod desc;
mod passes;
mod windowed;

use desc::*;
pub(crate) use desc::{BackboneDesc, BlockDesc, BnDesc, ConvDesc};
pub(crate) use passes::BatchMoments;
use passes::*;
pub(crate) use windowed::WindowedBackbone;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rossl_kernels::profile;
use std::sync::{Arc, Mutex};

/// Where the backward passes leave the flat weight gradient until it is routed: the sum over
/// every backward pass since the last [`FlatGradient::take`] (each tracked forward pass also
/// empties it, so that a gradient never routed cannot reach a later step).
#[derive(Clone, Default)]
pub(crate) struct FlatGradient(Arc<Mutex<Option<Tensor>>>);

impl FlatGradient {
    /// Adds `g` to the gradient held (in the order candle would: held + g).
    fn add(&self, g: Tensor) -> CResult<()> {
        let mut slot = self
            .0
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused backbone: poisoned gradient".into()))?;
        *slot = Some(match slot.take() {
            Some(held) => (held + g)?,
            None => g,
        });
        Ok(())
    }

    /// The gradient held, if any, leaving the slot empty.
    pub fn take(&self) -> Option<Tensor> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// The backbone on images (N, C, H, W): pooled features (N, C_last). With two inputs
/// (images, flat sink) the backward pass also adds the flat weight gradient to `flat_grad`.
pub(crate) struct BackboneOp {
    pub desc: Arc<BackboneDesc>,
    pub batch_statistics: bool,
    pub moments: Arc<Mutex<BatchMoments>>,
    saved: Arc<Mutex<Option<Saved>>>,
    flat_grad: FlatGradient,
}

impl BackboneOp {
    pub fn new(desc: Arc<BackboneDesc>, batch_statistics: bool, flat_grad: FlatGradient) -> Self {
        BackboneOp {
            desc,
            batch_statistics,
            moments: Arc::default(),
            saved: Arc::default(),
            flat_grad,
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
        let (dx, dw) = self.grads(grad, x.track_op(), sink.track_op())?;
        if let Some(dw) = dw {
            self.flat_grad.add(dw)?;
        }
        Ok((dx, None))
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
        let packed = backward(saved, d, self.want_dx, self.want_dw, self.flat)?;
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}
