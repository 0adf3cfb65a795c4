//! Winograd's minimal filtering F(2x2, 3x3) for 3x3 stride-1 convolutions with padding 1 on
//! channels-last tensors (x86-64 with AVX-512, or AVX2 and FMA).
//!
//! Each 2x2 block of output pixels ("tile") is computed from the 4x4 input patch around it as
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`: the 16 products of the transformed domain replace the 36
//! multiply-adds of the direct convolution, so the matrix products that carry the arithmetic do
//! 2.25x fewer of them. The transforms only add, subtract and halve, so the rounding they add is
//! a few units in the last place (tested against the definition in f64).
//!
//! Work is cut into blocks of whole tile rows (about [`BLOCK_TILES`] tiles); for one block, the
//! input transform writes the 16 planes of `Bᵀ d B` (tiles x C each), 16 products with the
//! transformed weights give the 16 planes of the output's transform (tiles x O), and the output
//! transform writes the block's two rows of output pixels per tile row. All of it stays in the
//! core's cache; the parallel tasks are the blocks.
//!
//! Every path does the same operations in the same order for each value (the products
//! accumulate over the input channels, one fused multiply-add each), so the AVX2 and AVX-512
//! paths give identical bits.

use super::isa::{self, Isa};
use super::shape::ConvShape;

pub mod four;
pub(crate) mod grad;
mod kernel;

pub use grad::{weight_grad, GRAD_BLOCK_TILES, NARROW_ACCUMULATOR, WIDE_BLOCK_BYTES};

/// Tiles in one block of work: enough rows for the products to reuse each transformed weight
/// many times, few enough for the block's planes to stay in a core's cache.
pub const BLOCK_TILES: usize = 48;

/// The path that computes `s` with Winograd's algorithm on this machine under the current
/// [`isa::active`] limit, if it applies: a 3x3 kernel, stride 1, padding 1, and input and
/// output channels in whole vectors of at least [`MIN_CHANNELS`]. At an odd height or width, the
/// last tiles reach one row or column past the image, computed on zeros and not written.
pub fn path(s: &ConvShape) -> Option<Isa> {
    if !shape_applies(s) {
        return None;
    }
    let lanes_fit = |lanes: usize| s.c.is_multiple_of(lanes) && s.o.is_multiple_of(lanes);
    match isa::active() {
        Isa::Avx512 if lanes_fit(16) => Some(Isa::Avx512),
        Isa::Avx512 | Isa::Avx2 if lanes_fit(8) => Some(Isa::Avx2),
        _ => None,
    }
}

/// `true` when the geometry of `s` suits these kernels, whatever the instruction set: a 3x3
/// kernel, stride 1, padding 1, a non-empty image and at least [`MIN_CHANNELS`] channels in and
/// out.
pub fn shape_applies(s: &ConvShape) -> bool {
    s.k == 3
        && s.stride == 1
        && s.pad == 1
        && s.h > 0
        && s.w > 0
        && s.c >= MIN_CHANNELS
        && s.o >= MIN_CHANNELS
}

/// The path that computes the weight gradient of `s` with Winograd's algorithm, if it should:
/// [`path`], at an even height and width. At an odd one, a quarter or more of the tiles' area
/// lies past the image at small sizes (7x7 outputs: 8x8 of tiles), and the direct kernel's
/// weight gradient was faster there (by 7% and 13% on AVX-512 and AVX2, 256 images of 7x7 at
/// 64 channels).
pub fn grad_path(s: &ConvShape) -> Option<Isa> {
    path(s).filter(|_| s.h.is_multiple_of(2) && s.w.is_multiple_of(2))
}

/// The fewest input and output channels. At 16 (the first stage of a small ResNet, 256 images
/// of 28x28), the forward pass took 0.88x (AVX-512) and 0.81x (AVX2) the direct kernel's time.
/// A channel count that is a whole number of vectors on one path takes Winograd's algorithm on
/// every path that has it, so that the paths agree bit for bit.
pub const MIN_CHANNELS: usize = 16;

/// The weights `wt` (K K C x O, K = 3) transformed to Winograd's domain: 16 planes (ξ = 4 i + j)
/// of C x O values, `U[ξ][c][o] = (G g Gᵀ)[i][j]` for the 3x3 kernel g of channels (c, o), with
/// `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`.
pub fn transform_weights(wt: &[f32], s: &ConvShape) -> Vec<f32> {
    transformed_weights(wt, s, 16, transform_kernel)
}

/// The weights `wt` (K K C x O, K = 3) in a Winograd domain of `planes` planes of C x O values:
/// `kernel(wt, ch, C, O, out)` writes input channel `ch`'s `planes` rows of O values into `out`.
/// Tasks take whole input channels.
pub(crate) fn transformed_weights<K>(
    wt: &[f32],
    s: &ConvShape,
    planes: usize,
    kernel: K,
) -> Vec<f32>
where
    K: Fn(&[f32], usize, usize, usize, &mut [f32]) + Sync,
{
    let (c, o) = (s.c, s.o);
    assert!(s.k == 3 && wt.len() >= 9 * c * o, "3x3 weights (K K C x O)");
    let plane = c * o;
    // channels per task: about 64 KiB of output rows
    let per_task = ((1usize << 14) / (planes * o).max(1)).max(1);
    let mut u = zeroed(planes * plane);
    crate::share::for_each_part(by_channels(&mut u, plane, per_task * o), |t, mut parts| {
        let mut scratch = vec![0.0f32; planes * o];
        for local in 0..parts[0].len() / o {
            let ch = t * per_task + local;
            crate::simd::vectorised(
                #[inline(always)]
                || kernel(wt, ch, c, o, &mut scratch),
            );
            for (xi, p) in parts.iter_mut().enumerate() {
                p[local * o..(local + 1) * o].copy_from_slice(&scratch[xi * o..(xi + 1) * o]);
            }
        }
    });
    u
}

/// `buf` (planes of `plane` values) cut into the parts that one task writes: the same `part`
/// values (some input channels x O) of every plane.
fn by_channels(buf: &mut [f32], plane: usize, part: usize) -> Vec<Vec<&mut [f32]>> {
    let planes = buf.len() / plane.max(1);
    let mut parts: Vec<Vec<&mut [f32]>> = (0..plane.div_ceil(part.max(1)))
        .map(|_| Vec::with_capacity(planes))
        .collect();
    for p in buf.chunks_exact_mut(plane.max(1)) {
        for (t, values) in p.chunks_mut(part.max(1)).enumerate() {
            parts[t].push(values);
        }
    }
    parts
}

/// `G g Gᵀ` for input channel `ch` and every output channel, into `out` (16 rows of O).
#[inline(always)]
fn transform_kernel(wt: &[f32], ch: usize, c: usize, o: usize, out: &mut [f32]) {
    let tap = |k: usize| &wt[(k * c + ch) * o..(k * c + ch + 1) * o];
    let g: [&[f32]; 9] = std::array::from_fn(tap);
    let out = &mut out[..16 * o];
    for v in 0..o {
        // t = G g: 4 rows of 3 (kernel columns)
        let mut t = [[0.0f32; 3]; 4];
        for kx in 0..3 {
            let (g0, g1, g2) = (g[kx][v], g[3 + kx][v], g[6 + kx][v]);
            t[0][kx] = g0;
            t[1][kx] = (g0 + g1 + g2) * 0.5;
            t[2][kx] = (g0 - g1 + g2) * 0.5;
            t[3][kx] = g2;
        }
        // U = t Gᵀ
        for (i, row) in t.iter().enumerate() {
            out[(4 * i) * o + v] = row[0];
            out[(4 * i + 1) * o + v] = (row[0] + row[1] + row[2]) * 0.5;
            out[(4 * i + 2) * o + v] = (row[0] - row[1] + row[2]) * 0.5;
            out[(4 * i + 3) * o + v] = row[2];
        }
    }
}

/// The pointers to the `side` x `side` input pixels (C values each) of the patch whose top left
/// pixel is (`top`, `left`) of image `n` of `x` (N, H, W, C), row by row into `p`; pixels
/// outside the image point to `zeros` (C zeros).
///
/// # Safety
/// `x` holds the input of `s` and `n` is one of its images.
#[inline(always)]
pub(crate) unsafe fn patch(
    x: *const f32,
    zeros: *const f32,
    s: &ConvShape,
    (n, top, left): (usize, isize, isize),
    side: usize,
    p: &mut [*const f32],
) {
    p[..side * side].fill(zeros);
    for r in 0..side {
        let iy = top + r as isize;
        if iy < 0 || iy as usize >= s.h {
            continue;
        }
        for q in 0..side {
            let ix = left + q as isize;
            if ix >= 0 && (ix as usize) < s.w {
                p[side * r + q] = x.add(((n * s.h + iy as usize) * s.w + ix as usize) * s.c);
            }
        }
    }
}

/// Tiles down an image of `s`: ⌈H / 2⌉ (an odd height leaves a last tile with one row).
pub fn tiles_high(s: &ConvShape) -> usize {
    s.h.div_ceil(2)
}

/// Tiles across an image of `s`: ⌈W / 2⌉.
pub fn tiles_wide(s: &ConvShape) -> usize {
    s.w.div_ceil(2)
}

/// Tile rows (pairs of output rows of one image, or the last, single row of an odd height) in
/// one block of `s`: about [`BLOCK_TILES`] tiles of whole tile rows, or, at an odd height, of
/// whole images, so that every block but the last has the same number of output values.
pub fn block_tile_rows(s: &ConvShape) -> usize {
    let tw = tiles_wide(s).max(1);
    if s.h.is_multiple_of(2) {
        (BLOCK_TILES / tw).max(1)
    } else {
        let th = tiles_high(s).max(1);
        (BLOCK_TILES / (th * tw)).max(1) * th
    }
}

/// Output values (rows x O) of one block of `s` but the last, which may have fewer.
pub fn block_len(s: &ConvShape) -> usize {
    let rows = block_tile_rows(s);
    let output_rows = if s.h.is_multiple_of(2) {
        2 * rows
    } else {
        rows / tiles_high(s).max(1) * s.h
    };
    output_rows * s.w * s.o
}

/// A block of work: tile rows `first_row..first_row + rows` (for F(2x2, 3x3), tile row g is
/// output rows 2 (g mod ⌈H/2⌉) and the next, if any, of image g div ⌈H/2⌉; for F(4x4, 3x3),
/// rows 4 (g mod ⌈H/4⌉) and up to three more), `tiles` = rows x the tiles across a row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    /// The first tile row, counted over the whole batch.
    pub first_row: usize,
    /// Tiles in the block.
    pub tiles: usize,
}

/// Block `i` of the convolution of `x` (N, H, W, C) with the transformed weights `u` (from
/// [`transform_weights`]) on the path `isa` (from [`path`]): writes its output, `out`
/// ([`block_len`] values from output value `i` x [`block_len`]; the last block may have
/// fewer).
pub fn block(isa: Isa, x: &[f32], u: &[f32], s: &ConvShape, i: usize, out: &mut [f32]) {
    let full = block_len(s);
    let rows = if out.len() == full {
        block_tile_rows(s)
    } else if s.h.is_multiple_of(2) {
        out.len() / (2 * s.w * s.o).max(1)
    } else {
        out.len() / (s.h * s.w * s.o).max(1) * tiles_high(s)
    };
    let first_row = i * block_tile_rows(s);
    assert!(
        isa != Isa::Portable
            && isa <= isa::detected()
            && shape_applies(s)
            && x.len() >= s.n * s.h * s.w * s.c
            && u.len() >= 16 * s.c * s.o
            && out.len() <= full
            && rows > 0
            && first_row + rows <= s.n * tiles_high(s)
            && out.len() == output_values(s, first_row, rows),
        "Winograd block {i} of {} values on the {isa} path for {s:?}",
        out.len()
    );
    let lanes = if isa == Isa::Avx512 { 16 } else { 8 };
    assert!(s.c.is_multiple_of(lanes) && s.o.is_multiple_of(lanes));
    let b = Block {
        first_row,
        tiles: rows * tiles_wide(s),
    };
    with_block_scratch(16, b.tiles, s, |v, m, zeros| {
        run_block(isa, x, u, s, b, v, m, zeros, out)
    });
}

/// Runs `f(v, m, zeros)` on this thread's working space for a block of `tiles` tiles of `s` in a
/// domain of `planes` planes: `planes` x tiles x C values for the input's transform, as many x O
/// for the output's (contents left over from earlier blocks), and C zeros.
pub(crate) fn with_block_scratch(
    planes: usize,
    tiles: usize,
    s: &ConvShape,
    f: impl FnOnce(&mut [f32], &mut [f32], &[f32]),
) {
    let (v_len, m_len) = (planes * tiles * s.c, planes * tiles * s.o);
    with_scratch(v_len + m_len + s.c, |scratch| {
        let (v, rest) = scratch.split_at_mut(v_len);
        let (m, zeros) = rest.split_at_mut(m_len);
        zeros.fill(0.0);
        f(v, m, zeros)
    });
}

/// Output values (rows x O) of tile rows `first_row..first_row + rows`.
fn output_values(s: &ConvShape, first_row: usize, rows: usize) -> usize {
    let th = tiles_high(s).max(1);
    let output_row = |g: usize| (g / th) * s.h + (2 * (g % th)).min(s.h);
    (output_row(first_row + rows) - output_row(first_row)) * s.w * s.o
}

/// The three stages of block `b` on the path `isa`, with `v` (16 x tiles x C), `m` (16 x tiles x
/// O) and `zeros` (C zeros) as working space.
#[allow(clippy::too_many_arguments)]
fn run_block(
    isa: Isa,
    x: &[f32],
    u: &[f32],
    s: &ConvShape,
    b: Block,
    v: &mut [f32],
    m: &mut [f32],
    zeros: &[f32],
    out: &mut [f32],
) {
    assert!(v.len() >= 16 * b.tiles * s.c && m.len() >= 16 * b.tiles * s.o && zeros.len() >= s.c);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the host has the instruction set, the block lies inside the batch, the
        // channels come in whole vectors of the path's width and `out` holds the block's output
        // rows (all checked in `block`); the working space has the lengths the kernels index
        // (checked above).
        unsafe {
            match isa {
                Isa::Avx512 => {
                    kernel::avx512::input(
                        x.as_ptr(),
                        zeros.as_ptr(),
                        s,
                        b,
                        v.as_mut_ptr(),
                        b.tiles,
                    );
                    kernel::avx512::products(
                        v.as_ptr(),
                        u.as_ptr(),
                        s,
                        (b.tiles, 16),
                        false,
                        m.as_mut_ptr(),
                    );
                    kernel::avx512::output(m.as_ptr(), s, b, out.as_mut_ptr());
                }
                _ => {
                    kernel::avx2::input(x.as_ptr(), zeros.as_ptr(), s, b, v.as_mut_ptr(), b.tiles);
                    kernel::avx2::products(
                        v.as_ptr(),
                        u.as_ptr(),
                        s,
                        (b.tiles, 16),
                        false,
                        m.as_mut_ptr(),
                    );
                    kernel::avx2::output(m.as_ptr(), s, b, out.as_mut_ptr());
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, x, u, s, out, v, m, zeros, b);
        unreachable!("Winograd convolution is x86-64 only")
    }
}

/// `len` zeros, written by every thread (a serial `vec![0.0; len]` of the tens of megabytes
/// here would leave the other cores idle while it faults the pages in).
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    crate::par_build(len, 1 << 16, 0.0, |_, _| {})
}

thread_local! {
    /// Each worker thread's working space for its blocks, kept from one block to the next so
    /// that no block pays for allocating and zeroing it.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` values of this thread's working space (their contents are left over from
/// earlier blocks: `f` must write before it reads).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        f(&mut scratch[..len])
    })
}
