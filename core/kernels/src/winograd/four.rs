//! Winograd's F(4x4, 3x3) for the forward pass of 3x3 stride-1 convolutions with padding 1 (the
//! same layers as [`super::path`]): each 4x4 block of output pixels is computed from the 6x6
//! input patch around it as `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` (Lavin and Gray 2016, interpolation
//! points 0, ±1, ±2), 36 products for 144 multiply-adds of the direct convolution (4x fewer,
//! against F(2x2, 3x3)'s 2.25x).
//!
//! Its transforms multiply by 2, 4, 5 and 8 and its weight transform by sixths, so it rounds
//! more than F(2x2, 3x3) (tested against the definition in f64) and gives other bits: callers
//! choose it ([`crate::conv::Winograd::F4x4`]) where no test pins the bits and the pass is hot,
//! as for an encoder in evaluation mode; training with batch statistics keeps F(2x2, 3x3).
//!
//! The work follows [`super`]: blocks of whole tile rows (or of whole images when the height is
//! not a multiple of 4) go through input transform, products (the same register tiles) and
//! output transform in one core's cache. The transformed values are stored tile by tile (each
//! tile's 36 x C values of the input's transform together, and its 36 x O of the output's), so
//! that the input transform writes one stream rather than 36 planes. The AVX2 and AVX-512 paths
//! do the same operations in the same order, so they give identical bits.

use crate::isa::{self, Isa};
use crate::shape::ConvShape;

mod kernel4;

/// Planes of the transformed domain: the 6x6 points of a tile.
pub const PLANES: usize = 36;

/// Tiles in one block of work: about the working space of [`super::BLOCK_TILES`] tiles of F(2x2,
/// 3x3) (36 planes instead of 16), which stays in a core's cache.
pub const BLOCK_TILES: usize = 24;

/// Output pixels along a tile's side.
const SIDE: usize = 4;

/// The weights `wt` (K K C x O, K = 3) transformed to F(4x4, 3x3)'s domain: 36 planes (ξ = 6 i +
/// j) of C x O values, `U[ξ][c][o] = (G g Gᵀ)[i][j]` for the 3x3 kernel g of channels (c, o),
/// with `G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24,
/// -1/12, 1/6], [0, 0, 1]]`.
pub fn transform_weights(wt: &[f32], s: &ConvShape) -> Vec<f32> {
    super::transformed_weights(wt, s, PLANES, transform_kernel)
}

/// `G` times the three values `g` (a column or a row of a 3x3 kernel).
#[inline(always)]
fn g_times(g: [f32; 3]) -> [f32; 6] {
    let (sixth, twelfth, twenty_fourth) = (1.0 / 6.0, 1.0 / 12.0, 1.0 / 24.0);
    let outer = g[0] + g[2];
    let ends = g[0] * twenty_fourth + g[2] * sixth;
    [
        g[0] * 0.25,
        -(outer + g[1]) * sixth,
        -(outer - g[1]) * sixth,
        ends + g[1] * twelfth,
        ends - g[1] * twelfth,
        g[2],
    ]
}

/// `G g Gᵀ` for input channel `ch` and every output channel, into `out` (36 rows of O).
#[inline(always)]
fn transform_kernel(wt: &[f32], ch: usize, c: usize, o: usize, out: &mut [f32]) {
    let tap = |k: usize| &wt[(k * c + ch) * o..(k * c + ch + 1) * o];
    let g: [&[f32]; 9] = std::array::from_fn(tap);
    let out = &mut out[..PLANES * o];
    for v in 0..o {
        // t = G g: 6 rows of 3 (kernel columns)
        let columns: [[f32; 6]; 3] =
            std::array::from_fn(|kx| g_times([g[kx][v], g[3 + kx][v], g[6 + kx][v]]));
        // U = t Gᵀ
        for i in 0..6 {
            let row = g_times([columns[0][i], columns[1][i], columns[2][i]]);
            for (j, value) in row.into_iter().enumerate() {
                out[(6 * i + j) * o + v] = value;
            }
        }
    }
}

/// Tiles down an image of `s`: ⌈H / 4⌉ (the last may have fewer rows).
pub fn tiles_high(s: &ConvShape) -> usize {
    s.h.div_ceil(SIDE)
}

/// Tiles across an image of `s`: ⌈W / 4⌉.
pub fn tiles_wide(s: &ConvShape) -> usize {
    s.w.div_ceil(SIDE)
}

/// Tile rows in one block of `s`: about [`BLOCK_TILES`] tiles of whole tile rows, or, at a
/// height that is not a multiple of 4, of whole images, so that every block but the last has the
/// same number of output values.
pub fn block_tile_rows(s: &ConvShape) -> usize {
    let tw = tiles_wide(s).max(1);
    if s.h.is_multiple_of(SIDE) {
        (BLOCK_TILES / tw).max(1)
    } else {
        let th = tiles_high(s).max(1);
        (BLOCK_TILES / (th * tw)).max(1) * th
    }
}

/// The first output row of tile row `g`, both counted over the batch (tile row `N ⌈H / 4⌉`
/// gives `N H`, the end of the batch).
fn output_row(s: &ConvShape, g: usize) -> usize {
    let th = tiles_high(s).max(1);
    (g / th) * s.h + SIDE * (g % th)
}

/// Output values (rows x O) of one block of `s` but the last, which may have fewer.
pub fn block_len(s: &ConvShape) -> usize {
    output_row(s, block_tile_rows(s)) * s.w * s.o
}

/// Block `i` of the convolution of `x` (N, H, W, C) with the transformed weights `u` (from
/// [`transform_weights`]) on the path `isa` (from [`super::path`]): writes its output, `out`
/// ([`block_len`] values from output value `i` x [`block_len`]; the last block may have fewer).
pub fn block(isa: Isa, x: &[f32], u: &[f32], s: &ConvShape, i: usize, out: &mut [f32]) {
    let per_block = block_tile_rows(s);
    let first_row = i * per_block;
    let last_row = (first_row + per_block).min(s.n * tiles_high(s));
    let rows = last_row.saturating_sub(first_row);
    assert!(
        isa != Isa::Portable
            && isa <= isa::detected()
            && super::shape_applies(s)
            && x.len() >= s.n * s.h * s.w * s.c
            && u.len() >= PLANES * s.c * s.o
            && rows > 0
            && out.len() == (output_row(s, last_row) - output_row(s, first_row)) * s.w * s.o,
        "F(4x4, 3x3) block {i} of {} values on the {isa} path for {s:?}",
        out.len()
    );
    let lanes = if isa == Isa::Avx512 { 16 } else { 8 };
    assert!(s.c.is_multiple_of(lanes) && s.o.is_multiple_of(lanes));
    let b = super::Block {
        first_row,
        tiles: rows * tiles_wide(s),
    };
    super::with_block_scratch(PLANES, b.tiles, s, |v, m, zeros| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the host has the instruction set, the block lies inside the batch, the channels
        // come in whole vectors of the path's width, `out` holds the block's output rows (all
        // checked above) and the working space has the lengths the kernels index.
        unsafe {
            let (x, u, zeros) = (x.as_ptr(), u.as_ptr(), zeros.as_ptr());
            let (v, m, out) = (v.as_mut_ptr(), m.as_mut_ptr(), out.as_mut_ptr());
            if isa == Isa::Avx512 {
                kernel4::avx512::input(x, zeros, s, b, v);
                super::kernel::avx512::products(v, u, s, (b.tiles, PLANES), true, m);
                kernel4::avx512::output(m, s, b, out);
            } else {
                kernel4::avx2::input(x, zeros, s, b, v);
                super::kernel::avx2::products(v, u, s, (b.tiles, PLANES), true, m);
                kernel4::avx2::output(m, s, b, out);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, u, out, v, m, zeros, b);
            unreachable!("Winograd convolution is x86-64 only")
        }
    });
}
