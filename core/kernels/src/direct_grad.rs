//! The weight gradient of a narrow convolution without im2col (x86-64 with AVX-512, or AVX2 and
//! FMA): `dW[j][o] += sum over output rows r of field(r)[j] dy[r][o]`, where
//! `j = (ky K + kx) C + c` runs over the receptive field. As in `direct.rs`, the K taps of one
//! kernel row of an output pixel are one run of K C input values, read in place (or copied with
//! zeros where the run crosses the left or right edge), and rows whose kernel row falls in the
//! top or bottom padding add nothing and are skipped. A register tile holds up to 6 (AVX2) or 12
//! (AVX-512) consecutive `j` x 2 vectors of output channels and goes down a block of output rows:
//! per row, two vector loads of `dy`, a broadcast per `j` and two fused multiply-adds per `j`,
//! where im2col + GEMM copied the field and packed both operands.

use super::isa::Isa;
use super::shape::ConvShape;

/// Output rows taken per block: their run pointers and copied runs stay in the first-level cache.
pub const BLOCK_ROWS: usize = 64;

/// Adds the weight gradient of output rows `r0..r1` into `acc` (K K C x O), on the path `isa`
/// (from [`super::direct::path`]; it must be one the host has).
pub fn add_rows(
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    s: &ConvShape,
    r0: usize,
    r1: usize,
    acc: &mut [f32],
) {
    assert!(
        isa != Isa::Portable && isa <= super::isa::detected(),
        "the direct weight gradient cannot run on the {isa} path here"
    );
    assert!(
        x.len() >= s.n * s.h * s.w * s.c
            && dy.len() >= r1 * s.o
            && acc.len() >= s.kkc() * s.o
            && r0 <= r1
            && s.o.is_multiple_of(if isa == Isa::Avx512 { 16 } else { 8 })
    );
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the host has the instruction set (checked above against `isa::detected`);
        // every pointer below stays inside the slices, whose lengths were checked above, and the
        // output channels come in whole vectors of the path's width.
        unsafe {
            match isa {
                Isa::Avx512 => avx512::add_rows(x, dy, s, r0, r1, acc),
                _ => avx2::add_rows(x, dy, s, r0, r1, acc),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, dy, s, r0, r1, acc);
        unreachable!("the direct weight gradient is x86-64 only")
    }
}

/// A module of the direct weight gradient for one instruction set.
macro_rules! direct_grad_kernel {
    ($module:ident, $features:literal, $vector:ty, $lanes:literal, $zero:ident, $load:ident,
     $splat:ident, $fma:ident, $store:ident, tile: $tile:literal,
     widths: [$($width:literal),*]) => {
        #[cfg(target_arch = "x86_64")]
        #[allow(clippy::needless_range_loop)]
        mod $module {
            use super::BLOCK_ROWS;
            use crate::direct::kernel_row_run;
            use crate::shape::ConvShape;
            use std::arch::x86_64::*;

            /// The most consecutive `j` in one register tile (times 2 vectors: the accumulators
            /// fill about half the vector registers, enough chains to hide the latency of the
            /// multiply-adds, with room for `dy` and a broadcast).
            const TILE: usize = $tile;

            /// One tile: `acc[j0 + i][ob..ob + LANES B]` for `i < R`, plus the sum over `rows`
            /// (pairs of a run pointer and a `dy` row pointer) of `run[j0 + i] dy[ob..]`.
            #[target_feature(enable = $features)]
            unsafe fn tile<const R: usize, const B: usize>(
                rows: &[(*const f32, *const f32)],
                j0: usize,
                ob: usize,
                o: usize,
                acc: *mut f32,
            ) {
                let mut sum: [[$vector; B]; R] = [[$zero(); B]; R];
                for i in 0..R {
                    for b in 0..B {
                        sum[i][b] = $load(acc.add((j0 + i) * o + ob + $lanes * b));
                    }
                }
                for &(run, g) in rows {
                    let mut d: [$vector; B] = [$zero(); B];
                    for (b, db) in d.iter_mut().enumerate() {
                        *db = $load(g.add(ob + $lanes * b));
                    }
                    for i in 0..R {
                        let v = $splat(*run.add(j0 + i));
                        for b in 0..B {
                            sum[i][b] = $fma(v, d[b], sum[i][b]);
                        }
                    }
                }
                for i in 0..R {
                    for b in 0..B {
                        $store(acc.add((j0 + i) * o + ob + $lanes * b), sum[i][b]);
                    }
                }
            }

            /// Every tile of `R` consecutive `j` from `j0`, over all output channels.
            #[target_feature(enable = $features)]
            unsafe fn tiles<const R: usize>(
                rows: &[(*const f32, *const f32)],
                j0: usize,
                o: usize,
                acc: *mut f32,
            ) {
                let mut ob = 0;
                while ob < o {
                    if o - ob >= 2 * $lanes {
                        tile::<R, 2>(rows, j0, ob, o, acc);
                        ob += 2 * $lanes;
                    } else {
                        tile::<R, 1>(rows, j0, ob, o, acc);
                        ob += $lanes;
                    }
                }
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn add_rows(
                x: &[f32],
                dy: &[f32],
                s: &ConvShape,
                r0: usize,
                r1: usize,
                acc: &mut [f32],
            ) {
                let run = s.k * s.c;
                let (oh, ow) = (s.oh(), s.ow());
                let mut scratch = vec![0.0f32; BLOCK_ROWS * run];
                let mut rows: Vec<(*const f32, *const f32)> = Vec::with_capacity(BLOCK_ROWS);
                let (xp, gp, ap) = (x.as_ptr(), dy.as_ptr(), acc.as_mut_ptr());
                // the image, output row and column of each row of a block, counted up
                // (divisions cost more than a tile's arithmetic here)
                let mut at = Vec::with_capacity(BLOCK_ROWS);
                let mut block = r0;
                while block < r1 {
                    let end = (block + BLOCK_ROWS).min(r1);
                    at.clear();
                    let (mut n, mut oy, mut ox) =
                        (block / (oh * ow), (block / ow) % oh, block % ow);
                    for _ in block..end {
                        at.push((n, oy, ox));
                        ox += 1;
                        if ox == ow {
                            ox = 0;
                            oy += 1;
                            if oy == oh {
                                oy = 0;
                                n += 1;
                            }
                        }
                    }
                    for ky in 0..s.k {
                        // the runs of kernel row ky of every row of the block that has one
                        rows.clear();
                        for (r, &(n, oy, ox)) in (block..end).zip(&at) {
                            let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                            if iy < 0 || iy as usize >= s.h {
                                continue;
                            }
                            let image_row = xp.add((n * s.h + iy as usize) * s.w * s.c);
                            let x0 = (ox * s.stride) as isize - s.pad as isize;
                            let spare = scratch.as_mut_ptr().add((r - block) * run);
                            let src = kernel_row_run(image_row, x0, s, spare);
                            rows.push((src, gp.add(r * s.o)));
                        }
                        if rows.is_empty() {
                            continue;
                        }
                        // this kernel row's part of the accumulator: run x O
                        let part = ap.add(ky * run * s.o);
                        let mut j0 = 0;
                        while j0 < run {
                            let width = (run - j0).min(TILE);
                            match width {
                                $($width => tiles::<$width>(&rows, j0, s.o, part),)*
                                _ => tiles::<1>(&rows, j0, s.o, part),
                            }
                            j0 += width;
                        }
                    }
                    block = end;
                }
            }
        }
    };
}

direct_grad_kernel!(
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
    widths: [6, 5, 4, 3, 2]
);
direct_grad_kernel!(
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
    widths: [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2]
);
