//! Plain element-wise loops compiled for the active instruction set.
//!
//! The crate is built for baseline x86-64 (SSE2), so that one binary serves every host. Loops
//! written as ordinary Rust (batch norm, ReLU masks, residual additions, pooling) then compile to
//! 128-bit code, and a select such as `if y > 0.0 { d } else { 0.0 }` often to a branch per
//! element, which mispredicts on activations. [`vectorised`] runs a loop body inside a function
//! compiled with AVX2 or AVX-512 enabled (the widest that [`isa::active`] allows), where the same
//! loop vectorises at that width and its selects become masks.
//!
//! The results do not change with the path: every element sees the same operations in the same
//! order (Rust never contracts a multiply and an add into a fused multiply-add on its own), and
//! per-channel sums keep their row order because they vectorise across channels.

#[cfg(target_arch = "x86_64")]
use crate::isa::{self, Isa};

/// Runs `body` compiled for the widest instruction set [`isa::active`] allows.
///
/// Pass the body as an `#[inline(always)]` closure: it is then inlined into the feature-enabled
/// function and compiled there. A body that is not inlined still runs, at baseline width.
#[inline(always)]
pub(crate) fn vectorised<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match isa::active() {
        // SAFETY: `active` only returns a path the host supports (it caps the detected one).
        Isa::Avx512 => return unsafe { avx512(body) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { avx2(body) },
        Isa::Portable => {}
    }
    body()
}

/// `body` with AVX-512 (and AVX2) code generation enabled: the foundation instructions only, the
/// subset that [`isa::detected`] checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// `body` with AVX2 code generation enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}

#[cfg(test)]
mod tests {
    use super::vectorised;
    use crate::isa::{self, Isa};
    use crate::{batch_norm, elementwise, perturbation};

    /// `f` on every path the host has, after the portable one; each must give its bits.
    fn on_every_path<R: PartialEq + std::fmt::Debug>(what: &str, f: impl Fn() -> R) {
        let _serial = isa::test_lock();
        let run = |path| {
            isa::limit(Some(path));
            let out = f();
            isa::limit(None);
            out
        };
        let portable = run(Isa::Portable);
        for path in [Isa::Avx2, Isa::Avx512] {
            if path <= isa::detected() {
                assert!(run(path) == portable, "{what} on {path}");
            }
        }
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 2003) as f32 - 1001.0) * 1e-3)
            .collect()
    }

    #[test]
    fn a_select_a_product_and_a_sum_give_the_portable_bits() {
        let d = values(1003, 1);
        let y = values(1003, 2);
        on_every_path("select", || {
            vectorised(
                #[inline(always)]
                || {
                    d.iter()
                        .zip(&y)
                        .map(|(d, y)| if *y > 0.0 { *d * 1.5 + *y } else { 0.0 })
                        .collect::<Vec<f32>>()
                },
            )
        });
    }

    #[test]
    fn every_element_wise_kernel_gives_the_portable_bits() {
        // 3000 rows of 16 and of 24 channels: several chunks, and rows that no vector fills
        for c in [16, 24] {
            let rows = 3000;
            let (x, dy) = (values(rows * c, 3), values(rows * c, 4));
            let (scale, shift) = (values(c, 5), values(c, 6));
            let (mean, invstd) = (vec![0.01f64; c], vec![1.3f64; c]);
            on_every_path("moments", || batch_norm::moments(&x, c));
            let y = batch_norm::affine(&x, c, &scale, &shift, true);
            on_every_path("affine", || batch_norm::affine(&x, c, &scale, &shift, true));
            on_every_path("backward", || {
                batch_norm::backward_train(&x, &y, &dy, c, &mean, &invstd, &scale, true)
            });
            on_every_path("backward (frozen)", || {
                batch_norm::backward_affine(&y, &dy, c, &scale, true)
            });
            on_every_path("add + relu", || elementwise::add_relu(&x, &dy));
            on_every_path("relu mask", || elementwise::relu_mask(&dy, &x));
            on_every_path("add into", || {
                let mut acc = x.clone();
                elementwise::add_into(&mut acc, &dy);
                acc
            });
            on_every_path("pool", || elementwise::global_average_pool(&x, 30, 100, c));
            on_every_path("pool backward", || {
                elementwise::global_average_pool_backward(&x[..30 * c], 30, 100, c)
            });
            on_every_path("signed step", || {
                perturbation::signed_step(&x, &dy, &y, 0.01, 8.0 / 255.0)
            });
        }
    }
}
