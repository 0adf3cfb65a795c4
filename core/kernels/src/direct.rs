//! A direct channels-last convolution for small channel counts (x86-64 with AVX2 and FMA): the
//! receptive field is read straight from the input, with no im2col copy, into a register tile of
//! 6 output pixels x 16 output channels. For the narrow layers of small ResNets (16 to 128
//! channels) this runs well ahead of im2col + GEMM, whose packing and copies dominate there.

use super::shape::ConvShape;

/// `true` when the direct kernel handles `s` on this machine.
pub fn applies(s: &ConvShape) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        s.o.is_multiple_of(8)
            && s.kkc() * s.o * 4 <= 512 * 1024
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = s;
        false
    }
}

/// Output rows `r0..r1` (each O values) of the convolution of `x` (N, H, W, C) with `wt`
/// (K K C x O) into `out`. Callers check [`applies`] first.
pub fn rows(x: &[f32], wt: &[f32], s: &ConvShape, r0: usize, r1: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(
            applies(s),
            "direct convolution called where it does not apply"
        );
        assert!(
            x.len() >= s.n * s.h * s.w * s.c
                && wt.len() >= s.kkc() * s.o
                && out.len() >= (r1 - r0) * s.o
        );
        // SAFETY: AVX2 and FMA were detected by `applies`; every pointer below stays inside the
        // slices, whose lengths were checked above.
        unsafe { avx2::rows(x, wt, s, r0, r1, out) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, wt, s, r0, r1, out);
        unreachable!("direct convolution is x86-64 only")
    }
}

// Register tiles are indexed by row and column on purpose: the loops unroll over constants.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod avx2 {
    use crate::shape::ConvShape;
    use std::arch::x86_64::*;

    const TILE: usize = 6;

    /// Pointer to input pixel (n, iy, ix), or to `zeros` when it is in the padding.
    #[inline(always)]
    unsafe fn pixel(
        x: *const f32,
        zeros: *const f32,
        s: &ConvShape,
        n: usize,
        iy: isize,
        ix: isize,
    ) -> *const f32 {
        if iy < 0 || ix < 0 || iy as usize >= s.h || ix as usize >= s.w {
            zeros
        } else {
            x.add(((n * s.h + iy as usize) * s.w + ix as usize) * s.c)
        }
    }

    /// One tile of `R` consecutive output rows starting at `r`, for output channels `ob..ob + 8 B`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const R: usize, const B: usize>(
        x: *const f32,
        zeros: *const f32,
        wt: *const f32,
        s: &ConvShape,
        r: usize,
        ob: usize,
        out: *mut f32,
    ) {
        let (oh, ow) = (s.oh(), s.ow());
        let mut acc = [[_mm256_setzero_ps(); B]; R];
        let mut origin = [(0usize, 0isize, 0isize); R];
        for (i, o) in origin.iter_mut().enumerate() {
            let row = r + i;
            let n = row / (oh * ow);
            let oy = (row / ow) % oh;
            let ox = row % ow;
            *o = (
                n,
                (oy * s.stride) as isize - s.pad as isize,
                (ox * s.stride) as isize - s.pad as isize,
            );
        }
        // interior tiles (every tap of every row inside the image) take fixed offsets
        let k = s.k as isize;
        let interior = origin.iter().all(|&(_, y0, x0)| {
            y0 >= 0 && x0 >= 0 && y0 + k <= s.h as isize && x0 + k <= s.w as isize
        });
        let mut base = [zeros; R];
        if interior {
            for i in 0..R {
                let (n, y0, x0) = origin[i];
                base[i] = x.add(((n * s.h + y0 as usize) * s.w + x0 as usize) * s.c);
            }
        }
        for ky in 0..s.k {
            for kx in 0..s.k {
                let mut src = [zeros; R];
                if interior {
                    let offset = (ky * s.w + kx) * s.c;
                    for i in 0..R {
                        src[i] = base[i].add(offset);
                    }
                } else {
                    for i in 0..R {
                        let (n, y0, x0) = origin[i];
                        src[i] = pixel(x, zeros, s, n, y0 + ky as isize, x0 + kx as isize);
                    }
                }
                let wtap = wt.add((ky * s.k + kx) * s.c * s.o + ob);
                for c in 0..s.c {
                    let wrow = wtap.add(c * s.o);
                    let mut w = [_mm256_setzero_ps(); B];
                    for (j, wj) in w.iter_mut().enumerate() {
                        *wj = _mm256_loadu_ps(wrow.add(8 * j));
                    }
                    for i in 0..R {
                        let v = _mm256_broadcast_ss(&*src[i].add(c));
                        for j in 0..B {
                            acc[i][j] = _mm256_fmadd_ps(v, w[j], acc[i][j]);
                        }
                    }
                }
            }
        }
        for i in 0..R {
            for j in 0..B {
                _mm256_storeu_ps(out.add(i * s.o + ob + 8 * j), acc[i][j]);
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows(
        x: &[f32],
        wt: &[f32],
        s: &ConvShape,
        r0: usize,
        r1: usize,
        out: &mut [f32],
    ) {
        let zeros = vec![0.0f32; s.c];
        let (xp, zp, wp) = (x.as_ptr(), zeros.as_ptr(), wt.as_ptr());
        let mut r = r0;
        while r < r1 {
            let count = (r1 - r).min(TILE);
            let dst = out.as_mut_ptr().add((r - r0) * s.o);
            let mut ob = 0;
            while ob < s.o {
                let wide = s.o - ob >= 16;
                match (count, wide) {
                    (TILE, true) => tile::<TILE, 2>(xp, zp, wp, s, r, ob, dst),
                    (TILE, false) => tile::<TILE, 1>(xp, zp, wp, s, r, ob, dst),
                    (_, true) => {
                        for i in 0..count {
                            tile::<1, 2>(xp, zp, wp, s, r + i, ob, dst.add(i * s.o));
                        }
                    }
                    (_, false) => {
                        for i in 0..count {
                            tile::<1, 1>(xp, zp, wp, s, r + i, ob, dst.add(i * s.o));
                        }
                    }
                }
                ob += if wide { 16 } else { 8 };
            }
            r += count;
        }
    }
}
