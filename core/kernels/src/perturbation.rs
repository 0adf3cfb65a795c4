//! The perturbation update of adversarial training, one pass over the batch on every core: a
//! signed ascent step, then the two clips of the reference code (the L-infinity ball, then the
//! pixel range).

use super::{par_build, Element};
use crate::simd::vectorised;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `sign(v)`: 1, -1, or 0 for zero and NaN, as candle's `sign`.
#[inline(always)]
fn sign<T: Element>(v: T) -> T {
    if v > T::zero() {
        T::one()
    } else if v < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

/// `v` clamped to `[lo, hi]`, with candle's comparisons (`maximum` then `minimum`), so that a NaN
/// stays NaN as it does there.
#[inline(always)]
fn clamp<T: Element>(v: T, lo: T, hi: T) -> T {
    let v = if v < lo { lo } else { v };
    if v > hi {
        hi
    } else {
        v
    }
}

/// The next perturbation, element by element:
/// `clamp(x + clamp(delta + step sign(gradient), -eps, eps), 0, 1) - x`.
///
/// Every operation is done in `T` in the order of the candle expression
/// `clip_delta(x, delta + gradient.sign() * step, eps)`, so the two give identical bits.
/// Panics if the three slices differ in length.
pub fn signed_step<T: Element>(
    x: &[T],
    delta: &[T],
    gradient: &[T],
    step: f64,
    eps: f64,
) -> Vec<T> {
    assert!(
        x.len() == delta.len() && x.len() == gradient.len(),
        "signed_step: lengths differ"
    );
    let (step, eps) = (T::of(step), T::of(eps));
    par_build(x.len(), CHUNK, T::zero(), |i, out| {
        let at = i * CHUNK..i * CHUNK + out.len();
        let (x, delta, gradient) = (&x[at.clone()], &delta[at.clone()], &gradient[at]);
        vectorised(
            #[inline(always)]
            || {
                for (((o, x), delta), gradient) in out.iter_mut().zip(x).zip(delta).zip(gradient) {
                    // candle's `affine(step, 0)`: v * mul + add
                    let ascent = sign(*gradient) * step + T::zero();
                    let moved = clamp(*delta + ascent, -eps, eps);
                    *o = clamp(*x + moved, T::zero(), T::one()) - *x;
                }
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_by_the_sign_then_clips_to_the_ball_and_the_pixel_range() {
        // eps 0.1, step 0.05; worked by hand:
        //   x 0.5,  delta 0.08,  g  2   -> 0.08 + 0.05 = 0.13 -> ball 0.1 -> 0.6 - 0.5 = 0.1
        //   x 0.5,  delta 0.0,   g -3   -> -0.05
        //   x 0.5,  delta 0.02,  g  0   -> 0.02 (no step where the gradient is zero)
        //   x 0.98, delta 0.0,   g  1   -> 0.05 -> 1.03 clipped to 1 -> 0.02
        //   x 0.01, delta -0.09, g -1   -> -0.14 -> -0.1 -> -0.09 clipped to 0 -> -0.01
        //   x 0.5,  delta 0.0,   g NaN  -> 0 (candle's sign of NaN is 0)
        let x = [0.5f64, 0.5, 0.5, 0.98, 0.01, 0.5];
        let delta = [0.08, 0.0, 0.02, 0.0, -0.09, 0.0];
        let g = [2.0, -3.0, 0.0, 1.0, -1.0, f64::NAN];
        let out = signed_step(&x, &delta, &g, 0.05, 0.1);
        let want = [0.1, -0.05, 0.02, 0.02, -0.01, 0.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-12, "{out:?} against {want:?}");
        }
    }

    #[test]
    fn every_chunk_is_written() {
        // longer than several tasks, with a tail: every element moves by +step from 0
        let n = 3 * CHUNK + 7;
        let out = signed_step(&vec![0.5f32; n], &vec![0.0; n], &vec![1.0; n], 0.01, 0.1);
        assert!(out.iter().all(|v| *v == (0.5f32 + 0.01) - 0.5));
    }
}
