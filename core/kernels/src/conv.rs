//! Channels-last convolution, in parallel: each entry point picks Winograd's algorithm
//! ([`super::winograd`]) for 3x3 stride-1 layers in f32 where it applies, then the direct kernels
//! for narrow layers, then im2col + GEMM over row chunks.
//!
//! Layouts: input `x` (N, H, W, C); output (N, OH, OW, O), i.e. `rows = N OH OW` rows of O values;
//! weights reordered to `wt` (K, K, C, O), i.e. a (K K C) x O matrix whose row index is
//! `(ky K + kx) C + c`.

use super::gemm::{matmul, Element, Mat};
use super::par_build;
pub use super::shape::ConvShape;
use crate::simd::vectorised;
pub use layout::{weights_from_kkco, weights_from_kkco_into, weights_to_kkco};

/// `v` as an f32 slice when `T` is f32.
fn as_f32<T: Element>(v: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32, checked just above.
        .then(|| unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) })
}

/// `v` as a mutable f32 slice when `T` is f32.
fn as_f32_mut<T: Element>(v: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32, checked just above.
        .then(|| unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), v.len()) })
}

/// `v` as a `Vec<T>` when `T` is f32 (`None` otherwise).
fn from_f32<T: Element>(v: Vec<f32>) -> Option<Vec<T>> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<f32>() {
        return None;
    }
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: T is f32 (checked above), so the buffer, its length and its capacity are those
    // of a Vec<T>; `v` is not dropped, so the buffer has one owner.
    Some(unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) })
}

/// Fills `col` ((r1 - r0) x KKC) with the receptive fields of output rows r0..r1.
fn im2col<T: Element>(x: &[T], s: &ConvShape, r0: usize, r1: usize, col: &mut [T]) {
    let (oh, ow, kkc) = (s.oh(), s.ow(), s.kkc());
    for r in r0..r1 {
        let ni = r / (oh * ow);
        let oy = (r / ow) % oh;
        let ox = r % ow;
        let row = &mut col[(r - r0) * kkc..(r - r0 + 1) * kkc];
        let ix0 = (ox * s.stride) as isize - s.pad as isize;
        let run = s.k * s.c;
        for ky in 0..s.k {
            let iy = (oy * s.stride + ky) as isize - s.pad as isize;
            if iy >= 0 && (iy as usize) < s.h && ix0 >= 0 && ix0 as usize + s.k <= s.w {
                // the k taps of this kernel row are adjacent pixels: one contiguous run
                let src = ((ni * s.h + iy as usize) * s.w + ix0 as usize) * s.c;
                row[ky * run..(ky + 1) * run].copy_from_slice(&x[src..src + run]);
                continue;
            }
            for kx in 0..s.k {
                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                let at = (ky * s.k + kx) * s.c;
                if iy < 0 || ix < 0 || iy as usize >= s.h || ix as usize >= s.w {
                    row[at..at + s.c].iter_mut().for_each(|v| *v = T::zero());
                } else {
                    let src = ((ni * s.h + iy as usize) * s.w + ix as usize) * s.c;
                    if s.c == 1 {
                        row[at] = x[src];
                    } else {
                        row[at..at + s.c].copy_from_slice(&x[src..src + s.c]);
                    }
                }
            }
        }
    }
}

/// Adds the rows of `dcol` ((r1 - r0) x KKC) back onto the input positions they came from.
#[inline(always)]
fn col2im<T: Element>(
    dcol: &[T],
    s: &ConvShape,
    r0: usize,
    r1: usize,
    dx: &mut [T],
    dx_offset: usize,
) {
    let (oh, ow, kkc) = (s.oh(), s.ow(), s.kkc());
    for r in r0..r1 {
        let ni = r / (oh * ow);
        let oy = (r / ow) % oh;
        let ox = r % ow;
        let row = &dcol[(r - r0) * kkc..(r - r0 + 1) * kkc];
        for ky in 0..s.k {
            let iy = (oy * s.stride + ky) as isize - s.pad as isize;
            if iy < 0 || iy as usize >= s.h {
                continue;
            }
            for kx in 0..s.k {
                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                if ix < 0 || ix as usize >= s.w {
                    continue;
                }
                let dst = ((ni * s.h + iy as usize) * s.w + ix as usize) * s.c - dx_offset;
                let src = &row[(ky * s.k + kx) * s.c..(ky * s.k + kx + 1) * s.c];
                for (d, v) in dx[dst..dst + s.c].iter_mut().zip(src) {
                    *d += *v;
                }
            }
        }
    }
}

/// The fewest tasks a layer is split into (where it has the rows): a few per thread, so that a
/// thread slowed by another process does not leave the rest idle at the end.
fn min_tasks() -> usize {
    4 * rayon::current_num_threads().max(1)
}

/// Rows a task of the direct kernels takes: whole output rows, about 240 pixels (the kernels tile
/// within a row).
fn whole_rows_chunk(s: &ConvShape) -> usize {
    s.ow() * (240 / s.ow()).max(1)
}

/// Output (rows x O) of the convolution of `x` with `wt`.
pub fn forward<T: Element>(x: &[T], wt: &[T], s: &ConvShape) -> Vec<T> {
    forward_then(x, wt, s, |_, _| {})
}

/// Which of Winograd's algorithms computes a 3x3 stride-1 layer in f32 where one applies
/// ([`crate::winograd::path`]); other layers ignore it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Winograd {
    /// F(2x2, 3x3) ([`crate::winograd`]): 2.25x fewer multiplications than the direct
    /// convolution. Training with batch statistics uses it, and its numbers are pinned to it.
    #[default]
    F2x2,
    /// F(4x4, 3x3) ([`crate::winograd::four`]): 4x fewer, rounding a little more, with other
    /// bits: for an encoder in evaluation mode (frozen batch norm), whose passes no test pins.
    F4x4,
}

/// A Winograd algorithm's entry points: the weight transform, the output values of a block and
/// the block itself.
type WinogradKernels = (
    fn(&[f32], &ConvShape) -> Vec<f32>,
    fn(&ConvShape) -> usize,
    fn(super::isa::Isa, &[f32], &[f32], &ConvShape, usize, &mut [f32]),
);

impl Winograd {
    /// Its weight transform, block length and block, from [`crate::winograd`] or
    /// [`crate::winograd::four`].
    pub(crate) fn kernels(self) -> WinogradKernels {
        use super::winograd::{self as two, four};
        match self {
            Winograd::F2x2 => (two::transform_weights, two::block_len, two::block),
            Winograd::F4x4 => (four::transform_weights, four::block_len, four::block),
        }
    }
}

/// [`forward`], with `then(first_row, part)` applied to each part of the output (whole rows,
/// `part.len() / O` of them from row `first_row`) right after the kernel wrote it, on the same
/// thread while it is in cache: an element-wise epilogue (a frozen batch norm, a ReLU, a residual
/// addition) without a pass of its own over the output. The output values `then` receives are
/// those [`forward`] returns.
pub fn forward_then<T: Element, F>(x: &[T], wt: &[T], s: &ConvShape, then: F) -> Vec<T>
where
    F: Fn(usize, &mut [T]) + Sync,
{
    forward_then_with(x, wt, s, Winograd::F2x2, then)
}

/// [`forward_then`], with `winograd` computing 3x3 stride-1 layers in f32.
pub fn forward_then_with<T: Element, F>(
    x: &[T],
    wt: &[T],
    s: &ConvShape,
    winograd: Winograd,
    then: F,
) -> Vec<T>
where
    F: Fn(usize, &mut [T]) + Sync,
{
    let (rows, kkc, o) = (s.rows(), s.kkc(), s.o);
    let chunk = s.rows_per_task(min_tasks());
    if let (Some(xf), Some(wf)) = (as_f32(x), as_f32(wt)) {
        if let Some(isa) = super::winograd::path(s) {
            let (transform_weights, block_len, run_block) = winograd.kernels();
            let u = transform_weights(wf, s);
            let block = block_len(s);
            return par_build(rows * o, block, T::zero(), |i, dst| {
                run_block(isa, xf, &u, s, i, as_f32_mut(dst).expect("same type"));
                then(i * block / o, dst);
            });
        }
        if let Some(isa) = super::direct::path(s).filter(|_| !s.pointwise()) {
            let chunk = whole_rows_chunk(s);
            return par_build(rows * o, chunk * o, T::zero(), |i, dst| {
                let r0 = i * chunk;
                let r1 = (r0 + chunk).min(rows);
                super::direct::rows(isa, xf, wf, s, r0, r1, as_f32_mut(dst).expect("same type"));
                then(r0, dst);
            });
        }
    }
    par_build(rows * o, chunk * o, T::zero(), |i, dst| {
        let r0 = i * chunk;
        let r1 = (r0 + chunk).min(rows);
        let m = r1 - r0;
        // a 1x1 stride-1 convolution reads its input rows as they are
        let col;
        let rows_in: &[T] = if s.pointwise() {
            &x[r0 * kkc..r1 * kkc]
        } else {
            let mut block = vec![T::zero(); m * kkc];
            im2col(x, s, r0, r1, &mut block);
            col = block;
            &col
        };
        matmul(
            rows_in,
            Mat::row_major(m, kkc),
            wt,
            Mat::row_major(kkc, o),
            dst,
            Mat::row_major(m, o),
            false,
        );
        then(r0, dst);
    })
}

/// For a stride-1 convolution, the input gradient is itself a convolution of the output gradient
/// with the kernel flipped and its channel axes swapped (padding k - 1 - pad): a dense GEMM with
/// no scatter-add. Returns that convolution's weights in (K, K, O, C) order and its shape.
fn transposed_as_forward<T: Element>(wt: &[T], s: &ConvShape) -> (Vec<T>, ConvShape) {
    let (k, c, o) = (s.k, s.c, s.o);
    // rows (tap, oc) of c values, in parallel
    let rows_per_task = (1usize << 14).div_ceil(c.max(1)).max(1);
    let flipped = par_build(wt.len(), rows_per_task * c, T::zero(), |i, part| {
        for (r, row) in part.chunks_exact_mut(c).enumerate() {
            let row_index = i * rows_per_task + r;
            let (tap, oc) = (row_index / o, row_index % o);
            let src_tap = k * k - 1 - tap;
            for (ic, v) in row.iter_mut().enumerate() {
                *v = wt[(src_tap * c + ic) * o + oc];
            }
        }
    });
    let shape = ConvShape {
        n: s.n,
        h: s.oh(),
        w: s.ow(),
        c: o,
        o: c,
        k,
        stride: 1,
        pad: k - 1 - s.pad,
    };
    (flipped, shape)
}

/// Rows `r0..r1` of dy (rows x O) times the weights as (O x KKC): the gradient of the im2col
/// rows (or, for a 1x1 stride-1 convolution, of the input rows) into `out`.
fn output_grad_times_weights<T: Element>(
    dy: &[T],
    wt: &[T],
    s: &ConvShape,
    r0: usize,
    r1: usize,
    out: &mut [T],
) {
    let (kkc, o) = (s.kkc(), s.o);
    // W as (O x KKC): element (o, j) = wt[j O + o]
    matmul(
        &dy[r0 * o..r1 * o],
        Mat::row_major(r1 - r0, o),
        wt,
        Mat::row_major(kkc, o).t(),
        out,
        Mat::row_major(r1 - r0, kkc),
        false,
    );
}

/// The input gradient of a stride-1 convolution with 1 to 4 input channels (a first layer), as
/// the transposed convolution through the narrow kernel, in f32 where that kernel applies.
fn narrow_input_grad<T: Element>(dy: &[T], wt: &[T], s: &ConvShape) -> Option<Vec<T>> {
    let (dyf, wf) = (as_f32(dy)?, as_f32(wt)?);
    let (flipped, shape) = transposed_as_forward(wf, s);
    if shape.oh() != s.h || shape.ow() != s.w || !super::narrow::applies(&shape) {
        return None;
    }
    let by_output = super::narrow::kernels_by_output(&flipped, &shape);
    let (rows, c) = (shape.rows(), shape.o);
    let chunk = whole_rows_chunk(&shape);
    Some(par_build(rows * c, chunk * c, T::zero(), |i, dst| {
        let dst = as_f32_mut(dst).expect("same element type");
        let r0 = i * chunk;
        let r1 = (r0 + chunk).min(rows);
        super::narrow::rows(dyf, &by_output, &shape, r0, r1, dst);
    }))
}

/// Gradient with respect to the input (N, H, W, C) from the output gradient `dy` (rows x O).
pub fn input_grad<T: Element>(dy: &[T], wt: &[T], s: &ConvShape) -> Vec<T> {
    input_grad_then(dy, wt, s, |_, _| {})
}

/// [`input_grad`], with `then(first_position, part)` applied to each part of the gradient
/// (whole input positions of C values, `part.len() / C` of them from `first_position`, counted
/// over the batch) right after it was written, on the same thread, as [`forward_then`] does.
pub fn input_grad_then<T: Element, F>(dy: &[T], wt: &[T], s: &ConvShape, then: F) -> Vec<T>
where
    F: Fn(usize, &mut [T]) + Sync,
{
    input_grad_then_with(dy, wt, s, Winograd::F2x2, then)
}

/// [`input_grad_then`], with `winograd` computing the input gradients of 3x3 stride-1 layers in
/// f32 (convolutions themselves).
pub fn input_grad_then_with<T: Element, F>(
    dy: &[T],
    wt: &[T],
    s: &ConvShape,
    winograd: Winograd,
    then: F,
) -> Vec<T>
where
    F: Fn(usize, &mut [T]) + Sync,
{
    if s.stride == 1 && s.k > 1 && s.pad < s.k {
        if s.c >= 8 {
            let (flipped, shape) = transposed_as_forward(wt, s);
            if shape.oh() == s.h && shape.ow() == s.w {
                return forward_then_with(dy, &flipped, &shape, winograd, then);
            }
        } else if let Some(mut dx) = narrow_input_grad(dy, wt, s) {
            // a first layer's gradient: a pass of its own after the kernel's
            let positions = 1024;
            crate::share::for_each_chunk_mut(&mut dx, positions * s.c, |i, part| {
                then(i * positions, part)
            });
            return dx;
        }
    }
    let kkc = s.kkc();
    let image = s.h * s.w * s.c;
    if s.pointwise() {
        let chunk = s.rows_per_task(min_tasks());
        let rows = s.rows();
        return par_build(s.n * image, chunk * kkc, T::zero(), |i, dst| {
            let r0 = i * chunk;
            let r1 = (r0 + chunk).min(rows);
            output_grad_times_weights(dy, wt, s, r0, r1, dst);
            then(r0, dst);
        });
    }
    // Tasks own whole images (so that no two write the same part of dx); within a task, the
    // rows go through in chunks small enough for their im2col block to stay in cache.
    let per_image = s.rows_per_image();
    let chunk = s.chunk_rows();
    let images_per_task = (chunk / per_image.max(1))
        .min(s.n.div_ceil(min_tasks()))
        .max(1);
    par_build(s.n * image, images_per_task * image, T::zero(), |t, dst| {
        let first_image = t * images_per_task;
        let images = dst.len() / image;
        let start = first_image * per_image;
        let end = start + images * per_image;
        let mut dcol = vec![T::zero(); chunk.min(end - start) * kkc];
        let mut r0 = start;
        while r0 < end {
            let r1 = (r0 + chunk).min(end);
            let block = &mut dcol[..(r1 - r0) * kkc];
            output_grad_times_weights(dy, wt, s, r0, r1, block);
            vectorised(
                #[inline(always)]
                || col2im(block, s, r0, r1, dst, first_image * image),
            );
            r0 = r1;
        }
        then(first_image * s.h * s.w, dst);
    })
}

/// The fewest rows of im2col in one product of [`weight_grad`].
const WEIGHT_GRAD_MIN_ROWS: usize = 256;

/// Gradient with respect to the weights, in (K, K, C, O) order, from the input `x` and the output
/// gradient `dy` (rows x O).
pub fn weight_grad<T: Element>(x: &[T], dy: &[T], s: &ConvShape) -> Vec<T> {
    if let (Some(isa), Some(xf), Some(dyf)) = (super::winograd::grad_path(s), as_f32(x), as_f32(dy))
    {
        return from_f32(super::winograd::weight_grad(isa, xf, dyf, s)).expect("f32");
    }
    let (rows, kkc, o) = (s.rows(), s.kkc(), s.o);
    // each product adds into the whole (KKC x O) accumulator: with fewer than 256 rows per
    // product, reading and writing it (8 bytes an element) costs more than the product's
    // arithmetic on the deep layers (KKC 4608 x O 512: 56 rows at 1 MiB of im2col a chunk)
    let chunk = s.rows_per_task(min_tasks()).max(WEIGHT_GRAD_MIN_ROWS);
    let chunks = rows.div_ceil(chunk);
    // a few tasks per thread, each with its own accumulator, so that a slow thread does not
    // leave the others idle; the partial sums are then added in parallel
    // each task takes an equal share (of rows, or of whole chunks), so that no thread is left
    // alone with a last task at the end
    let tasks = min_tasks().min(chunks).max(1);
    // narrow layers in f32: the direct kernel, with no im2col
    let direct = super::direct::path(s)
        .filter(|_| !s.pointwise())
        .and_then(|isa| Some((isa, as_f32(x)?, as_f32(dy)?)));
    let partials: Vec<Vec<T>> = super::share::map_tasks(tasks, |t| {
        let mut acc = vec![T::zero(); kkc * o];
        if let Some((isa, xf, dyf)) = direct {
            let accf = as_f32_mut(&mut acc).expect("same element type");
            let (r0, r1) = (t * rows / tasks, (t + 1) * rows / tasks);
            super::direct_grad::add_rows(isa, xf, dyf, s, r0, r1, accf);
            return acc;
        }
        let chunks = t * chunks / tasks..(t + 1) * chunks / tasks;
        let mut col = vec![T::zero(); chunk * kkc];
        for c in chunks {
            let r0 = c * chunk;
            let r1 = (r0 + chunk).min(rows);
            let m = r1 - r0;
            let cols: &[T] = if s.pointwise() {
                &x[r0 * kkc..r1 * kkc]
            } else {
                im2col(x, s, r0, r1, &mut col[..m * kkc]);
                &col[..m * kkc]
            };
            matmul(
                cols,
                Mat::row_major(m, kkc).t(),
                &dy[r0 * o..r1 * o],
                Mat::row_major(m, o),
                &mut acc,
                Mat::row_major(kkc, o),
                true,
            );
        }
        acc
    });
    let mut partials = partials.into_iter();
    let mut total = partials.next().unwrap_or_else(|| vec![T::zero(); kkc * o]);
    for p in partials {
        super::share::for_each_chunk_mut(&mut total, 1 << 14, |i, t| {
            for (t, v) in t.iter_mut().zip(&p[i << 14..]) {
                *t += *v;
            }
        });
    }
    total
}

mod layout;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod winograd4_tests;
#[cfg(test)]
mod winograd_tests;
