//! What the host gave a benchmark: how often its threads blocked, the time the hypervisor took,
//! the context switches of each thread, and warnings when the host gave less than was asked for.

use std::collections::BTreeMap;

/// This process's resource usage so far.
fn usage() -> libc::rusage {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

/// What the host did over the timed steps: how often this process's threads blocked (voluntary
/// context switches: a worker parking, or waiting for one), and how much CPU time the hypervisor
/// gave other guests while this virtual machine's vCPUs wanted to run (`steal` in `/proc/stat`:
/// the whole machine's, summed over its vCPUs, so up to one second per vCPU each second; absent
/// off Linux).
#[derive(Clone, Copy)]
pub(super) struct HostCounters {
    voluntary_switches: f64,
    steal_seconds: Option<f64>,
}

impl HostCounters {
    /// The counters now.
    pub(super) fn now() -> Self {
        HostCounters {
            voluntary_switches: usage().ru_nvcsw as f64,
            steal_seconds: steal_seconds(),
        }
    }

    /// No counts (a steal of 0 seconds, where the host reports it).
    pub(super) fn zero() -> Self {
        HostCounters {
            voluntary_switches: 0.0,
            steal_seconds: steal_seconds().map(|_| 0.0),
        }
    }

    /// The sum of two counts.
    pub(super) fn plus(&self, other: &Self) -> Self {
        HostCounters {
            voluntary_switches: self.voluntary_switches + other.voluntary_switches,
            steal_seconds: self
                .steal_seconds
                .zip(other.steal_seconds)
                .map(|(a, b)| a + b),
        }
    }

    /// The counts between `earlier` and `self`.
    pub(super) fn since(&self, earlier: &Self) -> Self {
        HostCounters {
            voluntary_switches: self.voluntary_switches - earlier.voluntary_switches,
            steal_seconds: self
                .steal_seconds
                .zip(earlier.steal_seconds)
                .map(|(a, b)| a - b),
        }
    }

    /// Stolen vCPU seconds per second of `wall`.
    pub(super) fn steal_per_wall(&self, wall: f64) -> Option<f64> {
        self.steal_seconds.map(|s| s / wall.max(1e-9))
    }

    /// ` voluntary_switches_per_step=... steal_per_wall=...` for a `RESULT` line.
    pub(super) fn fields(&self, steps: usize, wall: f64) -> String {
        let steal = self
            .steal_per_wall(wall)
            .map_or("n/a".to_string(), |s| format!("{s:.3}"));
        format!(
            " voluntary_switches_per_step={:.0} steal_per_wall={steal}",
            self.voluntary_switches / steps.max(1) as f64
        )
    }
}

/// The `steal` column of `/proc/stat`'s first line (`cpu user nice system idle iowait irq
/// softirq steal ...`) in seconds.
fn steal_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?;
    let ticks: f64 = cpu.split_whitespace().nth(8)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks / per_second as f64)
}

/// Warns (on standard error) when the host gave the steps less than the threads asked for (CPU
/// time under 3/4 of threads x wall time; with `--pool-wait spin` the keepers' polling counts as
/// CPU time, so then only a host that took the cores away trips it), when the hypervisor ran
/// other guests on this machine's vCPUs for over 0.1 vCPU-seconds per second (summed over the
/// machine's vCPUs: a tenth of one vCPU's time), or when the steps' times
/// spread wide (the slowest quarter 1.5 times the fastest): figures of a busy or bimodal host,
/// not rossl's.
pub(super) fn warn_on_a_busy_host(
    device: &candle_core::Device,
    cpu_per_wall: f64,
    steal_per_wall: Option<f64>,
    (q1, q3): (f64, f64),
) {
    if !device.is_cpu() {
        return;
    }
    let threads = rayon::current_num_threads() as f64;
    if cpu_per_wall < 0.75 * threads {
        eprintln!(
            "warning: the steps kept {cpu_per_wall:.2} of the {threads} cores asked for busy: \
             the host gave this run less than it asked (another process, or workers waiting to \
             be woken); time again on an idle host, or report the figures with their cpu_per_wall"
        );
    }
    if let Some(steal) = steal_per_wall.filter(|s| *s > 0.1) {
        eprintln!(
            "warning: the hypervisor gave this machine's vCPUs to other guests for {steal:.2} s \
             per second of the steps (steal_per_wall): the figures are the host's, not rossl's"
        );
    }
    if q3 > 1.5 * q1 {
        eprintln!(
            "warning: step times spread from {:.4} s (first quartile) to {:.4} s (third): the \
             host switched speed during the run; a median of this run is not a stable figure",
            q1, q3
        );
    }
}

/// Context switches of each thread of this process so far, by thread id: (voluntary,
/// involuntary), from `/proc/self/task/*/status`; empty off Linux.
pub(super) fn thread_switches() -> BTreeMap<i64, (u64, u64)> {
    let mut counts = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return counts;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        counts.insert(
            tid,
            (
                field("voluntary_ctxt_switches:"),
                field("nonvoluntary_ctxt_switches:"),
            ),
        );
    }
    counts
}

/// Prints the context switches per step of each thread between two [`thread_switches`] readings:
/// the rayon pool's workers by index, the calling thread, and any other thread by id.
pub(super) fn print_thread_switches(
    before: &BTreeMap<i64, (u64, u64)>,
    after: &BTreeMap<i64, (u64, u64)>,
    steps: usize,
) {
    #[cfg(target_os = "linux")]
    let (workers, caller): (BTreeMap<i64, usize>, i64) = (
        // SAFETY: gettid only reads the calling thread's id.
        rayon::broadcast(|worker| (i64::from(unsafe { libc::gettid() }), worker.index()))
            .into_iter()
            .collect(),
        i64::from(std::process::id()),
    );
    #[cfg(not(target_os = "linux"))]
    let (workers, caller): (BTreeMap<i64, usize>, i64) = (BTreeMap::new(), -1);
    let n = steps.max(1) as f64;
    let rows: Vec<String> = after
        .iter()
        .filter_map(|(tid, (v, i))| {
            let (v0, i0) = before.get(tid).copied().unwrap_or((0, 0));
            let (v, i) = (v.saturating_sub(v0), i.saturating_sub(i0));
            let name = match workers.get(tid) {
                Some(index) => format!("worker {index}"),
                None if *tid == caller => "calling thread".to_string(),
                None => format!("thread {tid}"),
            };
            (v + i > 0).then(|| format!("{name} {:.0}/{:.0}", v as f64 / n, i as f64 / n))
        })
        .collect();
    if !rows.is_empty() {
        println!(
            "context switches per step (voluntary/involuntary), by thread: {}",
            rows.join(", ")
        );
    }
}
