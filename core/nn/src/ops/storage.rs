//! Reading and writing CPU storage for the custom operations.

use candle_core::{CpuStorage, DType, Layout, Tensor};

/// Whether `x` can take the fast CPU kernels: on the CPU, in f32 or f64. Other precisions (bf16)
/// and other devices take candle's operations.
pub(crate) fn fast_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// The contiguous f32 or f64 data of a storage, or an error naming the operation.
pub(crate) enum Data<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

pub(crate) fn data<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<Data<'a>> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input must be contiguous")))?;
    match storage {
        CpuStorage::F32(v) => Ok(Data::F32(&v[start..end])),
        CpuStorage::F64(v) => Ok(Data::F64(&v[start..end])),
        _ => Err(candle_core::Error::Msg(format!(
            "{op}: only f32 and f64 are supported"
        ))),
    }
}

/// Both inputs as f32, or both as f64.
pub(crate) fn pair<'a>(
    op: &str,
    a: (&'a CpuStorage, &Layout),
    b: (&'a CpuStorage, &Layout),
) -> candle_core::Result<(Data<'a>, Data<'a>)> {
    let (x, y) = (data(op, a.0, a.1)?, data(op, b.0, b.1)?);
    match (&x, &y) {
        (Data::F32(_), Data::F32(_)) | (Data::F64(_), Data::F64(_)) => Ok((x, y)),
        _ => Err(candle_core::Error::Msg(format!(
            "{op}: inputs must share a dtype"
        ))),
    }
}

/// Three inputs of one dtype.
pub(crate) enum Same3<'a> {
    F32([&'a [f32]; 3]),
    F64([&'a [f64]; 3]),
}

/// All three inputs as f32, or all three as f64, or an error naming the operation.
pub(crate) fn triple<'a>(
    op: &str,
    a: (&'a CpuStorage, &Layout),
    b: (&'a CpuStorage, &Layout),
    c: (&'a CpuStorage, &Layout),
) -> candle_core::Result<Same3<'a>> {
    match (
        data(op, a.0, a.1)?,
        data(op, b.0, b.1)?,
        data(op, c.0, c.1)?,
    ) {
        (Data::F32(x), Data::F32(y), Data::F32(z)) => Ok(Same3::F32([x, y, z])),
        (Data::F64(x), Data::F64(y), Data::F64(z)) => Ok(Same3::F64([x, y, z])),
        _ => Err(candle_core::Error::Msg(format!(
            "{op}: inputs must share a dtype"
        ))),
    }
}
