//! A direct channels-last convolution with 1 to 4 output channels (x86-64 with AVX2 and FMA, so
//! also on AVX-512 hosts): each output is a dot product of its receptive field with one kernel,
//! vectorised along the field. It serves the input gradient of a first layer (1 channel for
//! grey-scale images, 3 for colour), which is a convolution of the output gradient with as many
//! output channels as the image has: the direct kernel of `direct.rs` vectorises over output
//! channels and needs whole vectors of them, and im2col + GEMM + a scatter-add took 8.1 ms for
//! the 1-channel stem of the small ResNet on 256 images, against 3.4 ms here.
//!
//! As in `direct.rs`, the K taps of a kernel row are K adjacent input pixels, one run of K C
//! values read in place (or copied with zeros where a run crosses the left or right edge), and
//! kernel rows in the top or bottom padding are skipped.

use super::isa::{self, Isa};
use super::shape::ConvShape;

/// The most output channels this kernel takes.
pub const MAX_OUTPUTS: usize = 4;

/// `true` when this kernel handles `s` on this machine (under the current [`isa::active`] limit).
pub fn applies(s: &ConvShape) -> bool {
    (1..=MAX_OUTPUTS).contains(&s.o) && isa::active() >= Isa::Avx2
}

/// Reorders `wt` (K K C x O) into one row of K K C values per output channel (O x K K C).
pub fn kernels_by_output(wt: &[f32], s: &ConvShape) -> Vec<f32> {
    let kkc = s.kkc();
    (0..s.o)
        .flat_map(|o| (0..kkc).map(move |j| wt[j * s.o + o]))
        .collect()
}

/// Output rows `r0..r1` (each O values) of the convolution of `x` (N, H, W, C) with the kernels
/// `by_output` (from [`kernels_by_output`]) into `out`. Only where [`applies`] holds.
pub fn rows(x: &[f32], by_output: &[f32], s: &ConvShape, r0: usize, r1: usize, out: &mut [f32]) {
    assert!(
        (1..=MAX_OUTPUTS).contains(&s.o) && isa::detected() >= Isa::Avx2,
        "the narrow convolution takes 1 to {MAX_OUTPUTS} outputs on AVX2 hosts"
    );
    assert!(
        x.len() >= s.n * s.h * s.w * s.c
            && by_output.len() >= s.kkc() * s.o
            && out.len() >= (r1 - r0) * s.o
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the host has AVX2 and FMA (checked above); every pointer stays inside the slices,
    // whose lengths were checked above.
    unsafe {
        match s.o {
            1 => avx2::rows::<6, 1>(x, by_output, s, r0, r1, out),
            2 => avx2::rows::<6, 2>(x, by_output, s, r0, r1, out),
            3 => avx2::rows::<4, 3>(x, by_output, s, r0, r1, out),
            _ => avx2::rows::<3, 4>(x, by_output, s, r0, r1, out),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, by_output, s, r0, r1, out);
        unreachable!("the narrow convolution is x86-64 only")
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod avx2 {
    use crate::direct::kernel_row_run;
    use crate::shape::ConvShape;
    use std::arch::x86_64::*;

    /// Sum of the 8 lanes of `v`.
    #[inline(always)]
    unsafe fn lanes_sum(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
    }

    /// `R` pixels of one output row (image `n`, row `oy`, columns from `ox`), all `O` outputs.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const O: usize>(
        x: *const f32,
        by_output: *const f32,
        s: &ConvShape,
        (n, oy, ox): (usize, usize, usize),
        count: usize,
        out: *mut f32,
        scratch: *mut f32,
    ) {
        let run = s.k * s.c;
        let kkc = s.kkc();
        let y0 = (oy * s.stride) as isize - s.pad as isize;
        let ky0 = (-y0).max(0) as usize;
        let ky1 = (s.h as isize - y0).clamp(0, s.k as isize) as usize;
        let mut acc = [[_mm256_setzero_ps(); O]; R];
        let mut tail = [[0.0f32; O]; R];
        let whole = run / 8 * 8;
        for ky in ky0..ky1 {
            let image_row = x.add((n * s.h + (y0 + ky as isize) as usize) * s.w * s.c);
            let mut src = [x; R];
            for i in 0..count {
                let x0 = ((ox + i) * s.stride) as isize - s.pad as isize;
                src[i] = kernel_row_run(image_row, x0, s, scratch.add(i * run));
            }
            // pixels past `count` repeat the first one; their sums are never stored
            for i in count..R {
                src[i] = src[0];
            }
            let kernels = by_output.add(ky * run);
            let mut j = 0;
            while j < whole {
                let mut w = [_mm256_setzero_ps(); O];
                for o in 0..O {
                    w[o] = _mm256_loadu_ps(kernels.add(o * kkc + j));
                }
                for i in 0..R {
                    let v = _mm256_loadu_ps(src[i].add(j));
                    for o in 0..O {
                        acc[i][o] = _mm256_fmadd_ps(v, w[o], acc[i][o]);
                    }
                }
                j += 8;
            }
            for j in whole..run {
                for i in 0..R {
                    for o in 0..O {
                        tail[i][o] += *src[i].add(j) * *kernels.add(o * kkc + j);
                    }
                }
            }
        }
        for i in 0..count {
            for o in 0..O {
                *out.add(i * O + o) = lanes_sum(acc[i][o]) + tail[i][o];
            }
        }
    }

    /// Output rows `r0..r1`, in tiles of up to `R` pixels of one output row.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows<const R: usize, const O: usize>(
        x: &[f32],
        by_output: &[f32],
        s: &ConvShape,
        r0: usize,
        r1: usize,
        out: &mut [f32],
    ) {
        let mut scratch = vec![0.0f32; R * s.k * s.c];
        let (oh, ow) = (s.oh(), s.ow());
        let mut r = r0;
        while r < r1 {
            let ox = r % ow;
            let count = (ow - ox).min(r1 - r).min(R);
            let at = (r / (oh * ow), (r / ow) % oh, ox);
            let dst = out.as_mut_ptr().add((r - r0) * O);
            tile::<R, O>(
                x.as_ptr(),
                by_output.as_ptr(),
                s,
                at,
                count,
                dst,
                scratch.as_mut_ptr(),
            );
            r += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::weights_to_kkco;

    #[test]
    fn every_output_count_matches_the_definition_over_partial_rows() {
        if isa::detected() < Isa::Avx2 {
            return; // not on this host
        }
        // runs of 3 x 5 = 15 values: one vector and a tail of 7; stride 2 crosses both edges
        for &(k, stride, pad, c) in &[(3, 1, 1, 5), (3, 2, 1, 16), (1, 1, 0, 9)] {
            for o in 1..=MAX_OUTPUTS {
                let s = ConvShape {
                    n: 2,
                    h: 6,
                    w: 11,
                    c,
                    o,
                    k,
                    stride,
                    pad,
                };
                let value = |i: usize, seed: usize| {
                    ((i * 7919 + seed * 104_729) % 201) as f32 / 100.0 - 1.0
                };
                let x: Vec<f32> = (0..s.n * s.h * s.w * s.c).map(|i| value(i, 1)).collect();
                let w: Vec<f32> = (0..s.o * s.c * k * k).map(|i| value(i, 2)).collect();
                let wt = weights_to_kkco(&w, &s);
                let by_output = kernels_by_output(&wt, &s);
                let mut out = vec![f32::NAN; s.rows() * o];
                // an uneven split of the rows, to cover parts of output rows
                let mid = 4;
                rows(&x, &by_output, &s, 0, mid, &mut out[..mid * o]);
                rows(&x, &by_output, &s, mid, s.rows(), &mut out[mid * o..]);
                let (oh, ow) = (s.oh(), s.ow());
                for r in 0..s.rows() {
                    let (n, oy, ox) = (r / (oh * ow), (r / ow) % oh, r % ow);
                    for oc in 0..o {
                        let mut want = 0.0f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy as usize >= s.h || ix as usize >= s.w {
                                    continue;
                                }
                                for ci in 0..c {
                                    let xv =
                                        x[((n * s.h + iy as usize) * s.w + ix as usize) * c + ci];
                                    let wv = w[((oc * c + ci) * k + ky) * k + kx];
                                    want += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        let got = f64::from(out[r * o + oc]);
                        assert!(
                            (got - want).abs() < 1e-4,
                            "k{k} s{stride} c{c} o{o} row {r} output {oc}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
