//! Parallel loops over a fixed list of tasks, whose waits do not park a thread in the middle of
//! a step.
//!
//! A rayon parallel loop is a tree of `join`s. The thread that finishes its half of a `join`
//! first waits there for the other half; after 32 rounds of looking for work (tens of
//! microseconds on an idle core) rayon parks it, and the thread that finishes the other half
//! has to wake it (a futex wake; on a virtual machine a halted vCPU). `perf record -e
//! sched:sched_switch` put about three quarters of the voluntary context switches of a `small`
//! step with keepers ([`crate::pool`]) in those waits.
//!
//! [`for_each_task`] and [`map_tasks`] cut tasks `0..tasks` into one contiguous share per thread
//! and run them on the calling worker and on one helper job per other worker of the pool (fewer
//! when there are fewer tasks than threads), which a keeper, when there is one, picks up at once.
//! Each thread takes the tasks of its own share in order, from that share's counter, and then
//! what is left of the others'; the calling thread then waits for the last running tasks by
//! polling (it runs any task of the pool meanwhile, as the keepers do, so a loop nested in a task
//! on another thread gets its help) instead of parking. A loop has one such wait, at its end,
//! which normally lasts at most one task. This applies while the pool waits by spinning
//! ([`PoolWait::Spin`], the default) and the caller is a worker of the pool (as every step is,
//! through [`crate::on_pool`]); otherwise the loop is rayon's own parallel iterator, as before.
//!
//! Which thread runs a task does not change what it computes: every task does the same work on
//! the same data in either path, so the results are the same bits.

use crate::pool::{wait_mode, PoolWait};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Polls of the waiting thread spent in a spin-wait hint before it starts to give its core to the
/// operating system between polls (as a keeper does).
const SPIN_POLLS: u32 = 256 * POLLS_PER_STEAL;

/// The waiting thread looks for a task of the pool at one poll in this many: a steal attempt
/// reads the other workers' queues, whose cache lines the threads at work then have to fetch
/// back.
const POLLS_PER_STEAL: u32 = 32;

/// Whether loops started on this thread share their tasks by polling: the pool spins and this
/// thread is one of its workers, with another worker to share with.
fn shares_by_polling() -> bool {
    wait_mode() == PoolWait::Spin
        && rayon::current_thread_index().is_some()
        && rayon::current_num_threads() > 1
}

/// Counts a task as finished when dropped, also when the task panics (the panic then reaches
/// the caller through the scope, and the waiting thread does not wait for it forever).
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// Runs `run(t)` once for each `t` in `0..tasks`, on the pool's threads, and returns when all
/// have finished. Each thread takes the tasks of its own contiguous share first, the calling
/// thread the first share; which thread runs each task is otherwise unspecified.
pub fn for_each_task(tasks: usize, run: impl Fn(usize) + Sync) {
    if tasks == 0 {
        return;
    }
    if tasks == 1 {
        run(0);
        return;
    }
    if !shares_by_polling() {
        (0..tasks).into_par_iter().for_each(&run);
        return;
    }
    crate::pool::rearm_keepers();
    let pool = rayon::current_num_threads();
    let threads = pool.min(tasks);
    let shares = Shares::new(tasks, threads);
    let finished = AtomicUsize::new(0);
    let caller = rayon::current_thread_index().unwrap_or(0);
    let take_tasks = |home: usize| {
        let _in_loop = crate::pool::InLoop::enter();
        while let Some(t) = shares.take(home) {
            let _finished = Finished(&finished);
            run(t);
        }
    };
    // marked for the whole scope, its end included: a keeper started while this thread waits
    // there would sit on top of the loop
    let _in_loop = crate::pool::InLoop::enter();
    rayon::in_place_scope(|scope| {
        for _ in 1..threads {
            // a helper's share follows its worker's index from the caller's, so that each
            // worker tends to get the same share loop after loop (two workers may share one)
            scope.spawn(|_| {
                let me = rayon::current_thread_index().unwrap_or(caller);
                take_tasks((me + pool - caller) % pool % threads);
            });
        }
        take_tasks(0);
        wait_polling(|| finished.load(Ordering::Acquire) >= tasks);
    });
}

/// The tasks `0..tasks` cut into one contiguous share per thread. A thread takes the tasks of
/// its own share first, in order, and then those left in the others' shares. The calling thread
/// always has the first share and a helper the share that its worker's index gives, so that
/// consecutive loops over the same data tend to give each thread the same part of it, still in
/// its core's cache (as rayon's halving does).
struct Shares {
    /// The next task of each share (past its end once the share is exhausted).
    next: Vec<AtomicUsize>,
    /// The number of tasks.
    tasks: usize,
}

impl Shares {
    fn new(tasks: usize, threads: usize) -> Self {
        Shares {
            next: (0..threads)
                .map(|k| AtomicUsize::new(k * tasks / threads))
                .collect(),
            tasks,
        }
    }

    /// The end of share `k`: the start of the next.
    fn end(&self, k: usize) -> usize {
        (k + 1) * self.tasks / self.next.len()
    }

    /// The next task for the thread whose share is `home`, if any is left.
    fn take(&self, home: usize) -> Option<usize> {
        let shares = self.next.len();
        (0..shares).find_map(|k| {
            let share = (home + k) % shares;
            let t = self.next[share].fetch_add(1, Ordering::Relaxed);
            (t < self.end(share)).then_some(t)
        })
    }
}

/// `map(t)` for each `t` in `0..tasks`, run as [`for_each_task`] runs its tasks, in the order
/// of `t`.
pub fn map_tasks<R: Send>(tasks: usize, map: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let mut slots: Vec<Option<R>> = (0..tasks).map(|_| None).collect();
    for_each_chunk_mut(&mut slots, 1, |t, slot| slot[0] = Some(map(t)));
    slots
        .into_iter()
        .map(|slot| slot.expect("every task stored its value"))
        .collect()
}

/// `run(i, chunk)` for each chunk of `slice` (chunk `i` holds elements `i * chunk ..`, the last
/// one fewer), run as [`for_each_task`] runs its tasks.
pub fn for_each_chunk_mut<T: Send>(
    slice: &mut [T],
    chunk: usize,
    run: impl Fn(usize, &mut [T]) + Sync,
) {
    let (len, chunk) = (slice.len(), chunk.max(1));
    let base = SlicePtr(slice.as_mut_ptr());
    for_each_task(len.div_ceil(chunk), |i| {
        let start = i * chunk;
        // SAFETY: `slice` is borrowed exclusively for the whole loop, each task index runs once,
        // and chunk `i` (`start..start + chunk`, cut at `len`) is disjoint from every other
        // chunk and inside the slice.
        let part =
            unsafe { std::slice::from_raw_parts_mut(base.at(start), chunk.min(len - start)) };
        run(i, part);
    });
}

/// `run(t, part)` for each part `t` of `parts`, run as [`for_each_task`] runs its tasks (each
/// part moves into the one task that takes it).
pub fn for_each_part<P: Send>(parts: Vec<P>, run: impl Fn(usize, P) + Sync) {
    let mut slots: Vec<Option<P>> = parts.into_iter().map(Some).collect();
    for_each_chunk_mut(&mut slots, 1, |t, slot| {
        if let Some(part) = slot[0].take() {
            run(t, part);
        }
    });
}

/// The start of a slice that the tasks of one loop write in disjoint chunks.
struct SlicePtr<T>(*mut T);
// SAFETY: the pointer is only used by `for_each_chunk_mut`, whose tasks touch disjoint chunks of
// a slice of `Send` elements that it borrows exclusively.
unsafe impl<T: Send> Send for SlicePtr<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send> Sync for SlicePtr<T> {}

impl<T> SlicePtr<T> {
    /// The pointer to element `offset` (a method, so that closures capture the whole
    /// `SlicePtr`, not its field).
    ///
    /// # Safety
    /// `offset` must be within the slice.
    unsafe fn at(&self, offset: usize) -> *mut T {
        // SAFETY: the caller keeps `offset` within the slice.
        unsafe { self.0.add(offset) }
    }
}

/// Polls until `done()`, running any task of the pool meanwhile; after [`SPIN_POLLS`] idle polls
/// it gives its core to the operating system between polls.
fn wait_polling(done: impl Fn() -> bool) {
    let _in_loop = crate::pool::InLoop::enter();
    let mut polls = 0u32;
    while !done() {
        polls = polls.saturating_add(1);
        if !polls.is_multiple_of(POLLS_PER_STEAL) {
            std::hint::spin_loop();
            continue;
        }
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => polls = 0,
            _ if polls < SPIN_POLLS => {}
            _ => std::thread::yield_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{on_pool, set_wait};

    /// A pool of `threads` for these tests (the global pool is shared with every other test).
    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a pool")
    }

    #[test]
    fn every_task_runs_once_nested_in_order_and_a_panic_reaches_the_caller() {
        // on a watchdog: a wait that never ended would hang the test, not fail it
        let (sent, received) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let _serial = crate::isa::test_lock();
            set_wait(PoolWait::Spin);
            pool(3).install(|| {
                on_pool(|| {
                    assert!(shares_by_polling());
                    let counts: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
                    for_each_task(100, |t| {
                        // a nested loop in every tenth task
                        let inner = if t % 10 == 0 {
                            map_tasks(7, |i| i * t).iter().sum::<usize>()
                        } else {
                            0
                        };
                        assert_eq!(inner, if t % 10 == 0 { 21 * t } else { 0 });
                        counts[t].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                    assert_eq!(map_tasks(5, |t| t * t), vec![0, 1, 4, 9, 16]);
                    let failed = std::panic::catch_unwind(|| {
                        for_each_task(8, |t| assert!(t != 5, "task 5 fails"));
                    });
                    assert!(failed.is_err(), "the task's panic reaches the caller");
                    assert_eq!(map_tasks(3, |t| t + 1), vec![1, 2, 3]);
                });
            });
            let _ = sent.send(());
        });
        let waited = received.recv_timeout(std::time::Duration::from_secs(60));
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = waited {
            panic!("the loops did not finish within 60 s");
        }
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
    }

    #[test]
    fn outside_the_pool_and_with_parking_the_loop_is_rayons() {
        let _serial = crate::isa::test_lock();
        assert!(!shares_by_polling(), "the test thread is not a worker");
        assert_eq!(map_tasks(4, |t| 2 * t), vec![0, 2, 4, 6]);
        /// Sets the wait back to spinning when dropped, also when the test fails.
        struct SpinAgain;
        impl Drop for SpinAgain {
            fn drop(&mut self) {
                set_wait(PoolWait::Spin);
            }
        }
        let _spin_again = SpinAgain;
        set_wait(PoolWait::Park);
        let parked = pool(2).install(|| (shares_by_polling(), map_tasks(3, |t| t)));
        assert_eq!(parked, (false, vec![0, 1, 2]));
    }
}
