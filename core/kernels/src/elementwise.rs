//! Small channels-last helpers for the fused encoder: layout changes, residual add + ReLU,
//! global average pooling, each with its backward.

use super::par_build;
use crate::simd::vectorised;

const CHUNK: usize = 1 << 15;

/// (N, C, H, W) -> (N, H, W, C).
pub fn nchw_to_nhwc(x: &[f32], (n, c, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    debug_assert_eq!(x.len(), n * c * h * w);
    par_build(x.len(), h * w * c, 0.0, |i, img| {
        let src = &x[i * c * h * w..(i + 1) * c * h * w];
        for p in 0..h * w {
            for ch in 0..c {
                img[p * c + ch] = src[ch * h * w + p];
            }
        }
    })
}

/// (N, H, W, C) -> (N, C, H, W).
pub fn nhwc_to_nchw(x: &[f32], (n, c, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    debug_assert_eq!(x.len(), n * c * h * w);
    par_build(x.len(), c * h * w, 0.0, |i, img| {
        let src = &x[i * h * w * c..(i + 1) * h * w * c];
        for p in 0..h * w {
            for ch in 0..c {
                img[ch * h * w + p] = src[p * c + ch];
            }
        }
    })
}

/// `relu(a + b)`.
pub fn add_relu(a: &[f32], b: &[f32]) -> Vec<f32> {
    par_build(a.len(), CHUNK, 0.0, |i, o| {
        let at = i * CHUNK..i * CHUNK + o.len();
        vectorised(
            #[inline(always)]
            || {
                for ((o, x), y) in o.iter_mut().zip(&a[at.clone()]).zip(&b[at]) {
                    *o = (x + y).max(0.0);
                }
            },
        )
    })
}

/// `dy` where `y > 0`, else 0 (the gradient through a ReLU whose output is `y`).
pub fn relu_mask(dy: &[f32], y: &[f32]) -> Vec<f32> {
    par_build(dy.len(), CHUNK, 0.0, |i, o| {
        let at = i * CHUNK..i * CHUNK + o.len();
        vectorised(
            #[inline(always)]
            || {
                for ((o, d), y) in o.iter_mut().zip(&dy[at.clone()]).zip(&y[at]) {
                    *o = if *y > 0.0 { *d } else { 0.0 };
                }
            },
        )
    })
}

/// `acc += x`.
pub fn add_into(acc: &mut [f32], x: &[f32]) {
    crate::share::for_each_chunk_mut(acc, CHUNK, |i, a| {
        // (as a zip: a shorter `x` leaves the rest of `acc` as it is)
        let x = x.get(i * CHUNK..).unwrap_or_default();
        vectorised(
            #[inline(always)]
            || {
                for (a, x) in a.iter_mut().zip(x) {
                    *a += x;
                }
            },
        )
    });
}

/// `acc += x` on the calling thread (an epilogue of [`crate::conv::input_grad_then`]): the
/// values of [`add_into`] with its operands swapped, the same since addition commutes exactly.
pub fn add_in_place(acc: &mut [f32], x: &[f32]) {
    vectorised(
        #[inline(always)]
        || {
            for (a, x) in acc.iter_mut().zip(x) {
                *a += x;
            }
        },
    )
}

/// Mean over the H W positions of (N, H W, C): (N, C).
pub fn global_average_pool(x: &[f32], n: usize, positions: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n * c];
    crate::share::for_each_chunk_mut(&mut out, c, |i, o| {
        vectorised(
            #[inline(always)]
            || {
                for p in 0..positions {
                    let row = &x[(i * positions + p) * c..(i * positions + p + 1) * c];
                    for (o, v) in o.iter_mut().zip(row) {
                        *o += v;
                    }
                }
                let scale = 1.0 / positions as f32;
                o.iter_mut().for_each(|v| *v *= scale);
            },
        )
    });
    out
}

/// The gradient of [`global_average_pool`]: each position gets `dy / positions`.
pub fn global_average_pool_backward(dy: &[f32], n: usize, positions: usize, c: usize) -> Vec<f32> {
    let scale = 1.0 / positions as f32;
    par_build(n * positions * c, positions * c, 0.0, |i, img| {
        let g = &dy[i * c..(i + 1) * c];
        vectorised(
            #[inline(always)]
            || {
                for row in img.chunks_exact_mut(c) {
                    for (o, v) in row.iter_mut().zip(g) {
                        *o = v * scale;
                    }
                }
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip_and_pooling_by_hand() {
        let x: Vec<f32> = (0..2 * 3 * 2 * 2).map(|v| v as f32).collect();
        let nhwc = nchw_to_nhwc(&x, (2, 3, 2, 2));
        // image 0, position 1 (y 0, x 1): channels 1, 5, 9
        assert_eq!(&nhwc[3..6], &[1.0, 5.0, 9.0]);
        assert_eq!(nhwc_to_nchw(&nhwc, (2, 3, 2, 2)), x);
        let pooled = global_average_pool(&nhwc, 2, 4, 3);
        assert_eq!(&pooled[..3], &[1.5, 5.5, 9.5]);
        let back = global_average_pool_backward(&[4.0, 8.0, 12.0, 0.0, 0.0, 0.0], 2, 4, 3);
        assert_eq!(&back[..3], &[1.0, 2.0, 3.0]);
        assert_eq!(add_relu(&[1.0, -3.0], &[-0.5, 1.0]), vec![0.5, 0.0]);
        assert_eq!(relu_mask(&[2.0, 3.0], &[0.5, 0.0]), vec![2.0, 0.0]);
    }
}
