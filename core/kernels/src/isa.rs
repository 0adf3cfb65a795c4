//! Which instruction set the kernels use, chosen at run time: AVX-512 where the host has it,
//! AVX2 + FMA otherwise, a portable path elsewhere. One binary serves every x86-64 host (no
//! `-C target-cpu`); [`limit`] forces a lower path so that both can be measured on one host
//! (`cpu_isa` in configs, `rossl bench --isa`).
//!
//! rossl's kernels follow [`active`]: the direct convolution, the matrix products of the
//! im2col convolutions (the `gemm` crates' blocked driver, called with the microkernels of the
//! active path), and the element-wise loops (batch norm, ReLU, residual additions, pooling; see
//! `simd`). The direct convolution's and the element-wise loops' paths compute each output in
//! the same order, so their results are bit-identical; the matrix products' paths block the sums
//! differently, so they agree to rounding. candle's own products (the head's linear layers) go through `gemm`'s
//! dispatch, which takes the host's widest path whatever the limit.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set path of the kernels, from the most portable to the widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust (im2col + GEMM for every convolution).
    Portable,
    /// 256-bit AVX2 with fused multiply-add.
    Avx2,
    /// 512-bit AVX-512 (foundation instructions).
    Avx512,
}

impl Isa {
    /// Its name (`portable`, `avx2`, `avx512`).
    pub fn as_str(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    fn code(self) -> u8 {
        match self {
            Isa::Portable => 1,
            Isa::Avx2 => 2,
            Isa::Avx512 => 3,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Isa {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "portable" => Ok(Isa::Portable),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            other => Err(format!(
                "`{other}` is not an instruction-set path: use avx512, avx2 or portable"
            )),
        }
    }
}

/// The widest path this host supports.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// 0: no limit; otherwise the code of the widest path allowed.
static LIMIT: AtomicU8 = AtomicU8::new(0);

/// Allows at most `isa` (None: whatever the host has).
pub fn limit(isa: Option<Isa>) {
    LIMIT.store(isa.map_or(0, Isa::code), Ordering::Relaxed);
}

/// The path the kernels take: the host's widest, capped by [`limit`].
pub fn active() -> Isa {
    let host = detected();
    match LIMIT.load(Ordering::Relaxed) {
        0 => host,
        code => [Isa::Portable, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.code() <= code && *i <= host)
            .max()
            .unwrap_or(Isa::Portable),
    }
}

/// Serialises the tests that set the limit or compare results through entry points that read it:
/// the limit is one for the whole process, and tests run in parallel.
#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_caps_the_path_and_never_raises_it() {
        let _serial = test_lock();
        let host = detected();
        limit(Some(Isa::Portable));
        assert_eq!(active(), Isa::Portable);
        limit(Some(Isa::Avx512));
        assert_eq!(active(), host);
        limit(None);
        assert_eq!(active(), host);
        assert_eq!("avx2".parse::<Isa>(), Ok(Isa::Avx2));
        assert!("sse".parse::<Isa>().is_err());
    }
}
