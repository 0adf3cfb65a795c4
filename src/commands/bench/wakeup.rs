//! `rossl bench --workload wakeup`: what a parallel region costs on rossl's pool after the pool
//! has been idle for a while, the suspected cause of a training step that falls to one core on a
//! shared host (its workers park between regions, and a parked worker on a busy host may wake
//! late).
//!
//! For each idle gap (0, 20 us, 200 us, 2 ms, 20 ms) it runs `--steps` x 100 regions, each after
//! that gap: a fixed amount of arithmetic split in two halves, one per thread, started from a
//! pool worker as rossl's kernels are (`rossl_kernels::on_pool`). It prints the median and 90th
//! percentile time of a region per gap, the time of the same work on one thread, and the CPU
//! time over wall time of the regions: a region that waited for a sleeping worker takes about
//! the single-thread time or more, with CPU per wall near 1.

use super::{median, BenchArgs};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The idle gaps before a region, in microseconds.
const GAPS_US: [u64; 5] = [0, 20, 200, 2_000, 20_000];

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

/// Waits `gap` without giving the core away when short (a spin below 100 us, a sleep above), as
/// the host of a training step waits between kernels.
fn idle(gap: Duration) {
    if gap < Duration::from_micros(100) {
        let start = Instant::now();
        while start.elapsed() < gap {
            std::hint::spin_loop();
        }
    } else {
        std::thread::sleep(gap);
    }
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values.get(index).copied().unwrap_or(0.0)
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
    let mut summary = Vec::new();
    for gap_us in GAPS_US {
        let gap = Duration::from_micros(gap_us);
        let (times, cpu_per_wall) = rossl_kernels::on_pool(|| {
            let mut times = Vec::with_capacity(regions);
            let (mut cpu, mut wall) = (0.0, 0.0);
            for _ in 0..regions {
                idle(gap);
                let cpu0 = super::step::cpu_seconds();
                let t = Instant::now();
                black_box(region(n));
                let dt = t.elapsed().as_secs_f64();
                cpu += super::step::cpu_seconds() - cpu0;
                wall += dt;
                times.push(dt);
            }
            (times, cpu / wall.max(1e-12))
        });
        let (mut a, mut b) = (times.clone(), times);
        let (med, p90) = (median(&mut a), quantile(&mut b, 0.9));
        println!(
            "gap {gap_us:>6} us: region median {:>7.1} us, p90 {:>7.1} us ({:.2}x one thread), cpu/wall {cpu_per_wall:.2}",
            med * 1e6,
            p90 * 1e6,
            med / single.max(1e-12)
        );
        summary.push(format!(
            "gap{gap_us}us_median_over_single={:.2}",
            med / single.max(1e-12)
        ));
    }
    println!(
        "RESULT workload=wakeup regions_per_gap={regions} {}",
        summary.join(" ")
    );
    Ok(())
}
