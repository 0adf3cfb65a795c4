//! The log-determinant of symmetric positive-definite matrices, differentiable.
//!
//! Forward: a Cholesky factorisation in f64, logdet = 2 sum log L_ii. Backward:
//! d logdet(A) / dA = A^-1 (A symmetric), from the same factorisation. A matrix that is not
//! positive definite (or holds NaN/inf) is an error naming the matrix and the failing pivot,
//! never a NaN. On a GPU the (small) matrices are copied to the host inside the operation.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use rossl_api::{Error, Result};

/// Lower Cholesky factor of the n x n row-major `a` (only its lower triangle is read); the failing
/// pivot's index and value when `a` is not positive definite.
pub(crate) fn cholesky(a: &[f64], n: usize) -> std::result::Result<Vec<f64>, (usize, f64)> {
    let mut l = vec![0.0f64; n * n];
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return Err((j, d));
        }
        let djj = d.sqrt();
        l[j * n + j] = djj;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = s / djj;
        }
    }
    Ok(l)
}

/// A^-1 from the lower Cholesky factor `l` of A (row-major, n x n).
pub(crate) fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
    // Solve L Y = I column by column, then L^T X = Y.
    let mut x = vec![0.0f64; n * n];
    let mut y = vec![0.0f64; n];
    for col in 0..n {
        for i in 0..n {
            let mut s = if i == col { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l[i * n + k] * y[k];
            }
            y[i] = s / l[i * n + i];
        }
        for i in (0..n).rev() {
            let mut s = y[i];
            for k in i + 1..n {
                s -= l[k * n + i] * x[k * n + col];
            }
            x[i * n + col] = s / l[i * n + i];
        }
    }
    x
}

fn as_f64(storage: &CpuStorage, layout: &Layout) -> candle_core::Result<Vec<f64>> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("logdet: input must be contiguous".into()))?;
    Ok(match storage {
        CpuStorage::F32(v) => v[start..end].iter().map(|&x| f64::from(x)).collect(),
        CpuStorage::F64(v) => v[start..end].to_vec(),
        other => {
            return Err(candle_core::Error::Msg(format!(
                "logdet: unsupported dtype {:?}",
                other.dtype()
            )))
        }
    })
}

fn from_f64(values: Vec<f64>, like: &CpuStorage) -> CpuStorage {
    match like {
        CpuStorage::F32(_) => CpuStorage::F32(values.into_iter().map(|x| x as f32).collect()),
        _ => CpuStorage::F64(values),
    }
}

fn matrix_dims(layout: &Layout) -> candle_core::Result<(usize, usize, Vec<usize>)> {
    let dims = layout.dims();
    if dims.len() < 2 || dims[dims.len() - 1] != dims[dims.len() - 2] {
        return Err(candle_core::Error::Msg(format!(
            "logdet: expected (..., n, n) square matrices, got shape {dims:?}"
        )));
    }
    let n = dims[dims.len() - 1];
    let batch_dims = dims[..dims.len() - 2].to_vec();
    let count = batch_dims.iter().product();
    Ok((count, n, batch_dims))
}

struct LogdetSpd;

impl CustomOp1 for LogdetSpd {
    fn name(&self) -> &'static str {
        "logdet-spd"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (count, n, batch_dims) = matrix_dims(layout)?;
        let data = as_f64(storage, layout)?;
        let mut out = Vec::with_capacity(count);
        for (b, a) in data.chunks_exact(n * n).enumerate() {
            let l = cholesky(a, n).map_err(|(pivot, value)| {
                candle_core::Error::Msg(format!(
                    "matrix {b} ({n}x{n}) is not positive definite: Cholesky pivot {pivot} is {value:e}"
                ))
            })?;
            out.push(2.0 * (0..n).map(|i| l[i * n + i].ln()).sum::<f64>());
        }
        Ok((from_f64(out, storage), Shape::from(batch_dims)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let inverse = arg.apply_op1_no_bwd(&SpdInverse)?;
        let grad = grad_res
            .unsqueeze(grad_res.rank())?
            .unsqueeze(grad_res.rank() + 1)?;
        Ok(Some(inverse.broadcast_mul(&grad)?))
    }
}

struct SpdInverse;

impl CustomOp1 for SpdInverse {
    fn name(&self) -> &'static str {
        "spd-inverse"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, n, _) = matrix_dims(layout)?;
        let data = as_f64(storage, layout)?;
        let mut out = Vec::with_capacity(data.len());
        for (b, a) in data.chunks_exact(n * n).enumerate() {
            let l = cholesky(a, n).map_err(|(pivot, value)| {
                candle_core::Error::Msg(format!(
                    "matrix {b} is not positive definite (pivot {pivot} = {value:e})"
                ))
            })?;
            out.extend(inverse_from_cholesky(&l, n));
        }
        Ok((from_f64(out, storage), layout.shape().clone()))
    }
}

/// log det A for each symmetric positive-definite matrix of `a` (shape (..., n, n)); the result
/// has shape (...). Differentiable. An error (never a NaN) names the matrix that is not positive
/// definite.
pub fn logdet_spd(a: &Tensor) -> Result<Tensor> {
    let device = a.device().clone();
    let host = if device.is_cpu() {
        a.contiguous()?
    } else {
        a.to_device(&Device::Cpu)?.contiguous()?
    };
    let out = host.apply_op1(LogdetSpd).map_err(|e| match e {
        candle_core::Error::Msg(m) => Error::Numerical(format!("log-determinant: {m}")),
        other => Error::from(other),
    })?;
    if device.is_cpu() {
        Ok(out)
    } else {
        Ok(out.to_device(&device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    #[test]
    fn cholesky_and_inverse_of_a_known_matrix() {
        // A = [[4, 2], [2, 3]]: L = [[2, 0], [1, sqrt 2]], det 8, A^-1 = [[3, -2], [-2, 4]] / 8
        let a = [4.0, 2.0, 2.0, 3.0];
        let l = cholesky(&a, 2).unwrap();
        assert!((l[0] - 2.0).abs() < 1e-12 && (l[2] - 1.0).abs() < 1e-12);
        assert!((l[3] - 2f64.sqrt()).abs() < 1e-12);
        let inv = inverse_from_cholesky(&l, 2);
        let expected = [3.0 / 8.0, -2.0 / 8.0, -2.0 / 8.0, 4.0 / 8.0];
        for (x, e) in inv.iter().zip(expected) {
            assert!((x - e).abs() < 1e-12);
        }
    }

    #[test]
    fn logdet_value_gradient_and_error() -> Result<()> {
        let a = Var::from_tensor(&Tensor::new(&[[4.0f64, 2.0], [2.0, 3.0]], &Device::Cpu)?)?;
        let ld = logdet_spd(a.as_tensor())?;
        assert!((ld.to_scalar::<f64>()? - 8f64.ln()).abs() < 1e-12);
        let grads = ld.backward()?;
        let g = grads.get(a.as_tensor()).unwrap().to_vec2::<f64>()?;
        assert!((g[0][0] - 0.375).abs() < 1e-12 && (g[0][1] + 0.25).abs() < 1e-12);
        let bad = Tensor::new(&[[1.0f64, 2.0], [2.0, 1.0]], &Device::Cpu)?;
        let err = logdet_spd(&bad).unwrap_err().to_string();
        assert!(err.contains("not positive definite"), "{err}");
        let nan = Tensor::new(&[[f64::NAN, 0.0], [0.0, 1.0]], &Device::Cpu)?;
        assert!(logdet_spd(&nan).is_err());
        let batch = Tensor::ones((3, 4, 4), DType::F32, &Device::Cpu)?
            .broadcast_add(&Tensor::eye(4, DType::F32, &Device::Cpu)?)?;
        assert_eq!(logdet_spd(&batch)?.dims(), &[3]);
        Ok(())
    }
}
