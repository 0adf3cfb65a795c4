//! A safe, single-threaded matrix product over strided slices (the `gemm` crate), for use inside
//! parallel loops.

use num_traits::Float;

/// The element types the kernels support.
pub trait Element:
    Float + Send + Sync + Default + std::iter::Sum + std::ops::AddAssign + 'static
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

/// `c = a b` (or `c += a b` with `accumulate`), single-threaded. Panics if a view does not fit its
/// slice or the shapes do not chain.
pub fn matmul<T: Element>(
    a: &[T],
    am: Mat,
    b: &[T],
    bm: Mat,
    c: &mut [T],
    cm: Mat,
    accumulate: bool,
) {
    assert!(
        am.cols == bm.rows && am.rows == cm.rows && bm.cols == cm.cols,
        "matmul shapes"
    );
    assert!(
        am.span() <= a.len() && bm.span() <= b.len() && cm.span() <= c.len(),
        "matmul bounds"
    );
    if cm.rows == 0 || cm.cols == 0 {
        return;
    }
    if am.cols == 0 {
        if !accumulate {
            c.iter_mut().for_each(|v| *v = T::zero());
        }
        return;
    }
    // SAFETY: the asserts above keep every accessed element inside its slice; `c` is exclusively
    // borrowed and cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            cm.rows,
            cm.cols,
            am.cols,
            c.as_mut_ptr(),
            cm.cs as isize,
            cm.rs as isize,
            accumulate,
            a.as_ptr(),
            am.cs as isize,
            am.rs as isize,
            b.as_ptr(),
            bm.cs as isize,
            bm.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
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
