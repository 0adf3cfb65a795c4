//! Fully connected layers over row-major slices, on every core: `y = x W^T + b` with `x`
//! (rows x inputs) and `W` (outputs x inputs), and the gradients of `x` and `W`.

use super::gemm::{par_matmul, Element, Mat};
use super::par_build;

/// Values zeroed per chunk when an output is allocated (see [`par_build`]).
const CHUNK: usize = 1 << 15;

/// A zeroed vector of `len` values, zeroed on every core.
fn zeros<T: Element>(len: usize) -> Vec<T> {
    par_build(len, CHUNK, T::zero(), |_, _| {})
}

/// `x W^T + b` (rows x outputs); `b` is optional.
///
/// The product is computed transposed, `W x^T` (outputs x rows), and then laid out row by row:
/// with the weight as the left operand, `gemm` reads its rows in place, where `x W^T` made it
/// repack the whole (transposed) weight on every call, at a third of the speed.
pub fn forward<T: Element>(
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    rows: usize,
    inputs: usize,
    outputs: usize,
) -> Vec<T> {
    let mut yt = zeros(outputs * rows);
    par_matmul(
        w,
        Mat::row_major(outputs, inputs),
        x,
        Mat::row_major(rows, inputs).t(),
        &mut yt,
        Mat::row_major(outputs, rows),
        false,
    );
    let outputs = outputs.max(1);
    let rows_per_chunk = (CHUNK / outputs).max(1);
    par_build(
        rows * outputs,
        rows_per_chunk * outputs,
        T::zero(),
        |i, part| {
            for (j, row) in part.chunks_exact_mut(outputs).enumerate() {
                let r = i * rows_per_chunk + j;
                for (o, v) in row.iter_mut().enumerate() {
                    *v = yt[o * rows + r] + b.map_or(T::zero(), |b| b[o]);
                }
            }
        },
    )
}

/// `dx = dy W` (rows x inputs).
pub fn input_grad<T: Element>(
    dy: &[T],
    w: &[T],
    rows: usize,
    inputs: usize,
    outputs: usize,
) -> Vec<T> {
    let mut dx = zeros(rows * inputs);
    par_matmul(
        dy,
        Mat::row_major(rows, outputs),
        w,
        Mat::row_major(outputs, inputs),
        &mut dx,
        Mat::row_major(rows, inputs),
        false,
    );
    dx
}

/// `dW = dy^T x` (outputs x inputs).
pub fn weight_grad<T: Element>(
    dy: &[T],
    x: &[T],
    rows: usize,
    inputs: usize,
    outputs: usize,
) -> Vec<T> {
    let mut dw = zeros(outputs * inputs);
    par_matmul(
        dy,
        Mat::row_major(rows, outputs).t(),
        x,
        Mat::row_major(rows, inputs),
        &mut dw,
        Mat::row_major(outputs, inputs),
        false,
    );
    dw
}

/// Columns per task of [`bias_grad`].
const BIAS_COLUMNS: usize = 64;

/// `db = Σ_rows dy` (outputs): each column summed over the rows in order from zero, as
/// candle's `sum(0)` adds them (so the bits are the same), with blocks of columns in parallel
/// and the columns of a row added as vectors.
pub fn bias_grad<T: Element>(dy: &[T], rows: usize, outputs: usize) -> Vec<T> {
    par_build(outputs, BIAS_COLUMNS, T::zero(), |i, part| {
        let first = i * BIAS_COLUMNS;
        crate::simd::vectorised(
            #[inline(always)]
            || {
                for row in dy.chunks_exact(outputs.max(1)).take(rows) {
                    for (acc, v) in part.iter_mut().zip(&row[first..]) {
                        *acc += *v;
                    }
                }
            },
        );
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).max(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn layer_and_gradients_match_the_definitions() {
        // shapes with tails around the parallel blocks (32 rows or columns each), rows both
        // fewer and more than outputs so that both ways of cutting the destination run
        for &(rows, inputs, outputs) in &[(5, 7, 3), (70, 33, 129), (130, 65, 40)] {
            let x = values(rows * inputs, 1);
            let w = values(outputs * inputs, 2);
            let b = values(outputs, 3);
            let dy = values(rows * outputs, 4);
            let y = forward(&x, &w, Some(&b), rows, inputs, outputs);
            let y0 = forward(&x, &w, None, rows, inputs, outputs);
            let dx = input_grad(&dy, &w, rows, inputs, outputs);
            let dw = weight_grad(&dy, &x, rows, inputs, outputs);
            let db = bias_grad(&dy, rows, outputs);
            for (o, got) in db.iter().enumerate() {
                let want: f64 = (0..rows).map(|r| dy[r * outputs + o]).sum();
                assert!((got - want).abs() < 1e-12, "db[{o}] {got} against {want}");
            }
            for r in 0..rows {
                for o in 0..outputs {
                    let dot: f64 = (0..inputs)
                        .map(|i| x[r * inputs + i] * w[o * inputs + i])
                        .sum();
                    assert!((y[r * outputs + o] - dot - b[o]).abs() < 1e-12);
                    assert!((y0[r * outputs + o] - dot).abs() < 1e-12);
                }
                for i in 0..inputs {
                    let want: f64 = (0..outputs)
                        .map(|o| dy[r * outputs + o] * w[o * inputs + i])
                        .sum();
                    assert!((dx[r * inputs + i] - want).abs() < 1e-12);
                }
            }
            for o in 0..outputs {
                for i in 0..inputs {
                    let want: f64 = (0..rows)
                        .map(|r| dy[r * outputs + o] * x[r * inputs + i])
                        .sum();
                    assert!((dw[o * inputs + i] - want).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn the_result_does_not_depend_on_the_number_of_threads() {
        let (rows, inputs, outputs) = (64, 96, 200);
        let x: Vec<f32> = values(rows * inputs, 5).iter().map(|v| *v as f32).collect();
        let w: Vec<f32> = values(outputs * inputs, 6)
            .iter()
            .map(|v| *v as f32)
            .collect();
        let dy: Vec<f32> = values(rows * outputs, 7)
            .iter()
            .map(|v| *v as f32)
            .collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                (
                    forward(&x, &w, None, rows, inputs, outputs),
                    weight_grad(&dy, &x, rows, inputs, outputs),
                    bias_grad(&dy, rows, outputs),
                )
            })
        };
        assert_eq!(run(1), run(3));
    }
}
