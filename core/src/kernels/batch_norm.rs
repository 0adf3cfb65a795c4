//! Channels-last batch normalisation: `x` is (rows x C) with rows = N H W (or N for 1-D).

use super::gemm::Element;
use rayon::prelude::*;

fn chunk_rows(c: usize) -> usize {
    ((1 << 16) / c.max(1)).max(16)
}

/// Per-channel mean and biased variance over the rows (f64 accumulation).
pub fn moments<T: Element>(x: &[T], c: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = x.len() / c;
    let (sum, sq) = x
        .par_chunks(chunk_rows(c) * c)
        .map(|part| {
            let mut s = vec![0.0f64; c];
            let mut q = vec![0.0f64; c];
            for row in part.chunks_exact(c) {
                for ((si, qi), v) in s.iter_mut().zip(q.iter_mut()).zip(row) {
                    let v = v.as_f64();
                    *si += v;
                    *qi += v * v;
                }
            }
            (s, q)
        })
        .reduce(
            || (vec![0.0; c], vec![0.0; c]),
            |(mut s1, mut q1), (s2, q2)| {
                s1.iter_mut().zip(s2).for_each(|(a, b)| *a += b);
                q1.iter_mut().zip(q2).for_each(|(a, b)| *a += b);
                (s1, q1)
            },
        );
    let n = rows.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let var = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| (q / n - m * m).max(0.0))
        .collect();
    (mean, var)
}

/// `y = x scale + shift` per channel, then ReLU if asked.
pub fn affine<T: Element>(x: &[T], c: usize, scale: &[T], shift: &[T], relu: bool) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(chunk_rows(c) * c)
        .zip(x.par_chunks(chunk_rows(c) * c))
        .for_each(|(out, inp)| {
            for (orow, irow) in out.chunks_exact_mut(c).zip(inp.chunks_exact(c)) {
                for j in 0..c {
                    let v = irow[j] * scale[j] + shift[j];
                    orow[j] = if relu && v < T::zero() { T::zero() } else { v };
                }
            }
        });
    y
}

/// The output gradient with the ReLU's mask applied (`y` is the op's output).
fn masked<T: Element>(dy: T, y: T, relu: bool) -> T {
    if relu && y <= T::zero() {
        T::zero()
    } else {
        dy
    }
}

/// Gradients of training-mode batch norm (+ ReLU): returns (dx, dgamma, dbeta).
#[allow(clippy::too_many_arguments)]
pub fn backward_train<T: Element>(
    x: &[T],
    y: &[T],
    dy: &[T],
    c: usize,
    mean: &[f64],
    invstd: &[f64],
    gamma: &[T],
    relu: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = (x.len() / c).max(1) as f64;
    let step = chunk_rows(c) * c;
    let (sum_dy, sum_dy_xhat) = x
        .par_chunks(step)
        .zip(y.par_chunks(step))
        .zip(dy.par_chunks(step))
        .map(|((xp, yp), dp)| {
            let mut s = vec![0.0f64; c];
            let mut sx = vec![0.0f64; c];
            for ((xr, yr), dr) in xp
                .chunks_exact(c)
                .zip(yp.chunks_exact(c))
                .zip(dp.chunks_exact(c))
            {
                for j in 0..c {
                    let g = masked(dr[j], yr[j], relu).as_f64();
                    s[j] += g;
                    sx[j] += g * (xr[j].as_f64() - mean[j]) * invstd[j];
                }
            }
            (s, sx)
        })
        .reduce(
            || (vec![0.0; c], vec![0.0; c]),
            |(mut a, mut b), (c1, d1)| {
                a.iter_mut().zip(c1).for_each(|(p, q)| *p += q);
                b.iter_mut().zip(d1).for_each(|(p, q)| *p += q);
                (a, b)
            },
        );
    let k: Vec<T> = (0..c)
        .map(|j| T::of(gamma[j].as_f64() * invstd[j]))
        .collect();
    let mean_dy: Vec<T> = sum_dy.iter().map(|s| T::of(s / rows)).collect();
    let mean_dy_xhat: Vec<T> = sum_dy_xhat.iter().map(|s| T::of(s / rows)).collect();
    let m: Vec<T> = mean.iter().map(|v| T::of(*v)).collect();
    let inv: Vec<T> = invstd.iter().map(|v| T::of(*v)).collect();
    let mut dx = vec![T::zero(); x.len()];
    dx.par_chunks_mut(step)
        .zip(x.par_chunks(step))
        .zip(y.par_chunks(step).zip(dy.par_chunks(step)))
        .for_each(|((out, xp), (yp, dp))| {
            for (((o, xr), yr), dr) in out
                .chunks_exact_mut(c)
                .zip(xp.chunks_exact(c))
                .zip(yp.chunks_exact(c))
                .zip(dp.chunks_exact(c))
            {
                for j in 0..c {
                    let g = masked(dr[j], yr[j], relu);
                    let xhat = (xr[j] - m[j]) * inv[j];
                    o[j] = k[j] * (g - mean_dy[j] - xhat * mean_dy_xhat[j]);
                }
            }
        });
    let dgamma = sum_dy_xhat.into_iter().map(T::of).collect();
    let dbeta = sum_dy.into_iter().map(T::of).collect();
    (dx, dgamma, dbeta)
}

/// Gradient of `y = relu?(x scale + shift)` with respect to `x`.
pub fn backward_affine<T: Element>(y: &[T], dy: &[T], c: usize, scale: &[T], relu: bool) -> Vec<T> {
    let step = chunk_rows(c) * c;
    let mut dx = vec![T::zero(); dy.len()];
    dx.par_chunks_mut(step)
        .zip(y.par_chunks(step).zip(dy.par_chunks(step)))
        .for_each(|(out, (yp, dp))| {
            for ((o, yr), dr) in out
                .chunks_exact_mut(c)
                .zip(yp.chunks_exact(c))
                .zip(dp.chunks_exact(c))
            {
                for j in 0..c {
                    o[j] = masked(dr[j], yr[j], relu) * scale[j];
                }
            }
        });
    dx
}
