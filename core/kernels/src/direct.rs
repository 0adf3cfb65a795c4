//! A direct channels-last convolution for small channel counts (x86-64 with AVX-512, or AVX2 and
//! FMA): the receptive field is read straight from the input, with no im2col copy, into a
//! register tile of output pixels of one output row x vectors of output channels: up to 6 pixels
//! x 2 vectors (16 channels) with AVX2's 16 registers; with AVX-512's 32, up to 24 accumulators
//! (12 pixels x 1 or 2 vectors, or 6 pixels x 4 vectors), so that a 16-channel layer or a row of
//! 4 pixels still has enough independent chains to hide the multiply-adds' latency. For each
//! kernel row, the K taps of a pixel are K adjacent input pixels: one run of K C values, read in
//! place; only pixels whose run crosses the left or right edge copy it, with zeros for the
//! padding, and kernel rows that fall in the top or bottom padding are skipped (at 4x4 and 7x7
//! outputs those are 17% and 10% of the arithmetic). For the narrow layers of small ResNets (1 to
//! 128 channels) this runs well ahead of im2col + GEMM, whose packing and copies dominate there.
//! Both paths accumulate each output in the same order (taps, then input channels, one fused
//! multiply-add each), whatever the tile: their results are bit-identical.

use super::isa::{self, Isa};
use super::shape::ConvShape;

/// The path that handles `s` on this machine under the current [`isa::active`] limit, if the
/// direct kernel applies at all.
pub fn path(s: &ConvShape) -> Option<Isa> {
    if s.kkc() * s.o * 4 > 512 * 1024 {
        return None;
    }
    match isa::active() {
        Isa::Avx512 if s.o.is_multiple_of(16) => Some(Isa::Avx512),
        Isa::Avx512 | Isa::Avx2 if s.o.is_multiple_of(8) => Some(Isa::Avx2),
        _ => None,
    }
}

/// `true` when the direct kernel handles `s` on this machine.
pub fn applies(s: &ConvShape) -> bool {
    path(s).is_some()
}

/// Output rows `r0..r1` (each O values) of the convolution of `x` (N, H, W, C) with `wt`
/// (K K C x O) into `out`, on the path `isa` (from [`path`]; it must be one the host has).
pub fn rows(isa: Isa, x: &[f32], wt: &[f32], s: &ConvShape, r0: usize, r1: usize, out: &mut [f32]) {
    assert!(
        isa != Isa::Portable && isa <= isa::detected(),
        "the direct convolution cannot run on the {isa} path here"
    );
    assert!(
        x.len() >= s.n * s.h * s.w * s.c
            && wt.len() >= s.kkc() * s.o
            && out.len() >= (r1 - r0) * s.o
            && s.o.is_multiple_of(if isa == Isa::Avx512 { 16 } else { 8 })
    );
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the host has the instruction set (checked above against `isa::detected`);
        // every pointer below stays inside the slices, whose lengths were checked above, and the
        // output channels come in whole vectors of the path's width.
        unsafe {
            match isa {
                Isa::Avx512 => avx512::rows(x, wt, s, r0, r1, out),
                _ => avx2::rows(x, wt, s, r0, r1, out),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, wt, s, r0, r1, out);
        unreachable!("direct convolution is x86-64 only")
    }
}

/// The K taps of one kernel row for an output pixel whose first tap is at column `x0` of
/// `image_row` (a row of W pixels of C channels): K C values read in place when all K taps are
/// inside the row, or copied into `spare` (K C values) with zeros for the taps in the padding.
///
/// # Safety
/// `image_row` must point to a whole image row of `s` and `spare` to K C writable values.
#[inline(always)]
pub(crate) unsafe fn kernel_row_run(
    image_row: *const f32,
    x0: isize,
    s: &ConvShape,
    spare: *mut f32,
) -> *const f32 {
    if x0 >= 0 && x0 as usize + s.k <= s.w {
        return image_row.add(x0 as usize * s.c);
    }
    for kx in 0..s.k {
        let ix = x0 + kx as isize;
        let tap = spare.add(kx * s.c);
        if ix >= 0 && (ix as usize) < s.w {
            std::ptr::copy_nonoverlapping(image_row.add(ix as usize * s.c), tap, s.c);
        } else {
            std::ptr::write_bytes(tap, 0, s.c);
        }
    }
    spare
}

// Register tiles are indexed by row and column on purpose: the loops unroll over constants.
/// A module of the direct kernel for one instruction set: its vector type, width, target
/// features and intrinsics.
macro_rules! direct_kernel {
    ($module:ident, $features:literal, $vector:ty, $lanes:literal, $zero:ident, $load:ident,
     $splat:ident, $fma:ident, $store:ident, tile: $tile:literal,
     accumulators: $accumulators:literal, vectors: $vectors:literal,
     widths: [$($width:literal),*]) => {
        #[cfg(target_arch = "x86_64")]
        #[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
        mod $module {
            use super::kernel_row_run;
            use crate::shape::ConvShape;
            use std::arch::x86_64::*;

            /// The most output pixels in one register tile.
            const TILE: usize = $tile;

            /// The most accumulator registers of a tile (pixels x vectors): enough independent
            /// chains to hide the latency of the fused multiply-adds, with room left for the
            /// weights and a broadcast.
            const ACCUMULATORS: usize = $accumulators;

            /// The most vectors of output channels in one tile.
            const VECTORS: usize = $vectors;

            /// Where one tile's output pixels lie: image `n`, output row `oy`, columns from
            /// `ox`, output channels from `ob`.
            #[derive(Clone, Copy)]
            struct At {
                n: usize,
                oy: usize,
                ox: usize,
                ob: usize,
            }

            /// One tile of `R` output pixels of one output row, for output channels
            /// `ob..ob + LANES B`. For each kernel row inside the image, the taps of a kernel row
            /// (K pixels of C channels) are one run of K C values, read in place, or, for a
            /// pixel whose run crosses the left or right edge, from `scratch` (R runs), filled
            /// with the run and zeros for the padding. Kernel rows in the padding are skipped.
            #[target_feature(enable = $features)]
            unsafe fn tile<const R: usize, const B: usize>(
                x: *const f32,
                wt: *const f32,
                s: &ConvShape,
                at: At,
                out: *mut f32,
                scratch: *mut f32,
            ) {
                let run = s.k * s.c;
                let y0 = (at.oy * s.stride) as isize - s.pad as isize;
                let ky0 = (-y0).max(0) as usize;
                let ky1 = (s.h as isize - y0).clamp(0, s.k as isize) as usize;
                let mut x0 = [0isize; R];
                for (i, v) in x0.iter_mut().enumerate() {
                    *v = ((at.ox + i) * s.stride) as isize - s.pad as isize;
                }
                let mut acc: [[$vector; B]; R] = [[$zero(); B]; R];
                for ky in ky0..ky1 {
                    let image_row = x.add((at.n * s.h + (y0 + ky as isize) as usize) * s.w * s.c);
                    let mut src = [x; R];
                    for i in 0..R {
                        src[i] = kernel_row_run(image_row, x0[i], s, scratch.add(i * run));
                    }
                    let mut wrow = wt.add(ky * run * s.o + at.ob);
                    for j in 0..run {
                        let mut w: [$vector; B] = [$zero(); B];
                        for (b, wb) in w.iter_mut().enumerate() {
                            *wb = $load(wrow.add($lanes * b));
                        }
                        for i in 0..R {
                            let v = $splat(*src[i].add(j));
                            for b in 0..B {
                                acc[i][b] = $fma(v, w[b], acc[i][b]);
                            }
                        }
                        wrow = wrow.add(s.o);
                    }
                }
                for i in 0..R {
                    for b in 0..B {
                        $store(out.add(i * s.o + at.ob + $lanes * b), acc[i][b]);
                    }
                }
            }

            /// Every tile of `R` (1 to [`TILE`]) pixels starting at `at`, over all output
            /// channels: groups of 4 vectors where the accumulators allow it, then pairs, then
            /// one vector if one is left.
            #[target_feature(enable = $features)]
            unsafe fn tiles<const R: usize>(
                x: *const f32,
                wt: *const f32,
                s: &ConvShape,
                at: At,
                out: *mut f32,
                scratch: *mut f32,
            ) {
                let mut ob = 0;
                while ob < s.o {
                    let at = At { ob, ..at };
                    if VECTORS >= 4 && R * 4 <= ACCUMULATORS && s.o - ob >= 4 * $lanes {
                        tile::<R, 4>(x, wt, s, at, out, scratch);
                        ob += 4 * $lanes;
                    } else if R * 2 <= ACCUMULATORS && s.o - ob >= 2 * $lanes {
                        tile::<R, 2>(x, wt, s, at, out, scratch);
                        ob += 2 * $lanes;
                    } else {
                        tile::<R, 1>(x, wt, s, at, out, scratch);
                        ob += $lanes;
                    }
                }
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn rows(
                x: &[f32],
                wt: &[f32],
                s: &ConvShape,
                r0: usize,
                r1: usize,
                out: &mut [f32],
            ) {
                let mut scratch = vec![0.0f32; TILE * s.k * s.c];
                let (xp, wp, sp) = (x.as_ptr(), wt.as_ptr(), scratch.as_mut_ptr());
                let (oh, ow) = (s.oh(), s.ow());
                let mut r = r0;
                while r < r1 {
                    // the part of one output row in r..r1, cut into tiles of nearly equal size
                    let ox0 = r % ow;
                    let len = (ow - ox0).min(r1 - r);
                    let count = len.div_ceil(TILE);
                    let mut ox = ox0;
                    for t in 0..count {
                        let width = (ox0 + len - ox).div_ceil(count - t);
                        let at = At {
                            n: r / (oh * ow),
                            oy: (r / ow) % oh,
                            ox,
                            ob: 0,
                        };
                        let dst = out.as_mut_ptr().add((r + ox - ox0 - r0) * s.o);
                        match width {
                            $($width => tiles::<$width>(xp, wp, s, at, dst, sp),)*
                            _ => tiles::<1>(xp, wp, s, at, dst, sp),
                        }
                        ox += width;
                    }
                    r += len;
                }
            }
        }
    };
}

direct_kernel!(
    avx2,
    "avx2,fma",
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps,
    tile: 6,
    accumulators: 12,
    vectors: 2,
    widths: [6, 5, 4, 3, 2]
);
direct_kernel!(
    avx512,
    "avx512f",
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    tile: 12,
    accumulators: 24,
    vectors: 4,
    widths: [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2]
);
