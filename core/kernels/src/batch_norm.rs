//! Channels-last batch normalisation: `x` is (rows x C) with rows = N H W (or N for 1-D).

use super::gemm::Element;
use super::par_build;
use crate::share::map_tasks;
use crate::simd::vectorised;

fn chunk_rows(c: usize) -> usize {
    ((1 << 16) / c.max(1)).max(16)
}

/// Per-channel mean and biased variance over the rows. Each chunk of rows (a few thousand) is
/// reduced in the element type with two passes (mean, then centred squares) while it sits in
/// cache; chunks are combined in f64 with Chan et al.'s pairwise update, which keeps the variance
/// accurate when the mean is large against the spread.
pub fn moments<T: Element>(x: &[T], c: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = x.len() / c.max(1);
    let step = chunk_rows(c) * c;
    let partials: Vec<(f64, Vec<f64>, Vec<f64>)> = map_tasks(x.len().div_ceil(step), |i| {
        let part = &x[i * step..((i + 1) * step).min(x.len())];
        let n = part.len() / c;
        let mut sum = vec![T::zero(); c];
        vectorised(
            #[inline(always)]
            || {
                for row in part.chunks_exact(c) {
                    for (s, v) in sum.iter_mut().zip(row) {
                        *s += *v;
                    }
                }
            },
        );
        let inv = T::one() / T::of(n as f64);
        let mean: Vec<T> = sum.iter().map(|s| *s * inv).collect();
        let mut m2 = vec![T::zero(); c];
        vectorised(
            #[inline(always)]
            || {
                for row in part.chunks_exact(c) {
                    for ((q, v), m) in m2.iter_mut().zip(row).zip(&mean) {
                        let d = *v - *m;
                        *q += d * d;
                    }
                }
            },
        );
        (
            n as f64,
            mean.into_iter().map(T::as_f64).collect(),
            m2.into_iter().map(T::as_f64).collect(),
        )
    });
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

/// One value of [`affine`]: `x a + b`, then ReLU if asked (every affine pass, fused or not,
/// computes it here, so that they agree to the bit).
#[inline(always)]
fn affine_value<T: Element>(x: T, a: T, b: T, relu: bool) -> T {
    let v = x * a + b;
    if relu && v < T::zero() {
        T::zero()
    } else {
        v
    }
}

/// `y = x scale + shift` per channel, then ReLU if asked.
pub fn affine<T: Element>(x: &[T], c: usize, scale: &[T], shift: &[T], relu: bool) -> Vec<T> {
    let step = chunk_rows(c) * c;
    par_build(x.len(), step, T::zero(), |i, out| {
        let inp = &x[i * step..i * step + out.len()];
        vectorised(
            #[inline(always)]
            || {
                for (orow, irow) in out.chunks_exact_mut(c).zip(inp.chunks_exact(c)) {
                    for ((o, x), (a, b)) in orow.iter_mut().zip(irow).zip(scale.iter().zip(shift)) {
                        *o = affine_value(*x, *a, *b, relu);
                    }
                }
            },
        )
    })
}

/// [`affine`] in place on whole rows of `c` values, on the calling thread (an epilogue of
/// [`crate::conv::forward_then`]): the same values [`affine`] returns.
pub fn affine_in_place<T: Element>(x: &mut [T], c: usize, scale: &[T], shift: &[T], relu: bool) {
    vectorised(
        #[inline(always)]
        || {
            for row in x.chunks_exact_mut(c) {
                for (o, (a, b)) in row.iter_mut().zip(scale.iter().zip(shift)) {
                    *o = affine_value(*o, *a, *b, relu);
                }
            }
        },
    )
}

/// [`affine`] without ReLU, then [`crate::elementwise::add_relu`] with `residual`, in place on
/// whole rows of `c` values in one pass, on the calling thread: the same values as the two
/// passes.
pub fn affine_add_relu_in_place(
    x: &mut [f32],
    c: usize,
    scale: &[f32],
    shift: &[f32],
    residual: &[f32],
) {
    vectorised(
        #[inline(always)]
        || {
            for (row, res) in x.chunks_exact_mut(c).zip(residual.chunks_exact(c)) {
                for ((o, r), (a, b)) in row.iter_mut().zip(res).zip(scale.iter().zip(shift)) {
                    *o = (affine_value(*o, *a, *b, false) + r).max(0.0);
                }
            }
        },
    )
}

/// The output gradient with the ReLU's mask applied (`y` is the op's output).
#[inline(always)]
fn masked<T: Element>(dy: T, y: T, relu: bool) -> T {
    if relu && y <= T::zero() {
        T::zero()
    } else {
        dy
    }
}

/// Gradients of training-mode batch norm (+ ReLU): returns (dx, dgamma, dbeta).
///
/// Two passes over the rows. The first sums, per channel, the masked output gradient `g` and
/// `g (x - mean)`; the second writes `dx = k g + p x + q` with per-channel constants folded from
/// those sums (`k = gamma invstd`, `p = -k invstd mean(g xhat)`, `q = -k mean(g) - p mean`).
/// The loops run over whole rows with no indexing, so that they compile to vector code.
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
    // per chunk, sums in the element type (a few thousand rows); across chunks, in f64
    // the chunks' sums are added in chunk order, whichever thread computed each
    let partials = map_tasks(x.len().div_ceil(step), |i| {
        let range = i * step..((i + 1) * step).min(x.len());
        let (xp, yp, dp) = (&x[range.clone()], &y[range.clone()], &dy[range]);
        let mut s = vec![T::zero(); c];
        let mut sx = vec![T::zero(); c];
        vectorised(
            #[inline(always)]
            || {
                for ((xr, yr), dr) in xp
                    .chunks_exact(c)
                    .zip(yp.chunks_exact(c))
                    .zip(dp.chunks_exact(c))
                {
                    for ((((s, sx), x), y), (d, m)) in s
                        .iter_mut()
                        .zip(sx.iter_mut())
                        .zip(xr)
                        .zip(yr)
                        .zip(dr.iter().zip(&m))
                    {
                        let g = masked(*d, *y, relu);
                        *s += g;
                        *sx += g * (*x - *m);
                    }
                }
            },
        );
        (
            s.into_iter().map(T::as_f64).collect::<Vec<f64>>(),
            sx.into_iter().map(T::as_f64).collect::<Vec<f64>>(),
        )
    });
    let (mut sum_dy, mut sum_dy_centred) = (vec![0.0f64; c], vec![0.0f64; c]);
    for (part_dy, part_centred) in partials {
        sum_dy.iter_mut().zip(part_dy).for_each(|(p, q)| *p += q);
        sum_dy_centred
            .iter_mut()
            .zip(part_centred)
            .for_each(|(p, q)| *p += q);
    }
    // sum of g xhat = invstd * sum of g (x - mean)
    let sum_dy_xhat: Vec<f64> = sum_dy_centred
        .iter()
        .zip(invstd)
        .map(|(s, i)| s * i)
        .collect();
    // dx = k (g - mean(g) - xhat mean(g xhat)) = k g + p x + q
    let mut k = Vec::with_capacity(c);
    let mut p = Vec::with_capacity(c);
    let mut q = Vec::with_capacity(c);
    for j in 0..c {
        let kj = gamma[j].as_f64() * invstd[j];
        let pj = -kj * invstd[j] * sum_dy_xhat[j] / rows;
        k.push(T::of(kj));
        p.push(T::of(pj));
        q.push(T::of(-kj * sum_dy[j] / rows - pj * mean[j]));
    }
    let dx = par_build(x.len(), step, T::zero(), |i, out| {
        let at = i * step..i * step + out.len();
        let (xp, yp, dp) = (&x[at.clone()], &y[at.clone()], &dy[at]);
        vectorised(
            #[inline(always)]
            || {
                for (((o, xr), yr), dr) in out
                    .chunks_exact_mut(c)
                    .zip(xp.chunks_exact(c))
                    .zip(yp.chunks_exact(c))
                    .zip(dp.chunks_exact(c))
                {
                    for ((((o, x), y), d), ((k, p), q)) in o
                        .iter_mut()
                        .zip(xr)
                        .zip(yr)
                        .zip(dr)
                        .zip(k.iter().zip(&p).zip(&q))
                    {
                        *o = *k * masked(*d, *y, relu) + *p * *x + *q;
                    }
                }
            },
        )
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
        vectorised(
            #[inline(always)]
            || {
                for ((o, yr), dr) in out
                    .chunks_exact_mut(c)
                    .zip(yp.chunks_exact(c))
                    .zip(dp.chunks_exact(c))
                {
                    for (((o, y), d), a) in o.iter_mut().zip(yr).zip(dr).zip(scale) {
                        *o = masked(*d, *y, relu) * *a;
                    }
                }
            },
        )
    })
}

/// [`backward_affine`] in place: `dy` (whole rows of `c` values) becomes the gradient of the
/// batch norm's input, `y` being the same rows of its output; on the calling thread (an epilogue
/// of [`crate::conv::input_grad_then`]), with the values [`backward_affine`] returns.
pub fn backward_affine_in_place<T: Element>(
    dy: &mut [T],
    y: &[T],
    c: usize,
    scale: &[T],
    relu: bool,
) {
    vectorised(
        #[inline(always)]
        || {
            for (dr, yr) in dy.chunks_exact_mut(c).zip(y.chunks_exact(c)) {
                for ((d, y), a) in dr.iter_mut().zip(yr).zip(scale) {
                    *d = masked(*d, *y, relu) * *a;
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_matches_the_definition_over_several_chunks() {
        // 5000 rows of 16 channels: two chunks of rows (4096 + 904)
        let (rows, c) = (5000usize, 16usize);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let x: Vec<f64> = (0..rows * c).map(|i| next() + (i % c) as f64).collect();
        let dy: Vec<f64> = (0..rows * c).map(|_| next()).collect();
        let gamma: Vec<f64> = (0..c).map(|j| 0.5 + j as f64 * 0.1).collect();
        let beta: Vec<f64> = (0..c).map(|j| j as f64 * 0.05 - 0.4).collect();
        let (mean, var) = moments(&x, c);
        let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        let scale: Vec<f64> = (0..c).map(|j| gamma[j] * invstd[j]).collect();
        let shift: Vec<f64> = (0..c).map(|j| beta[j] - mean[j] * scale[j]).collect();
        for relu in [false, true] {
            let y = affine(&x, c, &scale, &shift, relu);
            let (dx, dgamma, dbeta) = backward_train(&x, &y, &dy, c, &mean, &invstd, &gamma, relu);
            for j in 0..c {
                // the textbook expressions, per channel, in f64
                let g: Vec<f64> = (0..rows)
                    .map(|r| {
                        let i = r * c + j;
                        if relu && y[i] <= 0.0 {
                            0.0
                        } else {
                            dy[i]
                        }
                    })
                    .collect();
                let xhat: Vec<f64> = (0..rows)
                    .map(|r| (x[r * c + j] - mean[j]) * invstd[j])
                    .collect();
                let sum_g: f64 = g.iter().sum();
                let sum_gx: f64 = g.iter().zip(&xhat).map(|(a, b)| a * b).sum();
                assert!((dbeta[j] - sum_g).abs() < 1e-9);
                assert!((dgamma[j] - sum_gx).abs() < 1e-9);
                for r in 0..rows {
                    let want = gamma[j] * invstd[j] / rows as f64
                        * (rows as f64 * g[r] - sum_g - xhat[r] * sum_gx);
                    assert!((dx[r * c + j] - want).abs() < 1e-9, "relu {relu} row {r}");
                }
            }
        }
    }
}
