//! Where a step runs: on a worker of the rayon pool, with the other workers kept awake.
//!
//! A training or attack step is a chain of short parallel kernels separated by serial work
//! (candle's element-wise operations, the loss, bookkeeping). Between two kernels rayon's idle
//! workers look for work for 32 rounds, yielding their core between rounds, and then park (a
//! futex wait; on a virtual machine the vCPU halts). The next kernel then pushes its tasks and
//! wakes a parked worker, which on a busy host may be scheduled back only much later: the
//! calling thread does the kernel alone. OpenMP (and so PyTorch on CPU) spins before it sleeps
//! for the same reason.
//!
//! [`on_pool`] therefore runs a step on a worker and sends every other worker of the pool into a
//! *keeper* loop: it takes and runs any task of the pool (`rayon::yield_now`), spins briefly
//! when there is none, and then gives the core to the operating system
//! (`std::thread::yield_now`) between polls. A keeper leaves after 20 ms without work
//! (`KEEP_IDLE`), so it spans consecutive steps and costs at most 20 ms of one core after the
//! last; and it leaves when the operating system has given its core to other tasks for a while
//! (involuntary context switches of over 200 us at three of its yields within 20 ms), because
//! then the core is wanted elsewhere and spinning would only take time from those tasks and from
//! the step's own threads.
//! [`set_wait`] switches back to rayon's own parking ([`PoolWait::Park`]) for comparison
//! (`rossl bench --pool-wait park`).
//!
//! Which thread runs a task does not change what it computes: the kernels split their work into
//! fixed tasks, and the reductions over tasks add their partial sums in task order
//! ([`crate::share`]). Within a step the kernels' loops wait for their last task by polling
//! rather than in rayon's `join`, and `rearm_keepers` sends keepers back when a long serial
//! stretch or contention made them leave.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What the pool's other workers do while a step runs on one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolWait {
    /// Keep them polling for work through the whole step (the default).
    Spin,
    /// Leave them to rayon, which parks an idle worker after 32 rounds of looking for work.
    Park,
}

impl std::str::FromStr for PoolWait {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "spin" => Ok(PoolWait::Spin),
            "park" => Ok(PoolWait::Park),
            other => Err(format!(
                "unknown pool wait {other:?}: expected \"spin\" or \"park\""
            )),
        }
    }
}

impl std::fmt::Display for PoolWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolWait::Spin => "spin",
            PoolWait::Park => "park",
        })
    }
}

/// 0: spin, 1: park.
static WAIT: AtomicU8 = AtomicU8::new(0);

/// Sets what the other workers do during [`on_pool`] from now on, for the whole process.
pub fn set_wait(wait: PoolWait) {
    WAIT.store(
        match wait {
            PoolWait::Spin => 0,
            PoolWait::Park => 1,
        },
        Ordering::Relaxed,
    );
}

/// What the other workers do during [`on_pool`] (see [`set_wait`]).
pub fn wait_mode() -> PoolWait {
    match WAIT.load(Ordering::Relaxed) {
        0 => PoolWait::Spin,
        _ => PoolWait::Park,
    }
}

thread_local! {
    /// Whether this thread is running a step under [`on_pool`]: it never starts a keeper, which
    /// would stall the step below it on the same stack. (A worker running a stolen task of a
    /// step is not marked: see [`KEEP_IDLE`] for what bounds a keeper started there.)
    static STEPPING: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread is a keeper already: it ignores the keepers of later steps.
    static KEEPING: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread is taking the tasks of a shared loop or waiting for its end
    /// ([`crate::share`]): a keeper started there would sit on top of that loop and stall it.
    static IN_LOOP: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as inside a shared loop ([`crate::share`]) until dropped.
pub(crate) struct InLoop {
    _mark: Mark,
}

impl InLoop {
    /// Marks this thread until the value is dropped.
    pub(crate) fn enter() -> Self {
        InLoop {
            _mark: Mark::set(&IN_LOOP),
        }
    }
}

/// Sets a thread-local flag until dropped, then restores its previous value.
struct Mark(&'static std::thread::LocalKey<Cell<bool>>, bool);

impl Mark {
    fn set(flag: &'static std::thread::LocalKey<Cell<bool>>) -> Self {
        Mark(flag, flag.with(|f| f.replace(true)))
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        let previous = self.1;
        self.0.with(|f| f.set(previous));
    }
}

/// Polls of an idle keeper spent in a spin-wait hint before it starts to give its core to the
/// operating system between polls (about 10-50 us).
const SPIN_POLLS: u32 = 256;

/// How long a keeper goes without work before it leaves its worker to rayon (which parks it),
/// as OpenMP's threads spin for a while before they sleep. It outlasts the serial stretches of
/// a step (under 2 ms on `small`; `rossl bench` prints them) and the host's work between two
/// steps; a longer pause (loading a batch, writing a checkpoint) is spent parked. It also bounds
/// the one stall keepers can cause: a keeper may start on a worker that waits, inside a task of
/// a step, for a stolen half of a rayon `join` (with two steps at once on one pool, as in tests,
/// or in a rare race when a worker steals a task of a step before it takes its keeper); that task
/// resumes once the keeper leaves, at the latest 20 ms after the pool last had work for it. A
/// worker inside a shared loop ([`crate::share`]) never starts a keeper.
const KEEP_IDLE: Duration = Duration::from_millis(20);

/// How many times the operating system has taken the core from this thread while it could
/// still run (involuntary context switches: another task was given the core), where the system
/// says.
fn preemptions() -> Option<i64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage writes into the zeroed struct it is given.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            (libc::getrusage(libc::RUSAGE_THREAD, &mut usage) == 0).then_some(usage)
        };
        usage.map(|u| u.ru_nivcsw)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// How long a keeper's yield of its core to the operating system must last for the keeper to
/// count it as taken by another task: a competing process gets time slices of milliseconds, a
/// kernel thread's work a few microseconds.
const CONTENDED: Duration = Duration::from_micros(200);

/// How many yields within [`KEEP_IDLE`] must find the core taken for a keeper to leave. One is
/// not enough: candle's own thread pool (`candle-bp`) takes the core for about 0.7 ms once a
/// `small` step; a process competing for the core takes it at every yield.
const CONTENDED_TIMES: usize = 3;

/// The keeper loop of one worker: runs the pool's tasks as they come, until none came for
/// [`KEEP_IDLE`], other tasks held its core for over [`CONTENDED`] at [`CONTENDED_TIMES`]
/// yields within [`KEEP_IDLE`] while it waited idle (the operating system switched to them: a
/// keeper only helps a step when the core would otherwise sit idle), or the wait is set to
/// [`PoolWait::Park`].
fn keep() {
    if STEPPING.with(Cell::get) || KEEPING.with(Cell::get) || IN_LOOP.with(Cell::get) {
        return;
    }
    let _keeping = Mark::set(&KEEPING);
    let _counted = Keeper::count();
    let mut idle_polls = 0u32;
    let mut idle_since: Option<Instant> = None;
    // when the last CONTENDED_TIMES yields that found the core taken ended, oldest first
    let mut contended: [Option<Instant>; CONTENDED_TIMES] = [None; CONTENDED_TIMES];
    while wait_mode() == PoolWait::Spin {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {
                idle_polls = 0;
                idle_since = None;
            }
            Some(rayon::Yield::Idle) if idle_polls < SPIN_POLLS => {
                idle_polls += 1;
                std::hint::spin_loop();
            }
            Some(rayon::Yield::Idle) => {
                if idle_since.get_or_insert_with(Instant::now).elapsed() > KEEP_IDLE {
                    return;
                }
                let (preempted_before, yielded) = (preemptions(), Instant::now());
                std::thread::yield_now();
                if yielded.elapsed() > CONTENDED && preemptions() != preempted_before {
                    let now = Instant::now();
                    contended.rotate_left(1);
                    contended[CONTENDED_TIMES - 1] = Some(now);
                    if contended[0].is_some_and(|oldest| now - oldest < KEEP_IDLE) {
                        LEFT_CONTENDED.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
            None => return,
        }
    }
}

/// Keepers running now, in every pool.
static KEEPERS: AtomicUsize = AtomicUsize::new(0);

/// Whether a keeper left because other tasks held its core since the last step began: keepers
/// then come back only with the next step.
static LEFT_CONTENDED: AtomicBool = AtomicBool::new(false);

/// When keepers were last sent back during a step, in microseconds since [`epoch`].
static REARMED_AT_US: AtomicU64 = AtomicU64::new(0);

/// How often at most a step sends its keepers back.
const REARM_EVERY: Duration = Duration::from_millis(1);

/// The instant that [`REARMED_AT_US`] counts from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Counts a keeper in [`KEEPERS`] while it lives.
struct Keeper;

impl Keeper {
    fn count() -> Self {
        KEEPERS.fetch_add(1, Ordering::Relaxed);
        Keeper
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        KEEPERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends every other worker of the pool into a keeper loop (the calling worker, and a worker that
/// is a keeper already, skip it).
fn send_keepers() {
    // the step's own thread skips its copy, even when it only finds it after the step
    let stepper = rayon::current_thread_index();
    rayon::spawn_broadcast(move |worker| {
        if Some(worker.index()) != stepper {
            keep();
        }
    });
}

/// Microseconds since [`epoch`].
fn micros_since_epoch() -> u64 {
    micros(epoch().elapsed())
}

/// Called by a parallel loop ([`crate::share`]) on the thread that runs a step: when fewer
/// keepers run than the pool has other workers, sends them again, at most once per
/// [`REARM_EVERY`], so that the rest of the step does not wake parked workers at every loop.
/// Keepers leave for want of work during a long serial stretch of the step (over [`KEEP_IDLE`]: a
/// `resnet18` step has one of 30 ms). Once a keeper has left because other tasks held its core,
/// none is sent again until the next step, as before this existed: those tasks can be the step's
/// own (candle's pool thread, `candle-bp`, spins for a while after each of candle's operations,
/// many of which run in the head and the optimiser of a `resnet18` step), which a keeper would
/// then compete with.
pub(crate) fn rearm_keepers() {
    let threads = rayon::current_num_threads();
    if threads < 2
        || wait_mode() != PoolWait::Spin
        || !STEPPING.with(Cell::get)
        || KEEPERS.load(Ordering::Relaxed) >= threads - 1
        || LEFT_CONTENDED.load(Ordering::Relaxed)
    {
        return;
    }
    let now = micros_since_epoch();
    let last = REARMED_AT_US.load(Ordering::Relaxed);
    if now.saturating_sub(last) < micros(REARM_EVERY)
        || REARMED_AT_US
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    send_keepers();
}

/// `d` in whole microseconds.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs `f` on a worker thread of the rayon pool (at once, if this is one) and returns its result.
///
/// A training or attack step is a chain of parallel kernels. Started from a thread outside the
/// pool, each kernel is handed to the pool while the caller sleeps until it is done, and its
/// first task waits for a worker to wake up; started on a worker, the caller begins its own share
/// at once while the other workers steal the rest. In alternated `rossl bench --workload small`
/// runs a step took 2-6% less time this way. With [`PoolWait::Spin`] (the default) the other
/// workers become keepers (see the module's documentation).
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| {
        if STEPPING.with(Cell::get) {
            return f();
        }
        let _stepping = Mark::set(&STEPPING);
        if wait_mode() == PoolWait::Spin && rayon::current_num_threads() > 1 {
            LEFT_CONTENDED.store(false, Ordering::Relaxed);
            // (the keepers count themselves only once they start: the step's first loop must not
            // take their absence for a departure and send them a second time)
            REARMED_AT_US.store(micros_since_epoch(), Ordering::Relaxed);
            send_keepers();
        }
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn steps_finish_with_keepers_nested_and_concurrent_and_after_a_panic() {
        // run on a watchdog: a keeper that never left would hang the test, not fail it
        let (done, finished) = std::sync::mpsc::channel();
        let steps = std::thread::spawn(move || {
            steps_with_keepers();
            let _ = done.send(());
        });
        let waited = finished.recv_timeout(std::time::Duration::from_secs(60));
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = waited {
            panic!("the steps did not finish within 60 s: a keeper never left");
        }
        if let Err(panic) = steps.join() {
            std::panic::resume_unwind(panic);
        }
    }

    fn steps_with_keepers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("a pool");
        pool.install(|| {
            let sum = |n: u64| (0..n).into_par_iter().map(|i| i * i).sum::<u64>();
            // a step with a nested step, two steps from two threads at once, and a step that
            // panics: each returns (a keeper stacked on a step, or one that never left, would hang it)
            assert_eq!(
                on_pool(|| sum(1000) + on_pool(|| sum(10))),
                332_833_500 + 285
            );
            let (a, b) = rayon::join(|| on_pool(|| sum(2000)), || on_pool(|| sum(3000)));
            assert_eq!((a, b), (2_664_667_000, 8_995_500_500));
            let panicked = std::panic::catch_unwind(|| on_pool(|| panic!("step failed")));
            assert!(panicked.is_err());
            assert_eq!(on_pool(|| sum(4)), 14);
        });
    }

    #[test]
    fn pool_wait_parses_its_two_values_and_names_a_bad_one() {
        assert_eq!("spin".parse::<PoolWait>(), Ok(PoolWait::Spin));
        assert_eq!("park".parse::<PoolWait>(), Ok(PoolWait::Park));
        let err = "sleep".parse::<PoolWait>().unwrap_err();
        assert!(err.contains("\"sleep\"") && err.contains("spin"), "{err}");
    }
}
