//! The transforms of F(4x4, 3x3) for one instruction set, on vectors of channels; the products
//! are F(2x2, 3x3)'s, over 36 planes.

/// A module of F(4x4, 3x3)'s transforms for one instruction set: its vector type, width, target
/// features and intrinsics.
macro_rules! winograd4_kernel {
    ($module:ident, $features:literal, $vector:ty, $lanes:literal, $zero:ident, $load:ident,
     $splat:ident, $fma:ident, $store:ident, $add:ident, $sub:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[allow(clippy::needless_range_loop)]
        pub(crate) mod $module {
            use super::super::{tiles_high, tiles_wide, PLANES};
            use crate::shape::ConvShape;
            use crate::winograd::Block;
            use std::arch::x86_64::*;

            /// `Bᵀ d` of one column `d` of six values: `Bᵀ = [[4, 0, -5, 0, 1, 0], [0, -4, -4,
            /// 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0,
            /// 4, 0, -5, 0, 1]]`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn b_t(d: [$vector; 6]) -> [$vector; 6] {
                let (two, four, minus_four, minus_five) =
                    ($splat(2.0), $splat(4.0), $splat(-4.0), $splat(-5.0));
                let d4_minus_d2 = $sub(d[4], d[2]);
                [
                    $fma(four, d[0], $fma(minus_five, d[2], d[4])),
                    $fma(minus_four, $add(d[1], d[2]), $add(d[3], d[4])),
                    $fma(four, $sub(d[1], d[2]), $sub(d[4], d[3])),
                    $fma(two, $sub(d[3], d[1]), d4_minus_d2),
                    $fma(two, $sub(d[1], d[3]), d4_minus_d2),
                    $fma(four, d[1], $fma(minus_five, d[3], d[5])),
                ]
            }

            /// `Aᵀ m` of one column `m` of six values: `Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, -1,
            /// 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn a_t(m: [$vector; 6]) -> [$vector; 4] {
                let (plus12, minus12) = ($add(m[1], m[2]), $sub(m[1], m[2]));
                let (plus34, minus34) = ($add(m[3], m[4]), $sub(m[3], m[4]));
                [
                    $add($add(m[0], plus12), plus34),
                    $fma($splat(2.0), minus34, minus12),
                    $fma($splat(4.0), plus34, plus12),
                    $add($fma($splat(8.0), minus34, minus12), m[5]),
                ]
            }

            /// `Bᵀ d B` of every tile of `b`, for every input channel, into `v`, tile by tile
            /// (36 planes x C values each). `d` is the tile's 6x6 input patch, rows and columns from one
            /// before the tile's first output pixel, zero outside the image (read from
            /// `zeros`, C zeros).
            ///
            /// # Safety
            /// The host has the features; `x` holds the (N, H, W, C) input, `zeros` C values,
            /// `v` `b.tiles` x 36 x C values; C is a multiple of the width and `b` lies in the
            /// batch.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn input(
                x: *const f32,
                zeros: *const f32,
                s: &ConvShape,
                b: Block,
                v: *mut f32,
            ) {
                let (c, th, tw) = (s.c, tiles_high(s), tiles_wide(s));
                for t in 0..b.tiles {
                    let g = b.first_row + t / tw;
                    let (n, ty, tx) = (g / th, g % th, t % tw);
                    let mut p = [zeros; PLANES];
                    let corner = (4 * ty as isize - 1, 4 * tx as isize - 1);
                    crate::winograd::patch(x, zeros, s, (n, corner.0, corner.1), 6, &mut p);
                    // the tile's 36 x C values
                    let dst = v.add(t * PLANES * c);
                    let mut cc = 0;
                    while cc < c {
                        // e = Bᵀ d, column by column
                        let mut e = [[$zero(); 6]; 6];
                        for q in 0..6 {
                            let column = std::array::from_fn(|r| $load(p[6 * r + q].add(cc)));
                            let out = b_t(column);
                            for i in 0..6 {
                                e[i][q] = out[i];
                            }
                        }
                        // e B, row by row
                        for i in 0..6 {
                            let row = b_t(e[i]);
                            for j in 0..6 {
                                $store(dst.add((6 * i + j) * c + cc), row[j]);
                            }
                        }
                        cc += $lanes;
                    }
                }
            }

            /// `Aᵀ m A` of every tile of `b`, for every output channel: the 4x4 output pixels of
            /// each tile (those inside the image) into `out`, the block's output rows.
            ///
            /// # Safety
            /// The host has the features; `m` holds tiles x 36 x O values (tile by tile), `out`
            /// the output rows
            /// of the block's tile rows (W x O values each); O is a multiple of the width.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn output(m: *const f32, s: &ConvShape, b: Block, out: *mut f32) {
                let (o, h, w, th, tw) = (s.o, s.h, s.w, tiles_high(s), tiles_wide(s));
                // the block's first output row, counted over the batch
                let base = (b.first_row / th) * h + 4 * (b.first_row % th);
                for t in 0..b.tiles {
                    let g = b.first_row + t / tw;
                    let (n, ty, tx) = (g / th, g % th, t % tw);
                    let rows = (h - 4 * ty).min(4);
                    let wide = (w - 4 * tx).min(4);
                    let src = m.add(t * PLANES * o);
                    let mut oc = 0;
                    while oc < o {
                        // e = Aᵀ m, column by column (4 rows of 6)
                        let mut e = [[$zero(); 6]; 4];
                        for j in 0..6 {
                            let column =
                                std::array::from_fn(|i| $load(src.add((6 * i + j) * o + oc)));
                            let out = a_t(column);
                            for r in 0..4 {
                                e[r][j] = out[r];
                            }
                        }
                        // e A, row by row
                        for r in 0..rows {
                            let y = a_t(e[r]);
                            let row = n * h + 4 * ty + r - base;
                            let px = out.add((row * w + 4 * tx) * o + oc);
                            for k in 0..wide {
                                $store(px.add(k * o), y[k]);
                            }
                        }
                        oc += $lanes;
                    }
                }
            }
        }
    };
}

winograd4_kernel!(
    avx2,
    "avx2,fma",
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps,
    _mm256_add_ps,
    _mm256_sub_ps
);
winograd4_kernel!(
    avx512,
    "avx512f",
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    _mm512_add_ps,
    _mm512_sub_ps
);
