//! # rossl-kernels
//!
//! Fast CPU kernels over plain slices, used by the custom operations of rossl-nn: convolution
//! (forward, input gradient, weight gradient) on channels-last (NHWC) tensors on every core, by
//! Winograd's F(2x2, 3x3) ([`winograd`]) for 3x3 stride-1 layers in f32 (F(4x4, 3x3),
//! [`winograd::four`], where the caller asks for it: a frozen encoder), direct kernels
//! ([`direct`], [`narrow`]) for other narrow layers and im2col + GEMM otherwise, and
//! channels-last batch normalisation; and the step profiler
//! ([`profile`]). No candle: tensors are slices and shapes.
//!
//! They are generic over `f32` and `f64` (the latter for finite-difference tests).

pub mod batch_norm;
pub mod conv;
pub mod dense;
pub mod direct;
pub mod direct_grad;
pub mod elementwise;
mod gemm;
pub mod isa;
pub mod narrow;
pub mod perturbation;
pub mod pool;
pub mod profile;
pub mod shape;
pub mod share;
mod simd;
pub mod winograd;

pub use self::gemm::Element;

pub use self::pool::on_pool;

use std::mem::MaybeUninit;

/// A new vector of `len` elements, built in parallel: chunk `i` (elements `i * chunk ..`) is
/// zeroed and then filled by `fill(i, chunk)` on the same worker thread, while it is in cache.
///
/// This replaces `vec![zero; len]` followed by a parallel loop: with a warm heap, that zeroing
/// was a serial `memset` on the calling thread that left the other cores idle.
pub(crate) fn par_build<T, F>(len: usize, chunk: usize, zero: T, fill: F) -> Vec<T>
where
    T: Copy + Send + Sync,
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    let mut out: Vec<T> = Vec::with_capacity(len);
    share::for_each_chunk_mut(&mut out.spare_capacity_mut()[..len], chunk, |i, part| {
        simd::vectorised(
            #[inline(always)]
            || {
                for slot in part.iter_mut() {
                    slot.write(zero);
                }
            },
        );
        // SAFETY: every element of `part` was initialised just above, and
        // `MaybeUninit<T>` has the same layout as `T`.
        let part = unsafe { &mut *(part as *mut [MaybeUninit<T>] as *mut [T]) };
        fill(i, part);
    });
    // SAFETY: the chunks cover `0..len` and each was initialised above; if a fill panicked, the
    // panic propagated before this line and the vector (length 0) only frees its buffer.
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::par_build;

    #[test]
    fn par_build_zeroes_then_fills_every_chunk_in_place() {
        // chunk 3 over 10 elements: chunks 0..3, 3..6, 6..9, 9..10; fill writes i + 1 into the
        // first element of chunk i and leaves the rest zero
        let v = par_build(10, 3, 0.0f32, |i, part| part[0] = (i + 1) as f32);
        assert_eq!(v, vec![1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0, 4.0]);
        assert!(par_build(0, 4, 0u8, |_, _| unreachable!()).is_empty());
    }
}
