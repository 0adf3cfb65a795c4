//! Convolution weights between PyTorch's (O, C, K, K) layout and the kernels' (K, K, C, O).
//!
//! Both are transposes of an O x (C K K) matrix, with the (C, K K) index reordered. Walking one
//! side element by element reads the other a cache line per element (a 512-channel 3x3 layer:
//! 2.4 million lines); both functions therefore go through tiles of 16 rows of their output, so
//! that every cache line they read or write serves 16 elements while it is in cache.

use crate::gemm::Element;
use crate::par_build;
use crate::shape::ConvShape;

/// Output rows per tile.
const TILE: usize = 16;

/// Values a parallel task writes, at least (rounded up to whole tiles).
const TASK_VALUES: usize = 1 << 15;

/// Whole tiles of `row_len` values per task.
fn rows_per_task(row_len: usize) -> usize {
    TASK_VALUES.div_ceil(row_len.max(1)).next_multiple_of(TILE)
}

/// Reorders PyTorch weights (O, C, K, K) into (K, K, C, O), in parallel over the (K, K, C) rows.
pub fn weights_to_kkco<T: Element>(w: &[T], s: &ConvShape) -> Vec<T> {
    let (c, o, kk) = (s.c, s.o, s.k * s.k);
    let rows_per_task = rows_per_task(o);
    par_build(w.len(), rows_per_task * o, T::zero(), |i, part| {
        for (b, tile) in part.chunks_mut(TILE * o).enumerate() {
            let first = i * rows_per_task + b * TILE;
            // output row (tap, ci) reads input column ci * kk + tap of every output channel
            let mut column = [0usize; TILE];
            for (r, col) in column.iter_mut().enumerate().take(tile.len() / o) {
                let (tap, ci) = ((first + r) / c, (first + r) % c);
                *col = ci * kk + tap;
            }
            let column = &column[..tile.len() / o];
            for (oc, src) in w.chunks_exact(c * kk).enumerate() {
                for (r, col) in column.iter().enumerate() {
                    tile[r * o + oc] = src[*col];
                }
            }
        }
    })
}

/// Reorders (K, K, C, O) back into PyTorch's (O, C, K, K), in parallel over the O rows.
pub fn weights_from_kkco<T: Element>(wt: &[T], s: &ConvShape) -> Vec<T> {
    let task = rows_per_task(s.c * s.k * s.k) * s.c * s.k * s.k;
    par_build(wt.len(), task, T::zero(), |i, part| {
        from_kkco_task(wt, s, i, part);
    })
}

/// [`weights_from_kkco`] written into `out` (as long as `wt`): for a gradient that goes straight
/// into a larger buffer.
pub fn weights_from_kkco_into<T: Element>(wt: &[T], s: &ConvShape, out: &mut [T]) {
    assert_eq!(
        out.len(),
        wt.len(),
        "weights_from_kkco_into: lengths differ"
    );
    let task = rows_per_task(s.c * s.k * s.k) * s.c * s.k * s.k;
    crate::share::for_each_chunk_mut(out, task, |i, part| from_kkco_task(wt, s, i, part));
}

/// Task `i` of [`weights_from_kkco`]: output channels `i * rows_per_task ..`, in `part`.
fn from_kkco_task<T: Element>(wt: &[T], s: &ConvShape, i: usize, part: &mut [T]) {
    let (c, o, kk) = (s.c, s.o, s.k * s.k);
    let row = c * kk;
    for (b, tile) in part.chunks_mut(TILE * row).enumerate() {
        let first = i * rows_per_task(row) + b * TILE;
        let channels = tile.len() / row;
        // input row (tap, ci) holds, at columns first.., the value (ci, tap) of each row
        for (q, src) in wt.chunks_exact(o).enumerate() {
            let (tap, ci) = (q / c, q % c);
            let at = ci * kk + tap;
            for (j, v) in src[first..first + channels].iter().enumerate() {
                tile[j * row + at] = *v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_match_the_definition_over_partial_tiles_and_several_tasks() {
        // 40 x 3 x 3 x 70: tiles of 16 rows end part-way; 160 x 256 x 3 x 3: several tasks
        for (c, o, k) in [(40, 70, 3), (256, 160, 3), (5, 33, 1)] {
            let s = ConvShape {
                n: 1,
                h: 4,
                w: 4,
                c,
                o,
                k,
                stride: 1,
                pad: 0,
            };
            let w: Vec<f32> = (0..o * c * k * k).map(|i| i as f32).collect();
            let kkco = weights_to_kkco(&w, &s);
            for oc in 0..o {
                for ci in 0..c {
                    for tap in 0..k * k {
                        let torch = (oc * c + ci) * k * k + tap;
                        let ours = (tap * c + ci) * o + oc;
                        assert_eq!(kkco[ours], w[torch], "c {c} o {o} ({oc}, {ci}, {tap})");
                    }
                }
            }
            assert_eq!(weights_from_kkco(&kkco, &s), w, "c {c} o {o}");
            let mut into = vec![0.0; w.len()];
            weights_from_kkco_into(&kkco, &s, &mut into);
            assert_eq!(into, w, "c {c} o {o} (into)");
        }
    }
}
