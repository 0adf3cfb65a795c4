//! The weight gradient by Winograd's F(2x2, 3x3): `Gᵀ [Σ_tiles (Bᵀ d B) ⊙ (A dY Aᵀ)] G` for each
//! pair of channels, the sum over tiles done in the transformed domain by 16 matrix products
//! (input channels x tiles times tiles x output channels), 2.25x fewer multiply-adds than the
//! direct sum.
//!
//! Two schedules, by the size of the accumulator (16 x C x O values):
//! - **narrow layers** (accumulator up to [`NARROW_ACCUMULATOR`]): the tiles are cut into a few
//!   tasks per thread; each task runs its blocks of [`GRAD_BLOCK_TILES`] tiles through the three
//!   stages, adding into its own accumulator, which stays in the core's cache; the
//!   accumulators are then added in task order.
//! - **wide layers**: one accumulator, and blocks of up to [`WIDE_BLOCK_BYTES`] of transformed
//!   tiles, each transformed by all threads over its tile rows and then multiplied by all
//!   threads over its planes and column blocks, each of which adds its part of the accumulator
//!   over every tile of the block in registers. Per-task accumulators would be read and
//!   written once a block (16 MiB each at 512 x 512 channels) and added up at the end.
//!
//! Both sum each value over the tiles in an order fixed by the shape and the thread count, one
//! fused multiply-add each, so the AVX2 and AVX-512 paths give identical bits.

use super::{
    by_channels, kernel, shape_applies, tiles_high, tiles_wide, with_scratch, zeroed, Block,
};
use crate::isa::{self, Isa};
use crate::shape::ConvShape;

/// Tiles in one block of the narrow schedule: more than a forward block, because each block
/// reads and writes its task's whole accumulator once.
pub const GRAD_BLOCK_TILES: usize = 96;

/// The largest accumulator (16 x C x O values) of the narrow schedule: 1 MiB, half a core's
/// L2 cache (at 128 x 128 channels).
pub const NARROW_ACCUMULATOR: usize = 1 << 18;

/// The most bytes of transformed tiles (input and output gradient, 16 planes each) in one block
/// of the wide schedule.
pub const WIDE_BLOCK_BYTES: usize = 16 << 20;

/// The gradient with respect to the weights, in (K, K, C, O) order, of the convolution `s` of
/// `x` (N, H, W, C), from the output gradient `dy` (rows x O), on the path `isa` (from
/// [`super::path`]).
pub fn weight_grad(isa: Isa, x: &[f32], dy: &[f32], s: &ConvShape) -> Vec<f32> {
    assert!(
        isa != Isa::Portable
            && isa <= isa::detected()
            && shape_applies(s)
            && x.len() >= s.n * s.h * s.w * s.c
            && dy.len() >= s.rows() * s.o,
        "Winograd weight gradient on the {isa} path for {s:?}"
    );
    let lanes = if isa == Isa::Avx512 { 16 } else { 8 };
    assert!(s.c.is_multiple_of(lanes) && s.o.is_multiple_of(lanes));
    let du = if 16 * s.c * s.o <= NARROW_ACCUMULATOR {
        narrow(isa, x, dy, s)
    } else {
        vec![wide(isa, x, dy, s, WIDE_BLOCK_BYTES)]
    };
    from_winograd_domain(&du, s)
}

/// The narrow schedule: the accumulators of a few tasks per thread.
pub(crate) fn narrow(isa: Isa, x: &[f32], dy: &[f32], s: &ConvShape) -> Vec<Vec<f32>> {
    let (c, o, tw) = (s.c, s.o, tiles_wide(s));
    let tile_rows = s.n * tiles_high(s);
    let tasks = (2 * rayon::current_num_threads().max(1))
        .min(tile_rows)
        .max(1);
    // the same number of blocks in every task, of at most GRAD_BLOCK_TILES tiles, the tile rows
    // shared out evenly among them: equal tasks, so that no thread is left alone at the end
    let most_rows = (GRAD_BLOCK_TILES / tw).max(1);
    let blocks_per_task = tile_rows.div_ceil(tasks * most_rows);
    let blocks = tasks * blocks_per_task;
    crate::share::map_tasks(tasks, |t| {
        let mut du = vec![0.0f32; 16 * c * o];
        for i in t * blocks_per_task..(t + 1) * blocks_per_task {
            let first_row = i * tile_rows / blocks;
            let rows = (i + 1) * tile_rows / blocks - first_row;
            // (with one tile row a block and fewer rows than blocks, some blocks are empty)
            if rows == 0 {
                continue;
            }
            let b = Block {
                first_row,
                tiles: rows * tw,
            };
            let (v_len, m_len) = (16 * b.tiles * c, 16 * b.tiles * o);
            with_scratch(v_len + m_len + c.max(o), |scratch| {
                let (v, rest) = scratch.split_at_mut(v_len);
                let (dm, zeros) = rest.split_at_mut(m_len);
                zeros.fill(0.0);
                run_grad_block(isa, x, dy, s, b, v, dm, zeros, &mut du);
            });
        }
        du
    })
}

/// A pointer that parallel tasks share, each writing a part that no other task touches.
#[derive(Clone, Copy)]
struct Shared(*mut f32);

// SAFETY: `Shared` only carries the address across threads; every use writes a part of the
// buffer that no other task of the same parallel loop reads or writes (see `wide`).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// The address, `at` values on.
    ///
    /// # Safety
    /// `at` must stay inside the buffer.
    unsafe fn at(self, at: usize) -> *mut f32 {
        self.0.add(at)
    }
}

/// The wide schedule: one accumulator, every thread on each block of up to `block_bytes` of
/// transformed tiles (at least one tile row).
pub(crate) fn wide(isa: Isa, x: &[f32], dy: &[f32], s: &ConvShape, block_bytes: usize) -> Vec<f32> {
    let (c, o, tw) = (s.c, s.o, tiles_wide(s));
    let tile_rows = s.n * tiles_high(s);
    let rows_per_block = (block_bytes / (64 * tw * (c + o))).clamp(1, tile_rows.max(1));
    // planes of the block buffers hold `stride` tiles; a last, shorter block uses part of each
    let stride = rows_per_block * tw;
    let mut du = zeroed(16 * c * o);
    let mut v = zeroed(16 * stride * c);
    let mut dm = zeroed(16 * stride * o);
    let zeros = vec![0.0f32; c.max(o)];
    let (lanes, widest) = match isa {
        Isa::Avx512 => (16, kernel::avx512::WIDEST),
        _ => (8, kernel::avx2::WIDEST),
    };
    let column = lanes * widest;
    let columns = o.div_ceil(column);
    let (vp, mp, up) = (
        Shared(v.as_mut_ptr()),
        Shared(dm.as_mut_ptr()),
        Shared(du.as_mut_ptr()),
    );
    let mut first_row = 0;
    while first_row < tile_rows {
        let rows = rows_per_block.min(tile_rows - first_row);
        let tiles = rows * tw;
        // the transforms, by tile row: row r writes tiles r tw.. of every plane
        crate::share::for_each_task(rows, |r| {
            let b = Block {
                first_row: first_row + r,
                tiles: tw,
            };
            // SAFETY: the host has the path (checked in `weight_grad`); tile row r writes only
            // tiles r tw..(r + 1) tw of each of the 16 planes of `stride` tiles, inside `v` and
            // `dm`, and reads `x` and `dy`, which hold the whole batch.
            unsafe {
                let (vr, mr) = (vp.at(r * tw * c), mp.at(r * tw * o));
                match isa {
                    Isa::Avx512 => {
                        kernel::avx512::input(x.as_ptr(), zeros.as_ptr(), s, b, vr, stride);
                        kernel::avx512::grad_output(dy.as_ptr(), zeros.as_ptr(), s, b, mr, stride);
                    }
                    _ => {
                        kernel::avx2::input(x.as_ptr(), zeros.as_ptr(), s, b, vr, stride);
                        kernel::avx2::grad_output(dy.as_ptr(), zeros.as_ptr(), s, b, mr, stride);
                    }
                }
            }
        });
        // the products, by plane and column block of the accumulator
        crate::share::for_each_task(16 * columns, |k| {
            let (xi, first) = (k / columns, (k % columns) * column);
            let end = (first + column).min(o);
            // SAFETY: as above for the path; this task reads plane ξ of `v` and `dm` (written
            // before this loop began) and writes only columns first..end of plane ξ of `du`.
            unsafe {
                let (vx, mx, ux) = (
                    vp.at(xi * stride * c),
                    mp.at(xi * stride * o),
                    up.at(xi * c * o),
                );
                let mut ob = first;
                while ob < end {
                    let took = match isa {
                        Isa::Avx512 => kernel::avx512::grad_column_block(vx, mx, tiles, s, ob, ux),
                        _ => kernel::avx2::grad_column_block(vx, mx, tiles, s, ob, ux),
                    };
                    ob += took * lanes;
                }
            }
        });
        first_row += rows;
    }
    du
}

/// The three stages of weight-gradient block `b` on the path `isa`, adding onto `du` (16 x C x
/// O), with `v` (16 x tiles x C), `dm` (16 x tiles x O) and `zeros` (max(C, O) zeros) as working
/// space.
#[allow(clippy::too_many_arguments)]
fn run_grad_block(
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    s: &ConvShape,
    b: Block,
    v: &mut [f32],
    dm: &mut [f32],
    zeros: &[f32],
    du: &mut [f32],
) {
    assert!(
        v.len() >= 16 * b.tiles * s.c
            && dm.len() >= 16 * b.tiles * s.o
            && zeros.len() >= s.c.max(s.o)
            && du.len() >= 16 * s.c * s.o
            && b.first_row + b.tiles / tiles_wide(s) <= s.n * tiles_high(s)
    );
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the host has the instruction set, the channels come in whole vectors of the
        // path's width and `x` and `dy` hold the whole batch (all checked in `weight_grad`);
        // the block lies inside the batch and the working space and accumulator have the
        // lengths the kernels index (checked above).
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
                    kernel::avx512::grad_output(
                        dy.as_ptr(),
                        zeros.as_ptr(),
                        s,
                        b,
                        dm.as_mut_ptr(),
                        b.tiles,
                    );
                    kernel::avx512::grad_products(v.as_ptr(), dm.as_ptr(), s, b, du.as_mut_ptr());
                }
                _ => {
                    kernel::avx2::input(x.as_ptr(), zeros.as_ptr(), s, b, v.as_mut_ptr(), b.tiles);
                    kernel::avx2::grad_output(
                        dy.as_ptr(),
                        zeros.as_ptr(),
                        s,
                        b,
                        dm.as_mut_ptr(),
                        b.tiles,
                    );
                    kernel::avx2::grad_products(v.as_ptr(), dm.as_ptr(), s, b, du.as_mut_ptr());
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, x, dy, s, b, v, dm, zeros, du);
        unreachable!("Winograd convolution is x86-64 only")
    }
}

/// The sum of the accumulators `partials` (each 16 x C x O, in Winograd's domain), in order,
/// taken back to the kernel's domain: `Gᵀ dU G` for each pair of channels, in (K, K, C, O)
/// order.
pub(crate) fn from_winograd_domain(partials: &[Vec<f32>], s: &ConvShape) -> Vec<f32> {
    let (c, o) = (s.c, s.o);
    let plane = c * o;
    let per_task = ((1usize << 14) / (16 * o).max(1)).max(1);
    let mut out = zeroed(9 * plane);
    crate::share::for_each_part(
        by_channels(&mut out, plane, per_task * o),
        |t, mut planes| {
            let mut sum = vec![0.0f32; 16 * o];
            let mut taps = vec![0.0f32; 9 * o];
            for local in 0..planes[0].len() / o {
                let ch = t * per_task + local;
                for (xi, row) in sum.chunks_exact_mut(o).enumerate() {
                    let at = xi * plane + ch * o;
                    row.copy_from_slice(&partials[0][at..at + o]);
                    for p in &partials[1..] {
                        crate::simd::vectorised(
                            #[inline(always)]
                            || {
                                for (a, b) in row.iter_mut().zip(&p[at..at + o]) {
                                    *a += *b;
                                }
                            },
                        );
                    }
                }
                crate::simd::vectorised(
                    #[inline(always)]
                    || inverse_transform(&sum, o, &mut taps),
                );
                for (k, p) in planes.iter_mut().enumerate() {
                    p[local * o..(local + 1) * o].copy_from_slice(&taps[k * o..(k + 1) * o]);
                }
            }
        },
    );
    out
}

/// `Gᵀ du G` for every output channel: `du` is 16 rows of O (ξ = 4 i + j), `taps` 9 rows of O
/// (tap 3 ky + kx), with `Gᵀ = [[1, ½, ½, 0], [0, ½, -½, 0], [0, ½, ½, 1]]`.
#[inline(always)]
fn inverse_transform(du: &[f32], o: usize, taps: &mut [f32]) {
    let du = &du[..16 * o];
    let taps = &mut taps[..9 * o];
    for v in 0..o {
        let u = |i: usize, j: usize| du[(4 * i + j) * o + v];
        // t = Gᵀ du: 3 rows of 4
        let t: [[f32; 4]; 3] = [
            std::array::from_fn(|j| u(0, j) + (u(1, j) + u(2, j)) * 0.5),
            std::array::from_fn(|j| (u(1, j) - u(2, j)) * 0.5),
            std::array::from_fn(|j| (u(1, j) + u(2, j)) * 0.5 + u(3, j)),
        ];
        // t G
        for (ky, row) in t.iter().enumerate() {
            taps[(3 * ky) * o + v] = row[0] + (row[1] + row[2]) * 0.5;
            taps[(3 * ky + 1) * o + v] = (row[1] - row[2]) * 0.5;
            taps[(3 * ky + 2) * o + v] = (row[1] + row[2]) * 0.5 + row[3];
        }
    }
}
