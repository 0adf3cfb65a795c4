//! The blocked products of the `gemm` crates, called with the microkernels of a chosen
//! instruction-set path. `gemm::gemm` picks its path once per process from the host alone; rossl
//! calls the same generic driver (`gemm_common::gemm::gemm_basic_generic`) with the microkernel
//! tables of [`Isa::Avx512`], [`Isa::Avx2`] or [`Isa::Portable`], so the path can be capped. With
//! the same path, the result is bit-identical to `gemm::gemm`'s.

use crate::isa::Isa;
use gemm_common::gemm::gemm_basic_generic;
use gemm_common::simd::MixedSimd;
use gemm_common::Parallelism;

/// A product `dst = (read_dst ? dst : 0) + lhs rhs`, as raw strided pointers (`gemm`'s
/// arguments: m x k times k x n into m x n).
pub struct Operands<T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub dst: *mut T,
    pub dst_cs: isize,
    pub dst_rs: isize,
    pub read_dst: bool,
    pub lhs: *const T,
    pub lhs_cs: isize,
    pub lhs_rs: isize,
    pub rhs: *const T,
    pub rhs_cs: isize,
    pub rhs_rs: isize,
}

impl<T> Operands<T> {
    /// The same product with the destination row-oriented, as `gemm::gemm` arranges it (its
    /// microkernels prefer column-major destinations, so a column-oriented one is transposed:
    /// (A B)^T = B^T A^T). All strides here are positive. (`gemm::gemm` does this itself on
    /// the other architectures.)
    #[cfg(target_arch = "x86_64")]
    fn oriented(self) -> Self {
        if self.dst_cs.abs() < self.dst_rs.abs() {
            Operands {
                m: self.n,
                n: self.m,
                k: self.k,
                dst: self.dst,
                dst_cs: self.dst_rs,
                dst_rs: self.dst_cs,
                read_dst: self.read_dst,
                lhs: self.rhs,
                lhs_cs: self.rhs_rs,
                lhs_rs: self.rhs_cs,
                rhs: self.lhs,
                rhs_cs: self.lhs_rs,
                rhs_rs: self.lhs_cs,
            }
        } else {
            self
        }
    }
}

/// The element types with a blocked product per instruction-set path.
pub trait Products: Sized {
    /// Runs the product single-threaded on the widest of `isa`'s microkernels this build and host
    /// have.
    ///
    /// # Safety
    /// Every element the strides reach must lie inside its allocation, and `dst` must not alias
    /// `lhs` or `rhs`.
    unsafe fn product(isa: Isa, p: Operands<Self>);
}

/// Calls the generic driver with one microkernel module (`$kernels`: `MR_DIV_N`, `NR`, `H_M`,
/// `H_N`, `UKR`, `H_UKR`), `$lanes` values per vector register, on the SIMD token `$simd`.
macro_rules! drive {
    ($simd:expr, $ty:ty, $lanes:expr, $kernels:path, $p:expr) => {{
        use $kernels as k;
        let p = $p;
        gemm_basic_generic::<
            _,
            $ty,
            { $lanes },
            { k::MR_DIV_N * $lanes },
            { k::NR },
            { k::MR_DIV_N },
            { k::H_M },
            { k::H_N },
        >(
            $simd,
            p.m,
            p.n,
            p.k,
            p.dst,
            p.dst_cs,
            p.dst_rs,
            p.read_dst,
            p.lhs,
            p.lhs_cs,
            p.lhs_rs,
            p.rhs,
            p.rhs_cs,
            p.rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            |a, b, c| a * b + c,
            &k::UKR,
            &k::H_UKR,
            false,
            Parallelism::None,
        )
    }};
}

/// `Products` for one element type: `$mul` is `gemm`'s lane multiplier of the type (2 for f32,
/// 1 for f64), `$crate_` the crate of its microkernels.
macro_rules! products {
    ($ty:ident, $mul:expr, $crate_:ident) => {
        impl Products for $ty {
            #[cfg(target_arch = "x86_64")]
            unsafe fn product(isa: Isa, p: Operands<Self>) {
                use gemm_common::simd::{Scalar, V3, V4};
                let p = p.oriented();
                if isa >= Isa::Avx512 {
                    if let Some(simd) = <V4 as MixedSimd<$ty, $ty, $ty, $ty>>::try_new() {
                        return drive!(simd, $ty, 8 * $mul, $crate_::microkernel::avx512f::$ty, p);
                    }
                }
                if isa >= Isa::Avx2 {
                    if let Some(simd) = <V3 as MixedSimd<$ty, $ty, $ty, $ty>>::try_new() {
                        return drive!(simd, $ty, 4 * $mul, $crate_::microkernel::fma::$ty, p);
                    }
                }
                let simd = <Scalar as MixedSimd<$ty, $ty, $ty, $ty>>::try_new()
                    .expect("the scalar path runs everywhere");
                drive!(simd, $ty, 1, $crate_::microkernel::scalar::$ty, p)
            }

            /// Elsewhere (aarch64 laptops) `gemm` chooses its own kernels (NEON); there is one
            /// path, so nothing to cap.
            #[cfg(not(target_arch = "x86_64"))]
            unsafe fn product(_isa: Isa, p: Operands<Self>) {
                gemm::gemm(
                    p.m,
                    p.n,
                    p.k,
                    p.dst,
                    p.dst_cs,
                    p.dst_rs,
                    p.read_dst,
                    p.lhs,
                    p.lhs_cs,
                    p.lhs_rs,
                    p.rhs,
                    p.rhs_cs,
                    p.rhs_rs,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        }
    };
}

products!(f32, 2, gemm_f32);
products!(f64, 1, gemm_f64);
