//! The Winograd kernels for one instruction set: F(2x2, 3x3)'s input transform, the products in
//! the transformed domain (16 planes, or F(4x4, 3x3)'s 36) and F(2x2, 3x3)'s output transform, on
//! vectors of channels.

// Register tiles and transform terms are indexed on purpose: the loops unroll over constants.
/// A module of the Winograd kernels for one instruction set: its vector type, width, target
/// features and intrinsics, and the register tile of its products (rows x vectors).
macro_rules! winograd_kernel {
    ($module:ident, $features:literal, $vector:ty, $lanes:literal, $zero:ident, $load:ident,
     $splat:ident, $fma:ident, $store:ident, $add:ident, $sub:ident,
     accumulators: $accumulators:literal, vectors: [$($vectors:literal),*]) => {
        #[cfg(target_arch = "x86_64")]
        #[allow(clippy::needless_range_loop)]
        pub(crate) mod $module {
            use crate::shape::ConvShape;
            use crate::winograd::{tiles_high, tiles_wide, Block};
            use std::arch::x86_64::*;

            /// Accumulator registers of one register tile (rows x vectors): enough independent
            /// chains to hide the fused multiply-adds' latency, with room left for the loaded
            /// vectors and a broadcast.
            const ACCUMULATORS: usize = $accumulators;

            /// Rows of a register tile of `vectors` vectors: as many as the accumulators allow,
            /// at most 12.
            const fn rows_for(vectors: usize) -> usize {
                let rows = ACCUMULATORS / vectors;
                if rows > 12 {
                    12
                } else {
                    rows
                }
            }

            /// `Bᵀ d B` of every tile of `b`, for every input channel: 16 planes of tiles x C
            /// values into `v`, planes `stride` tiles apart (`b.tiles`, or more when `v` is
            /// part of a larger block's planes). `d` is the tile's 4x4 input patch, rows and columns from one
            /// before the tile's first output pixel, zero outside the image (read from
            /// `zeros`, C zeros); `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0],
            /// [0, 1, 0, -1]]`.
            ///
            /// # Safety
            /// The host has the features; `x` holds the (N, H, W, C) input, `zeros` C values,
            /// `v` 16 planes of `stride` x C (`stride` at least `b.tiles`); C is a multiple of
            /// the width and `b` lies in the batch.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn input(
                x: *const f32,
                zeros: *const f32,
                s: &ConvShape,
                b: Block,
                v: *mut f32,
                stride: usize,
            ) {
                let (c, th, tw) = (s.c, tiles_high(s), tiles_wide(s));
                let plane = stride * c;
                for t in 0..b.tiles {
                    let g = b.first_row + t / tw;
                    let (n, ty, tx) = (g / th, g % th, t % tw);
                    let mut p = [zeros; 16];
                    let corner = (2 * ty as isize - 1, 2 * tx as isize - 1);
                    crate::winograd::patch(x, zeros, s, (n, corner.0, corner.1), 4, &mut p);
                    let dst = v.add(t * c);
                    let mut cc = 0;
                    while cc < c {
                        let mut d = [$zero(); 16];
                        for i in 0..16 {
                            d[i] = $load(p[i].add(cc));
                        }
                        // e = Bᵀ d (4 rows of 4)
                        let mut e = [$zero(); 16];
                        for q in 0..4 {
                            e[q] = $sub(d[q], d[8 + q]);
                            e[4 + q] = $add(d[4 + q], d[8 + q]);
                            e[8 + q] = $sub(d[8 + q], d[4 + q]);
                            e[12 + q] = $sub(d[4 + q], d[12 + q]);
                        }
                        // e B, row by row
                        for r in 0..4 {
                            let row = dst.add(4 * r * plane + cc);
                            $store(row, $sub(e[4 * r], e[4 * r + 2]));
                            $store(row.add(plane), $add(e[4 * r + 1], e[4 * r + 2]));
                            $store(row.add(2 * plane), $sub(e[4 * r + 2], e[4 * r + 1]));
                            $store(row.add(3 * plane), $sub(e[4 * r + 1], e[4 * r + 3]));
                        }
                        cc += $lanes;
                    }
                }
            }

            /// `R` rows of one product: `m[i][..B vectors] = Σ_j v[i][j] u[j][..B vectors]`
            /// over the C input channels j, in order, one fused multiply-add each. Rows of `v`
            /// are `rows.0` apart, of `m` `rows.1`, of `u` O.
            #[target_feature(enable = $features)]
            unsafe fn tile<const R: usize, const B: usize>(
                v: *const f32,
                u: *const f32,
                (c, o): (usize, usize),
                rows: (usize, usize),
                m: *mut f32,
            ) {
                let mut acc: [[$vector; B]; R] = [[$zero(); B]; R];
                let mut urow = u;
                for j in 0..c {
                    let mut w: [$vector; B] = [$zero(); B];
                    for (k, wk) in w.iter_mut().enumerate() {
                        *wk = $load(urow.add($lanes * k));
                    }
                    for i in 0..R {
                        let a = $splat(*v.add(i * rows.0 + j));
                        for k in 0..B {
                            acc[i][k] = $fma(a, w[k], acc[i][k]);
                        }
                    }
                    urow = urow.add(o);
                }
                for i in 0..R {
                    for k in 0..B {
                        $store(m.add(i * rows.1 + $lanes * k), acc[i][k]);
                    }
                }
            }

            /// Every row group of one column block of `B` vectors: register tiles of
            /// [`rows_for`]`(B)` rows, then one of the rows left. Rows of `v` are `rows.0`
            /// apart, of `m` `rows.1`.
            #[target_feature(enable = $features)]
            unsafe fn columns<const B: usize>(
                v: *const f32,
                u: *const f32,
                tiles: usize,
                co: (usize, usize),
                rows: (usize, usize),
                m: *mut f32,
            ) {
                let mut t = 0;
                while t < tiles {
                    let (vt, mt) = (v.add(t * rows.0), m.add(t * rows.1));
                    let count = (tiles - t).min(rows_for(B));
                    match count {
                        12 => tile::<12, B>(vt, u, co, rows, mt),
                        11 => tile::<11, B>(vt, u, co, rows, mt),
                        10 => tile::<10, B>(vt, u, co, rows, mt),
                        9 => tile::<9, B>(vt, u, co, rows, mt),
                        8 => tile::<8, B>(vt, u, co, rows, mt),
                        7 => tile::<7, B>(vt, u, co, rows, mt),
                        6 => tile::<6, B>(vt, u, co, rows, mt),
                        5 => tile::<5, B>(vt, u, co, rows, mt),
                        4 => tile::<4, B>(vt, u, co, rows, mt),
                        3 => tile::<3, B>(vt, u, co, rows, mt),
                        2 => tile::<2, B>(vt, u, co, rows, mt),
                        _ => tile::<1, B>(vt, u, co, rows, mt),
                    }
                    t += count;
                }
            }

            /// The `planes` products of a block of `tiles` tiles (16 for F(2x2, 3x3), 36 for
            /// F(4x4, 3x3)): plane ξ of `m` (tiles x O) is plane ξ of `v` (tiles x C) times plane
            /// ξ of `u` (C x O), in column blocks of the widest register tile that fits. Planes
            /// of `v` and `m` follow one another (tiles x C, then the next plane), or, with
            /// `tile_major`, each tile holds its values of every plane (planes x C, then the
            /// next tile).
            ///
            /// # Safety
            /// The host has the features; `v` holds `planes` x tiles x C values, `u` `planes` x
            /// C x O, `m` `planes` x tiles x O; O is a multiple of the width.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn products(
                v: *const f32,
                u: *const f32,
                s: &ConvShape,
                (tiles, planes): (usize, usize),
                tile_major: bool,
                m: *mut f32,
            ) {
                let (c, o) = (s.c, s.o);
                // (from one plane to the next, from one tile to the next) in v and in m
                let (v_steps, m_steps) = if tile_major {
                    ((c, planes * c), (o, planes * o))
                } else {
                    ((tiles * c, c), (tiles * o, o))
                };
                let rows = (v_steps.1, m_steps.1);
                for xi in 0..planes {
                    let (vx, ux, mx) = (v.add(xi * v_steps.0), u.add(xi * c * o), m.add(xi * m_steps.0));
                    let mut ob = 0;
                    while ob < o {
                        let left = (o - ob) / $lanes;
                        $(
                            if left >= $vectors {
                                columns::<$vectors>(vx, ux.add(ob), tiles, (c, o), rows, mx.add(ob));
                                ob += $vectors * $lanes;
                                continue;
                            }
                        )*
                        unreachable!("whole vectors of output channels");
                    }
                }
            }

            /// `A dY Aᵀ` of every tile of `b`, for every output channel: the gradient of the 16
            /// planes of the output's transform (tiles x O each, into `dm`) from the output
            /// gradient `dy` (rows x O), the transpose of [`output`]; planes `stride` tiles
            /// apart, as in [`input`]. Pixels of a tile past an odd height or width read
            /// `zeros`.
            ///
            /// # Safety
            /// The host has the features; `dy` holds the output gradient of the whole batch,
            /// `zeros` O zeros, `dm` 16 planes of `stride` x O values (`stride` at least
            /// `b.tiles`); O is a multiple of the width and `b` lies in the batch.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn grad_output(
                dy: *const f32,
                zeros: *const f32,
                s: &ConvShape,
                b: Block,
                dm: *mut f32,
                stride: usize,
            ) {
                let (o, h, w, th, tw) = (s.o, s.h, s.w, tiles_high(s), tiles_wide(s));
                let plane = stride * o;
                for t in 0..b.tiles {
                    let g = b.first_row + t / tw;
                    let (n, ty, tx) = (g / th, g % th, t % tw);
                    // the tile's 2x2 output pixels, or zeros past the image
                    let mut p = [zeros; 4];
                    for r in 0..2 {
                        for q in 0..2 {
                            let (oy, ox) = (2 * ty + r, 2 * tx + q);
                            if oy < h && ox < w {
                                p[2 * r + q] = dy.add(((n * h + oy) * w + ox) * o);
                            }
                        }
                    }
                    let dst = dm.add(t * o);
                    let mut oc = 0;
                    while oc < o {
                        let y = [
                            [$load(p[0].add(oc)), $load(p[1].add(oc))],
                            [$load(p[2].add(oc)), $load(p[3].add(oc))],
                        ];
                        // e = A dY (4 rows of 2), A = [[1, 0], [1, 1], [1, -1], [0, -1]]
                        let mut e = [[$zero(); 2]; 4];
                        for q in 0..2 {
                            e[0][q] = y[0][q];
                            e[1][q] = $add(y[0][q], y[1][q]);
                            e[2][q] = $sub(y[0][q], y[1][q]);
                            e[3][q] = $sub($zero(), y[1][q]);
                        }
                        // e Aᵀ, row by row
                        for (r, row) in e.iter().enumerate() {
                            let at = dst.add(4 * r * plane + oc);
                            $store(at, row[0]);
                            $store(at.add(plane), $add(row[0], row[1]));
                            $store(at.add(2 * plane), $sub(row[0], row[1]));
                            $store(at.add(3 * plane), $sub($zero(), row[1]));
                        }
                        oc += $lanes;
                    }
                }
            }

            /// `R` input channels x `B` vectors of output channels of one weight-gradient
            /// product, added onto `du` (rows O apart): `du[i][..] += Σ_t v[t][i] dm[t][..]` over
            /// the tiles t, in order, one fused multiply-add each. Rows of `v` are C apart, of
            /// `dm` O apart.
            #[target_feature(enable = $features)]
            unsafe fn grad_tile<const R: usize, const B: usize>(
                v: *const f32,
                dm: *const f32,
                tiles: usize,
                c: usize,
                o: usize,
                du: *mut f32,
            ) {
                let mut acc: [[$vector; B]; R] = [[$zero(); B]; R];
                for i in 0..R {
                    for k in 0..B {
                        acc[i][k] = $load(du.add(i * o + $lanes * k));
                    }
                }
                for t in 0..tiles {
                    let mut w: [$vector; B] = [$zero(); B];
                    for (k, wk) in w.iter_mut().enumerate() {
                        *wk = $load(dm.add(t * o + $lanes * k));
                    }
                    for i in 0..R {
                        let a = $splat(*v.add(t * c + i));
                        for k in 0..B {
                            acc[i][k] = $fma(a, w[k], acc[i][k]);
                        }
                    }
                }
                for i in 0..R {
                    for k in 0..B {
                        $store(du.add(i * o + $lanes * k), acc[i][k]);
                    }
                }
            }

            /// Every group of input channels for one column block of `B` vectors of the weight
            /// gradient: groups of [`rows_for`]`(B)` channels, then one of the channels left.
            #[target_feature(enable = $features)]
            unsafe fn grad_columns<const B: usize>(
                v: *const f32,
                dm: *const f32,
                tiles: usize,
                c: usize,
                o: usize,
                du: *mut f32,
            ) {
                let mut c0 = 0;
                while c0 < c {
                    let (vc, dc) = (v.add(c0), du.add(c0 * o));
                    let rows = (c - c0).min(rows_for(B));
                    match rows {
                        12 => grad_tile::<12, B>(vc, dm, tiles, c, o, dc),
                        11 => grad_tile::<11, B>(vc, dm, tiles, c, o, dc),
                        10 => grad_tile::<10, B>(vc, dm, tiles, c, o, dc),
                        9 => grad_tile::<9, B>(vc, dm, tiles, c, o, dc),
                        8 => grad_tile::<8, B>(vc, dm, tiles, c, o, dc),
                        7 => grad_tile::<7, B>(vc, dm, tiles, c, o, dc),
                        6 => grad_tile::<6, B>(vc, dm, tiles, c, o, dc),
                        5 => grad_tile::<5, B>(vc, dm, tiles, c, o, dc),
                        4 => grad_tile::<4, B>(vc, dm, tiles, c, o, dc),
                        3 => grad_tile::<3, B>(vc, dm, tiles, c, o, dc),
                        2 => grad_tile::<2, B>(vc, dm, tiles, c, o, dc),
                        _ => grad_tile::<1, B>(vc, dm, tiles, c, o, dc),
                    }
                    c0 += rows;
                }
            }

            /// One plane's weight-gradient product for one column block of `vectors` vectors
            /// of output channels (the widest that fits at `ob`, if `vectors` is 0): `du` (C
            /// rows, O apart, from column `ob`) gains `v` (tiles x C) transposed times `dm`
            /// (tiles x O, from column `ob`). Returns the vectors it took.
            ///
            /// # Safety
            /// The host has the features; `v`, `dm` and `du` hold one plane each (tiles x C,
            /// tiles x O, C x O); O is a multiple of the width and `ob` a multiple of it below O.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn grad_column_block(
                v: *const f32,
                dm: *const f32,
                tiles: usize,
                s: &ConvShape,
                ob: usize,
                du: *mut f32,
            ) -> usize {
                let (c, o) = (s.c, s.o);
                let left = (o - ob) / $lanes;
                $(
                    if left >= $vectors {
                        grad_columns::<$vectors>(v, dm.add(ob), tiles, c, o, du.add(ob));
                        return $vectors;
                    }
                )*
                unreachable!("whole vectors of output channels")
            }

            /// The widest column block of the weight-gradient products, in vectors.
            pub(crate) const WIDEST: usize = [$($vectors),*][0];

            /// The 16 weight-gradient products of block `b`, added onto `du`: plane ξ of `du`
            /// (C x O) gains plane ξ of `v` (tiles x C) transposed times plane ξ of `dm`
            /// (tiles x O).
            ///
            /// # Safety
            /// The host has the features; `v` holds 16 x tiles x C values, `dm` 16 x tiles x O,
            /// `du` 16 x C x O; O is a multiple of the width.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn grad_products(
                v: *const f32,
                dm: *const f32,
                s: &ConvShape,
                b: Block,
                du: *mut f32,
            ) {
                let (c, o, tiles) = (s.c, s.o, b.tiles);
                for xi in 0..16 {
                    let (vx, mx, ux) = (v.add(xi * tiles * c), dm.add(xi * tiles * o), du.add(xi * c * o));
                    let mut ob = 0;
                    while ob < o {
                        let left = (o - ob) / $lanes;
                        $(
                            if left >= $vectors {
                                grad_columns::<$vectors>(vx, mx.add(ob), tiles, c, o, ux.add(ob));
                                ob += $vectors * $lanes;
                                continue;
                            }
                        )*
                        unreachable!("whole vectors of output channels");
                    }
                }
            }

            /// `Aᵀ m A` of every tile of `b`, for every output channel: the 2x2 output pixels of
            /// each tile (those inside the image) into `out`, the block's output rows. `Aᵀ =
            /// [[1, 1, 1, 0], [0, 1, -1, -1]]`.
            ///
            /// # Safety
            /// The host has the features; `m` holds 16 x tiles x O values, `out` the output rows
            /// of the block's tile rows (W x O values each); O is a multiple of the width.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn output(m: *const f32, s: &ConvShape, b: Block, out: *mut f32) {
                let (o, h, w, th, tw) = (s.o, s.h, s.w, tiles_high(s), tiles_wide(s));
                let plane = b.tiles * o;
                // the block's first output row, counted over the batch
                let base = (b.first_row / th) * h + 2 * (b.first_row % th);
                for t in 0..b.tiles {
                    let g = b.first_row + t / tw;
                    let (n, ty, tx) = (g / th, g % th, t % tw);
                    let rows = (h - 2 * ty).min(2);
                    let wide = (w - 2 * tx).min(2);
                    let src = m.add(t * o);
                    let mut oc = 0;
                    while oc < o {
                        let mut a = [$zero(); 16];
                        for i in 0..16 {
                            a[i] = $load(src.add(i * plane + oc));
                        }
                        // e = Aᵀ a (2 rows of 4)
                        let mut e = [$zero(); 8];
                        for q in 0..4 {
                            e[q] = $add($add(a[q], a[4 + q]), a[8 + q]);
                            e[4 + q] = $sub($sub(a[4 + q], a[8 + q]), a[12 + q]);
                        }
                        // e A, row by row
                        for r in 0..rows {
                            let y0 = $add($add(e[4 * r], e[4 * r + 1]), e[4 * r + 2]);
                            let y1 = $sub($sub(e[4 * r + 1], e[4 * r + 2]), e[4 * r + 3]);
                            let row = n * h + 2 * ty + r - base;
                            let px = out.add((row * w + 2 * tx) * o + oc);
                            $store(px, y0);
                            if wide == 2 {
                                $store(px.add(o), y1);
                            }
                        }
                        oc += $lanes;
                    }
                }
            }
        }
    };
}

winograd_kernel!(
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
    _mm256_sub_ps,
    accumulators: 12,
    vectors: [2, 1]
);
winograd_kernel!(
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
    _mm512_sub_ps,
    accumulators: 24,
    vectors: [4, 2, 1]
);
