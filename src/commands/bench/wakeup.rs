//! `rossl bench --workload wakeup`: what a parallel region costs on rossl's pool after a stretch
//! of serial work, the suspected cause of a training step that falls to one core on a shared
//! host (the pool's other workers park between regions, and a parked worker on a busy host may
//! wake late).
//!
//! For each gap (0, 20 us, 200 us, 2 ms, 10 ms, 50 ms) it runs `--steps` x 100 regions (at most
//! 100 for the gaps of 10 ms and more), each after that gap of busy waiting on the calling
//! thread: a fixed amount of arithmetic split in two halves, one per thread, started from a
//! pool worker as rossl's kernels are (`rossl_kernels::on_pool`); once with the other worker
//! left to rayon, which parks it (`park`), once with it kept polling for work (`spin`, rossl's
//! default; a keeper leaves after 20 ms without work, so the 50 ms gap shows a parked worker in
//! both). It prints the median and 90th percentile time of a region per gap and wait over the
//! time of the same work on one thread, and the CPU time over wall time of the whole loop (what
//! keeping a worker awake costs): a region that waited for a sleeping
//! worker takes 0.5 to 1 times the single-thread time.

use super::{median, BenchArgs};
use rossl_kernels::pool::PoolWait;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The gaps of busy serial work before a region, in microseconds.
const GAPS_US: [u64; 6] = [0, 20, 200, 2_000, 10_000, 50_000];

/// Work of about 50 us on one core of the reference machine: a dependent chain of `n`
/// multiply-adds.
fn work(n: usize, seed: f64) -> f64 {
    let mut x = seed;
    for i in 0..n {
        x = x.mul_add(0.999_999, (i & 7) as f64 * 1e-9);
    }
    x
}

/// One region: the two halves of the work on two threads of the pool.
fn region(n: usize) -> f64 {
    let (a, b) = rayon::join(|| work(n / 2, 1.0), || work(n / 2, 2.0));
    a + b
}

/// Waits `gap` busy on the calling thread, as the serial work between two kernels of a step
/// keeps it (candle's element-wise operations, the loss, bookkeeping).
fn serial_work(gap: Duration) {
    let start = Instant::now();
    while start.elapsed() < gap {
        std::hint::spin_loop();
    }
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values.get(index).copied().unwrap_or(0.0)
}

/// Times `regions` regions of `n` multiply-adds, each after `gap`, in one call of `on_pool`;
/// returns their times and the process's CPU time over the wall time of the whole loop, gaps
/// included (what keeping a worker awake costs; over a single region of 100 us the operating
/// system's accounting of the other thread is too coarse to read).
fn time_regions(n: usize, regions: usize, gap: Duration) -> (Vec<f64>, f64) {
    rossl_kernels::on_pool(|| {
        let (loop_cpu, loop_wall) = (
            rossl_kernels::profile::process_cpu_seconds(),
            Instant::now(),
        );
        let mut times = Vec::with_capacity(regions);
        for _ in 0..regions {
            serial_work(gap);
            let t = Instant::now();
            black_box(region(n));
            times.push(t.elapsed().as_secs_f64());
        }
        let whole = (rossl_kernels::profile::process_cpu_seconds() - loop_cpu)
            / loop_wall.elapsed().as_secs_f64().max(1e-12);
        (times, whole)
    })
}

/// Times the regions after each gap and prints one line per gap and a `RESULT` line.
pub(super) fn bench_wakeup(args: &BenchArgs) -> anyhow::Result<()> {
    let n = 100_000;
    let regions = args.steps.max(1) * 100;
    let single = {
        let mut times: Vec<f64> = (0..regions.min(200))
            .map(|_| {
                let t = Instant::now();
                black_box(work(n, 1.0));
                t.elapsed().as_secs_f64()
            })
            .collect();
        median(&mut times)
    };
    println!(
        "one thread, the whole work: {:.1} us; the pool: {} threads",
        single * 1e6,
        rayon::current_num_threads()
    );
    // wakes the pool's threads and faults in their stacks before anything is timed
    time_regions(n, 50, Duration::ZERO);
    let mut summary = Vec::new();
    for gap_us in GAPS_US {
        let regions = if gap_us >= 10_000 {
            regions.min(100)
        } else {
            regions
        };
        summary.push(format!("gap{gap_us}us_regions={regions}"));
        for wait in [PoolWait::Park, PoolWait::Spin] {
            rossl_kernels::pool::set_wait(wait);
            let (mut times, cpu_per_wall) = time_regions(n, regions, Duration::from_micros(gap_us));
            let (med, p90) = (median(&mut times.clone()), quantile(&mut times, 0.9));
            println!(
                "gap {gap_us:>6} us, {wait}: region median {:>7.1} us, p90 {:>7.1} us ({:.2}x one thread); cpu/wall over gaps and regions {cpu_per_wall:.2}",
                med * 1e6,
                p90 * 1e6,
                med / single.max(1e-12)
            );
            summary.push(format!(
                "gap{gap_us}us_{wait}_median_over_single={:.2}",
                med / single.max(1e-12)
            ));
        }
    }
    rossl_kernels::pool::set_wait(args.pool_wait);
    println!("RESULT workload=wakeup {}", summary.join(" "));
    Ok(())
}
