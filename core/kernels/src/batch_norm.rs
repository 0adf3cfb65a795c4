//! Channels-last batch normalisation: `x` is (rows x C) with rows = N H W (or N for 1-D).

use super::gemm::Element;
use super::par_build;
use rayon::prelude::*;

fn chunk_rows(c: usize) -> usize {
    ((1 << 16) / c.max(1)).max(16)
}

/// Per-channel mean and biased variance over the rows. Each chunk of rows (a few thousand) is
/// reduced in the element type with two passes (mean, then centred squares) while it sits in
/// cache; chunks are combined in f64 with Chan et al.'s pairwise update, which keeps the variance
/// accurate when the mean is large against the spread.
pub fn moments<T: Element>(x: &[T], c: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = x.len() / c.max(1);
    let partials: Vec<(f64, Vec<f64>, Vec<f64>)> = x
        .par_chunks(chunk_rows(c) * c)
        .map(|part| {
            let n = part.len() / c;
            let mut sum = vec![T::zero(); c];
            for row in part.chunks_exact(c) {
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += *v;
                }
            }
            let inv = T::one() / T::of(n as f64);
            let mean: Vec<T> = sum.iter().map(|s| *s * inv).collect();
            let mut m2 = vec![T::zero(); c];
            for row in part.chunks_exact(c) {
                for ((q, v), m) in m2.iter_mut().zip(row).zip(&mean) {
                    let d = *v - *m;
                    *q += d * d;
                }
            }
            (
                n as f64,
                mean.into_iter().map(T::as_f64).collect(),
                m2.into_iter().map(T::as_f64).collect(),
            )
        })
        .collect();
    let mut count = 0.0f64;
    let mut mean = vec![0.0f64; c];
    let mut m2 = vec![0.0f64; c];
    for (n, pm, pq) in partials {
        let total = count + n;
        for j in 0..c {
            let delta = pm[j] - mean[j];
            mean[j] += delta * n / total;
            m2[j] += pq[j] + delta * delta * count * n / total;
        }
        count = total;
    }
    let var = m2
        .iter()
        .map(|q| (q / rows.max(1) as f64).max(0.0))
        .collect();
    (mean, var)
}

/// `y = x scale + shift` per channel, then ReLU if asked.
pub fn affine<T: Element>(x: &[T], c: usize, scale: &[T], shift: &[T], relu: bool) -> Vec<T> {
    let step = chunk_rows(c) * c;
    par_build(x.len(), step, T::zero(), |i, out| {
        let inp = &x[i * step..i * step + out.len()];
        for (orow, irow) in out.chunks_exact_mut(c).zip(inp.chunks_exact(c)) {
            for j in 0..c {
                let v = irow[j] * scale[j] + shift[j];
                orow[j] = if relu && v < T::zero() { T::zero() } else { v };
            }
        }
    })
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
    let m: Vec<T> = mean.iter().map(|v| T::of(*v)).collect();
    let inv: Vec<T> = invstd.iter().map(|v| T::of(*v)).collect();
    // per chunk, sums in the element type (a few thousand rows); across chunks, in f64
    let (sum_dy, sum_dy_xhat) = x
        .par_chunks(step)
        .zip(y.par_chunks(step))
        .zip(dy.par_chunks(step))
        .map(|((xp, yp), dp)| {
            let mut s = vec![T::zero(); c];
            let mut sx = vec![T::zero(); c];
            for ((xr, yr), dr) in xp
                .chunks_exact(c)
                .zip(yp.chunks_exact(c))
                .zip(dp.chunks_exact(c))
            {
                for j in 0..c {
                    let g = masked(dr[j], yr[j], relu);
                    s[j] += g;
                    sx[j] += g * (xr[j] - m[j]) * inv[j];
                }
            }
            (
                s.into_iter().map(T::as_f64).collect::<Vec<f64>>(),
                sx.into_iter().map(T::as_f64).collect::<Vec<f64>>(),
            )
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
    let dx = par_build(x.len(), step, T::zero(), |i, out| {
        let at = i * step..i * step + out.len();
        let (xp, yp, dp) = (&x[at.clone()], &y[at.clone()], &dy[at]);
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
    par_build(dy.len(), step, T::zero(), |i, out| {
        let at = i * step..i * step + out.len();
        let (yp, dp) = (&y[at.clone()], &dy[at]);
        for ((o, yr), dr) in out
            .chunks_exact_mut(c)
            .zip(yp.chunks_exact(c))
            .zip(dp.chunks_exact(c))
        {
            for j in 0..c {
                o[j] = masked(dr[j], yr[j], relu) * scale[j];
            }
        }
    })
}
