//! A safe, single-threaded matrix product over strided slices, for use inside parallel loops: the
//! `gemm` crates' blocked products, with the microkernels of the instruction-set path that
//! [`crate::isa::active`] names (so `cpu_isa` and `rossl bench --isa` cap them too).

use num_traits::Float;

mod parallel;
mod products;

pub use parallel::par_matmul;

/// The element types the kernels support.
pub trait Element:
    Float + Send + Sync + Default + std::iter::Sum + std::ops::AddAssign + products::Products + 'static
{
    /// Converts from f64.
    fn of(v: f64) -> Self;
    /// Converts to f64.
    fn as_f64(self) -> f64;
}

impl Element for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Element for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn as_f64(self) -> f64 {
        self
    }
}

/// A matrix view: element (i, j) at `offset + i * row_stride + j * col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Mat {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Stride between rows.
    pub rs: usize,
    /// Stride between columns.
    pub cs: usize,
}

impl Mat {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of this view.
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn span(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `c = a b` (or `c += a b` with `accumulate`), single-threaded, on the kernels' active
/// instruction-set path. Panics if a view does not fit its slice or the shapes do not chain.
pub fn matmul<T: Element>(
    a: &[T],
    am: Mat,
    b: &[T],
    bm: Mat,
    c: &mut [T],
    cm: Mat,
    accumulate: bool,
) {
    matmul_on(crate::isa::active(), a, am, b, bm, c, cm, accumulate)
}

/// Checks that the views fit their slices and the shapes chain (panics otherwise), and handles
/// the products with nothing to multiply: an empty `c`, or k = 0 (`c` zeroed unless
/// `accumulate`). Returns whether a product remains to be run.
fn needs_product<T: Element>(
    a: &[T],
    am: Mat,
    b: &[T],
    bm: Mat,
    c: &mut [T],
    cm: Mat,
    accumulate: bool,
) -> bool {
    assert!(
        am.cols == bm.rows && am.rows == cm.rows && bm.cols == cm.cols,
        "matmul shapes"
    );
    assert!(
        am.span() <= a.len() && bm.span() <= b.len() && cm.span() <= c.len(),
        "matmul bounds"
    );
    if cm.rows == 0 || cm.cols == 0 {
        return false;
    }
    if am.cols == 0 {
        if !accumulate {
            c.iter_mut().for_each(|v| *v = T::zero());
        }
        return false;
    }
    true
}

/// [`matmul`] on a given path (the widest of `isa` and the host's).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_on<T: Element>(
    isa: crate::isa::Isa,
    a: &[T],
    am: Mat,
    b: &[T],
    bm: Mat,
    c: &mut [T],
    cm: Mat,
    accumulate: bool,
) {
    if !needs_product(a, am, b, bm, c, cm, accumulate) {
        return;
    }
    // SAFETY: the asserts above keep every accessed element inside its slice; `c` is exclusively
    // borrowed and cannot alias `a` or `b`.
    unsafe {
        T::product(
            isa,
            products::Operands {
                m: cm.rows,
                n: cm.cols,
                k: am.cols,
                dst: c.as_mut_ptr(),
                dst_cs: cm.cs as isize,
                dst_rs: cm.rs as isize,
                read_dst: accumulate,
                lhs: a.as_ptr(),
                lhs_cs: am.cs as isize,
                lhs_rs: am.rs as isize,
                rhs: b.as_ptr(),
                rhs_cs: bm.cs as isize,
                rhs_rs: bm.rs as isize,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_with_transposes_match_by_hand() {
        // a = [[1,2,3],[4,5,6]], b = [[1,0],[0,1],[1,1]]: a b = [[4,5],[10,11]]
        let a = [1.0f32, 2., 3., 4., 5., 6.];
        let b = [1.0f32, 0., 0., 1., 1., 1.];
        let mut c = [0.0f32; 4];
        matmul(
            &a,
            Mat::row_major(2, 3),
            &b,
            Mat::row_major(3, 2),
            &mut c,
            Mat::row_major(2, 2),
            false,
        );
        assert_eq!(c, [4., 5., 10., 11.]);
        // accumulate a b again through transposed views of the stored transposes
        let at = [1.0f32, 4., 2., 5., 3., 6.];
        matmul(
            &at,
            Mat::row_major(3, 2).t(),
            &b,
            Mat::row_major(3, 2),
            &mut c,
            Mat::row_major(2, 2),
            true,
        );
        assert_eq!(c, [8., 10., 20., 22.]);
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;
    use crate::isa::{self, Isa};

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `c = a b^T` with `a` (m x k) and `b` (n x k) row-major, in f64 by the definition.
    fn by_definition(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|l| f64::from(a[i * k + l]) * f64::from(b[j * k + l]))
                    .sum();
            }
        }
        c
    }

    #[test]
    fn every_path_the_host_has_computes_the_product_and_the_widest_is_gemms_own() {
        // shapes with tails in every dimension, a transposed operand, and both orientations of
        // the destination
        let host = isa::detected();
        for (m, n, k) in [(37, 45, 70), (130, 9, 33), (5, 300, 17)] {
            let a = values(m * k, 1);
            let b = values(n * k, 2);
            let want = by_definition(&a, &b, m, n, k);
            let mut widest = Vec::new();
            for path in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
                if path > host {
                    continue;
                }
                for dst in [Mat::row_major(m, n), Mat::row_major(n, m).t()] {
                    let mut c = vec![0.0f32; m * n];
                    matmul_on(
                        path,
                        &a,
                        Mat::row_major(m, k),
                        &b,
                        Mat::row_major(n, k).t(),
                        &mut c,
                        dst,
                        false,
                    );
                    for i in 0..m {
                        for j in 0..n {
                            let got = f64::from(c[i * dst.rs + j * dst.cs]);
                            let w = want[i * n + j];
                            assert!(
                                (got - w).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + w.abs()),
                                "{path} ({m}, {n}, {k}) at ({i}, {j}): {got} against {w}"
                            );
                        }
                    }
                    if path == host && dst.cs == 1 {
                        widest = c;
                    }
                }
            }
            // gemm's own dispatch takes the host's widest path: the same bits
            let mut theirs = vec![0.0f32; m * n];
            // SAFETY: the shapes fit the slices exactly (row-major m x k, n x k, m x n).
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    theirs.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    k as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            assert_eq!(
                widest, theirs,
                "the host's widest path against gemm::gemm ({m}, {n}, {k})"
            );
        }
    }
}
