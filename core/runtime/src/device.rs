//! Device and thread selection.

use crate::config::DeviceSpec;
use crate::{Error, Result};
use candle_core::Device;

/// The device a run uses, with a sentence saying why.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// The candle device.
    pub device: Device,
    /// E.g. "cpu (auto: this binary was built without CUDA)".
    pub description: String,
}

/// `true` when this binary was built with the CUDA backend.
pub fn cuda_built() -> bool {
    cfg!(feature = "cuda")
}

/// Chooses the device for `spec`. `auto` picks the first GPU when the binary has CUDA and a GPU
/// answers, otherwise the CPU; the description says which and why.
pub fn select_device(spec: DeviceSpec) -> Result<SelectedDevice> {
    match spec {
        DeviceSpec::Cpu => Ok(SelectedDevice {
            device: Device::Cpu,
            description: "cpu".into(),
        }),
        DeviceSpec::Cuda(ordinal) => {
            if !cuda_built() {
                return Err(Error::Config(format!(
                    "device `cuda:{ordinal}`: this rossl binary was built without CUDA; rebuild \
                     with `cargo build --release --features cuda` (see docs/cuda.md) or set device = \"cpu\""
                )));
            }
            let device = Device::new_cuda(ordinal).map_err(|e| {
                Error::Config(format!("device `cuda:{ordinal}` is not usable: {e}"))
            })?;
            Ok(SelectedDevice {
                device,
                description: format!("cuda:{ordinal}"),
            })
        }
        DeviceSpec::Auto => {
            if !cuda_built() {
                return Ok(SelectedDevice {
                    device: Device::Cpu,
                    description: "cpu (auto: this binary was built without CUDA)".into(),
                });
            }
            match Device::new_cuda(0) {
                Ok(device) => Ok(SelectedDevice {
                    device,
                    description: "cuda:0 (auto)".into(),
                }),
                Err(e) => Ok(SelectedDevice {
                    device: Device::Cpu,
                    description: format!("cpu (auto: no usable GPU: {e})"),
                }),
            }
        }
    }
}

/// The number of cores this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The physical memory of this machine in bytes (`MemTotal` of `/proc/meminfo`), where the
/// platform says.
pub fn total_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Sets the worker threads of the CPU backend and of rossl's own parallel code (0 = every
/// core). Call once at start-up, before any tensor work: candle and rayon read it once. Returns
/// the number of threads in effect.
pub fn configure_threads(threads: usize) -> usize {
    let n = if threads == 0 {
        available_cores()
    } else {
        threads
    };
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Safe at start-up: no other thread reads the environment yet.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    rayon::current_num_threads()
}

/// Keeps freed memory in the process instead of returning large blocks to the system at every
/// `free` (glibc's default for blocks above a dynamic threshold). Training allocates and frees
/// activation buffers of tens of megabytes at every step; left to the defaults, each allocation
/// maps fresh pages and faults them in, which cost about a quarter of a CPU training step on the
/// reference machine. Blocks above 32 MiB (the largest threshold glibc accepts), such as
/// ResNet-18's 44 MB flat weight gradient and candle's sum of it, were still mapped afresh at
/// every step (about 25,000 page faults a step, on the main thread, while the worker threads
/// waited); so no block is mapped on its own (`M_MMAP_MAX` 0), and large blocks come from the
/// heap too. Call once at start-up. A no-op on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before worker threads start.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            libc::mallopt(libc::M_MMAP_MAX, 0);
        }
    }
}
