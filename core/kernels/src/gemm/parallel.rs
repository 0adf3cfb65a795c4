//! The matrix product on every core: the destination cut into blocks of rows or of columns, one
//! single-threaded blocked product per block. For the products too large to sit inside another
//! parallel loop (the dense layers of a projection head).

use super::{products, Element, Mat};

/// The destination's base pointer, shared by tasks that write disjoint blocks of it.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: each task writes only its own block of rows or columns (see `par_matmul`), so no two
// threads touch the same element.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as for `Send`: the pointer is only used to write disjoint blocks.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a method, so that closures capture the whole `Shared`, not its field).
    fn ptr(self) -> *mut T {
        self.0
    }
}

/// The fewest rows or columns in one block: below it the packing of the shared operand costs more
/// than the parallelism gains.
const MIN_BLOCK: usize = 32;

/// `c = a b` (or `c += a b` with `accumulate`) on every core of the current rayon pool, on the
/// kernels' active instruction-set path. The longer dimension of `c` is cut into blocks; each
/// element of `c` is still accumulated along k by one product in one order, so the result does not
/// depend on the number of threads. Panics if a view does not fit its slice or the shapes do not
/// chain.
pub fn par_matmul<T: Element>(
    a: &[T],
    am: Mat,
    b: &[T],
    bm: Mat,
    c: &mut [T],
    cm: Mat,
    accumulate: bool,
) {
    if !super::needs_product(a, am, b, bm, c, cm, accumulate) {
        return;
    }
    let by_rows = cm.rows >= cm.cols;
    let len = if by_rows { cm.rows } else { cm.cols };
    let tasks = (2 * rayon::current_num_threads().max(1))
        .min(len.div_ceil(MIN_BLOCK))
        .max(1);
    let block = len.div_ceil(tasks);
    let isa = crate::isa::active();
    let dst = Shared(c.as_mut_ptr());
    crate::share::for_each_task(tasks, |t| {
        let start = t * block;
        if start >= len {
            return;
        }
        let count = block.min(len - start);
        // rows of c come from rows of a; columns of c from columns of b
        let (m, n) = if by_rows {
            (count, cm.cols)
        } else {
            (cm.rows, count)
        };
        let (a_off, b_off, c_off) = if by_rows {
            (start * am.rs, 0, start * cm.rs)
        } else {
            (0, start * bm.cs, start * cm.cs)
        };
        // SAFETY: the asserts above keep every element of the full views inside their slices, and
        // a block is a sub-view of them; the blocks of `c` are disjoint (distinct rows or
        // columns), and `c` is exclusively borrowed, so it aliases neither `a` nor `b`.
        unsafe {
            T::product(
                isa,
                products::Operands {
                    m,
                    n,
                    k: am.cols,
                    dst: dst.ptr().add(c_off),
                    dst_cs: cm.cs as isize,
                    dst_rs: cm.rs as isize,
                    read_dst: accumulate,
                    lhs: a.as_ptr().add(a_off),
                    lhs_cs: am.cs as isize,
                    lhs_rs: am.rs as isize,
                    rhs: b.as_ptr().add(b_off),
                    rhs_cs: bm.cs as isize,
                    rhs_rs: bm.rs as isize,
                },
            );
        }
    });
}
