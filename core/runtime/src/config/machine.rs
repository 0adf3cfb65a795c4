//! The settings of the machine a run computes on that leave its numbers as they are: the
//! instruction set of the CPU kernels (`cpu_isa`) and what the CPU pool's idle threads do during
//! a step (`pool_wait`).

use serde::{Deserialize, Serialize};

/// What the CPU pool's other threads do during a step (`pool_wait`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolWait {
    /// Poll for the step's tasks (`rossl_kernels::pool`).
    #[default]
    Spin,
    /// Park after rayon's rounds of looking for work.
    Park,
}

impl PoolWait {
    /// Whether this is the default (`spin`), which is not written into a run's `config.toml`.
    pub fn is_default(&self) -> bool {
        *self == PoolWait::Spin
    }

    /// The kernels' setting.
    pub fn kernels(self) -> rossl_kernels::pool::PoolWait {
        match self {
            PoolWait::Spin => rossl_kernels::pool::PoolWait::Spin,
            PoolWait::Park => rossl_kernels::pool::PoolWait::Park,
        }
    }
}

/// The instruction-set limit of the CPU kernels (`cpu_isa`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuIsa {
    /// The host's widest.
    #[default]
    Auto,
    /// At most AVX-512.
    Avx512,
    /// At most AVX2 + FMA.
    Avx2,
    /// The portable path.
    Portable,
}

impl CpuIsa {
    /// The kernels' limit (None: no limit).
    pub fn limit(self) -> Option<rossl_kernels::isa::Isa> {
        use rossl_kernels::isa::Isa;
        match self {
            CpuIsa::Auto => None,
            CpuIsa::Avx512 => Some(Isa::Avx512),
            CpuIsa::Avx2 => Some(Isa::Avx2),
            CpuIsa::Portable => Some(Isa::Portable),
        }
    }
}
