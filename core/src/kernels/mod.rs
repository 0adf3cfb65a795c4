//! Fast CPU kernels over plain slices, used by the custom operations in [`crate::ops`]:
//! convolution (forward, input gradient, weight gradient) on channels-last (NHWC) tensors as
//! im2col + GEMM over row chunks on every core, and channels-last batch normalisation.
//!
//! They are generic over `f32` and `f64` (the latter for finite-difference tests).

pub mod batch_norm;
pub mod conv;
pub mod direct;
pub mod elementwise;
mod gemm;

pub use self::gemm::Element;
