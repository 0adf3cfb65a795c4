//! The perturbation update of adversarial training (a signed ascent step, clipped to the
//! L-infinity ball and the pixel range) as one operation: the parallel CPU kernel of
//! [`rossl_kernels::perturbation`], candle's element-wise operations elsewhere.

use super::storage::{triple, Same3};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rossl_api::adversarial::clip_delta;
use rossl_api::Result;
use rossl_kernels::perturbation;

/// `(x, delta, gradient) -> clip_delta(x, delta + step sign(gradient), eps)`, without a backward
/// pass (the perturbation is never differentiated through its own update).
struct SignedStep {
    step: f64,
    eps: f64,
}

impl CustomOp3 for SignedStep {
    fn name(&self) -> &'static str {
        "signed-step"
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
        if l1.shape() != l2.shape() || l1.shape() != l3.shape() {
            return Err(candle_core::Error::Msg(format!(
                "signed-step: shapes {:?}, {:?} and {:?} differ",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )));
        }
        let (step, eps) = (self.step, self.eps);
        let out = match triple("signed-step", (s1, l1), (s2, l2), (s3, l3))? {
            Same3::F32([x, d, g]) => CpuStorage::F32(perturbation::signed_step(x, d, g, step, eps)),
            Same3::F64([x, d, g]) => CpuStorage::F64(perturbation::signed_step(x, d, g, step, eps)),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// The next perturbation of free and PGD training:
/// `clamp(x + clamp(delta + step sign(gradient), -eps, eps), 0, 1) - x`, detached.
///
/// On the CPU (f32 or f64) one parallel pass computes it; elsewhere candle's element-wise
/// operations do, in the same order, so both give the same values (bit for bit on the CPU, where
/// the test compares them).
pub fn signed_step(
    x: &Tensor,
    delta: &Tensor,
    gradient: &Tensor,
    step: f64,
    eps: f64,
) -> Result<Tensor> {
    if x.device().is_cpu() {
        let (x, delta, gradient) = (
            x.detach().contiguous()?,
            delta.detach().contiguous()?,
            gradient.detach().contiguous()?,
        );
        return Ok(x.apply_op3_no_bwd(&delta, &gradient, &SignedStep { step, eps })?);
    }
    signed_step_reference(x, delta, gradient, step, eps)
}

/// The same update with candle's element-wise operations (the reference of the tests, and the
/// path on devices other than the CPU).
pub fn signed_step_reference(
    x: &Tensor,
    delta: &Tensor,
    gradient: &Tensor,
    step: f64,
    eps: f64,
) -> Result<Tensor> {
    let moved = (delta + (gradient.sign()? * step)?)?;
    Ok(clip_delta(x, &moved, eps)?.detach())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Random values in [lo, hi), with exact zeros and pixels on the range's edges mixed in.
    fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
        let mut rng = rossl_api::rng::Rng::new(seed);
        (0..n)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => hi.min(1.0),
                _ => rng.uniform_range(lo, hi),
            })
            .collect()
    }

    #[test]
    fn the_parallel_update_equals_candles_operations_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        let n = 11 * 4_470; // three parallel tasks and a tail
        for dtype in [DType::F32, DType::F64] {
            let t = |v: Vec<f64>| Tensor::from_vec(v, (n / 11, 11), &dev)?.to_dtype(dtype);
            let x = t(values(n, 1, 0.0, 1.0))?;
            let delta = t(values(n, 2, -0.04, 0.04))?;
            let gradient = t(values(n, 3, -1.0, 1.0))?;
            let fast = signed_step(&x, &delta, &gradient, 0.01, 8.0 / 255.0)?;
            let slow = signed_step_reference(&x, &delta, &gradient, 0.01, 8.0 / 255.0)?;
            let differ = fast.ne(&slow)?.to_dtype(DType::F32)?.sum_all()?;
            assert_eq!(differ.to_scalar::<f32>()?, 0.0, "{dtype:?}");
            // the invariants: inside the ball (up to the rounding of (x + d) - x, one unit in
            // the last place of a pixel), and x + delta a pixel
            let moved = (&x + &fast)?;
            let ulp = if dtype == DType::F32 { 1e-7 } else { 1e-15 };
            let largest = fast
                .abs()?
                .max_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            assert!(largest <= 8.0 / 255.0 + ulp, "{dtype:?}: {largest}");
            assert!(moved.min_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()? >= 0.0);
            assert!(moved.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()? <= 1.0);
        }
        Ok(())
    }
}
