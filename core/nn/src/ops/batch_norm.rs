//! Batch normalisation (+ optional ReLU) over the last dimension of a tensor (channels-last:
//! (N, H, W, C) or (N, C)): fused CPU kernels as custom operations, candle's operations elsewhere.

use super::storage::{triple, Same3};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rossl_api::Result;
use rossl_kernels::batch_norm::{affine, backward_affine, backward_train, moments};
use rossl_kernels::profile;
use rossl_kernels::Element;
use std::sync::{Arc, Mutex};

/// Batch mean and biased variance, per channel.
pub type Moments = (Vec<f64>, Vec<f64>);

fn channels(layout: &Layout) -> usize {
    *layout.dims().last().unwrap_or(&1)
}

fn host_f64(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}

struct BatchNormTrain {
    eps: f64,
    relu: bool,
    moments: Arc<Mutex<Option<Moments>>>,
}

impl BatchNormTrain {
    fn run<T: Element>(&self, x: &[T], gamma: &[T], beta: &[T], c: usize) -> Vec<T> {
        let (mean, var) = moments(x, c);
        let scale: Vec<T> = (0..c)
            .map(|j| T::of(gamma[j].as_f64() / (var[j] + self.eps).sqrt()))
            .collect();
        let shift: Vec<T> = (0..c)
            .map(|j| T::of(beta[j].as_f64() - mean[j] * scale[j].as_f64()))
            .collect();
        let y = affine(x, c, &scale, &shift, self.relu);
        if let Ok(mut slot) = self.moments.lock() {
            *slot = Some((mean, var));
        }
        y
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = channels(l1);
        let _t = profile::scope("batchnorm.forward");
        let out = match triple("batch norm", (s1, l1), (s2, l2), (s3, l3))? {
            Same3::F32([x, g, b]) => CpuStorage::F32(self.run(x, g, b, c)),
            Same3::F64([x, g, b]) => CpuStorage::F64(self.run(x, g, b, c)),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (mean, var) = self
            .moments
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .ok_or_else(|| {
                candle_core::Error::Msg("batch norm backward without forward statistics".into())
            })?;
        let op = BatchNormBackward {
            relu: self.relu,
            invstd: var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect(),
            mean,
            gamma: host_f64(gamma)?,
        };
        let packed = x.apply_op3_no_bwd(res, &grad.contiguous()?, &op)?;
        let c = *x.dims().last().unwrap_or(&1);
        let rows = x.elem_count() / c;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, rows, 1)?.reshape(c)?;
        let dbeta = packed.narrow(0, rows + 1, 1)?.reshape(c)?;
        Ok((
            x.track_op().then_some(dx),
            gamma.track_op().then_some(dgamma),
            beta.track_op().then_some(dbeta),
        ))
    }
}

/// (x, y, dy) -> [dx as rows; dgamma; dbeta], one (rows + 2, C) tensor.
struct BatchNormBackward {
    relu: bool,
    mean: Vec<f64>,
    invstd: Vec<f64>,
    gamma: Vec<f64>,
}

impl BatchNormBackward {
    fn run<T: Element>(&self, x: &[T], y: &[T], dy: &[T], c: usize) -> Vec<T> {
        let gamma: Vec<T> = self.gamma.iter().map(|&g| T::of(g)).collect();
        let (mut dx, dgamma, dbeta) =
            backward_train(x, y, dy, c, &self.mean, &self.invstd, &gamma, self.relu);
        dx.extend(dgamma);
        dx.extend(dbeta);
        dx
    }
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "batch-norm-train-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = channels(l1);
        let rows = l1.shape().elem_count() / c;
        let _t = profile::scope("batchnorm.backward");
        let out = match triple("batch norm backward", (s1, l1), (s2, l2), (s3, l3))? {
            Same3::F32([x, y, dy]) => CpuStorage::F32(self.run(x, y, dy, c)),
            Same3::F64([x, y, dy]) => CpuStorage::F64(self.run(x, y, dy, c)),
        };
        Ok((out, Shape::from((rows + 2, c))))
    }
}

/// `relu?(x scale + shift)` per channel, differentiable in `x` only (scale and shift are frozen
/// statistics): evaluation-mode batch norm.
struct ChannelAffine {
    relu: bool,
}

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        "channel-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = channels(l1);
        let _t = profile::scope("batchnorm.forward");
        let out = match triple("affine", (s1, l1), (s2, l2), (s3, l3))? {
            Same3::F32([x, a, b]) => CpuStorage::F32(affine(x, c, a, b, self.relu)),
            Same3::F64([x, a, b]) => CpuStorage::F64(affine(x, c, a, b, self.relu)),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if scale.track_op() || shift.track_op() {
            return Err(candle_core::Error::Msg(
                "channel-affine: scale and shift must be detached".into(),
            ));
        }
        let dx = res.apply_op3_no_bwd(
            &grad.contiguous()?,
            scale,
            &AffineBackward { relu: self.relu },
        )?;
        Ok((x.track_op().then_some(dx), None, None))
    }
}

/// (y, dy, scale) -> dx.
struct AffineBackward {
    relu: bool,
}

impl CustomOp3 for AffineBackward {
    fn name(&self) -> &'static str {
        "channel-affine-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = channels(l1);
        let _t = profile::scope("batchnorm.backward");
        let out = match triple("affine backward", (s1, l1), (s2, l2), (s3, l3))? {
            Same3::F32([y, dy, a]) => CpuStorage::F32(backward_affine(y, dy, c, a, self.relu)),
            Same3::F64([y, dy, a]) => CpuStorage::F64(backward_affine(y, dy, c, a, self.relu)),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Training-mode batch norm over the last dimension of `x` with batch statistics, then ReLU if
/// `relu`. Returns the output and the batch mean and biased variance (for running statistics).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Moments)> {
    if !super::storage::fast_cpu(x) {
        return batch_norm_train_reference(x, gamma, beta, eps, relu);
    }
    let moments = Arc::new(Mutex::new(None));
    let op = BatchNormTrain {
        eps,
        relu,
        moments: moments.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = moments
        .lock()
        .ok()
        .and_then(|m| m.clone())
        .ok_or_else(|| rossl_api::Error::msg("batch norm: no statistics"))?;
    Ok((y, stats))
}

/// Evaluation-mode batch norm: `relu?((x - mean) / sqrt(var + eps) gamma + beta)` with frozen
/// `mean`, `var`, `gamma`, `beta` (all detached), differentiable in `x`.
pub fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<Tensor> {
    let scale = (var.detach() + eps)?
        .sqrt()?
        .recip()?
        .mul(&gamma.detach())?;
    let shift = (beta.detach() - mean.detach().mul(&scale)?)?;
    if !super::storage::fast_cpu(x) {
        let y = x.broadcast_mul(&scale)?.broadcast_add(&shift)?;
        return Ok(if relu { y.relu()? } else { y });
    }
    Ok(x.contiguous()?.apply_op3(
        &scale.contiguous()?,
        &shift.contiguous()?,
        ChannelAffine { relu },
    )?)
}

/// Training-mode batch norm with candle's operations: the path on GPUs and the reference for
/// tests.
pub fn batch_norm_train_reference(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Moments)> {
    let dims: Vec<usize> = (0..x.rank() - 1).collect();
    let mean = x.mean_keepdim(dims.as_slice())?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(dims.as_slice())?;
    let y = centred
        .broadcast_mul(&(&var + eps)?.sqrt()?.recip()?)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)?;
    let y = if relu { y.relu()? } else { y };
    Ok((y, (host_f64(&mean)?, host_f64(&var)?)))
}
