//! The view pipeline's throughput.

use super::{median, BenchArgs};
use rossl_api::components::ViewStrategy;
use rossl_api::registry;
use rossl_api::rng::Rng;
use std::time::Instant;

/// Times the rendering of 16 views of 32x32 RGB images with EMP-SSL's augmentations.
pub(super) fn bench_views(args: &BenchArgs) -> anyhow::Result<()> {
    let views = registry::build::<dyn ViewStrategy>(
        "multi-crop",
        "",
        &rossl_api::components::BuildContext::cpu(0),
    )?;
    let images = 256;
    let mut rng = Rng::new(1);
    let set: Vec<f32> = (0..images * 3 * 32 * 32)
        .map(|_| rng.uniform() as f32)
        .collect();
    let labels = vec![0u32; images];
    let set = std::sync::Arc::new(rossl_api::components::ImageSet::new(
        set,
        labels,
        (3, 32, 32),
        1,
    )?);
    let loader = rossl_runtime::loader::Loader::new(
        set.clone(),
        std::sync::Arc::from(views),
        rossl_runtime::loader::LoaderSettings {
            batch_size: 64,
            workers: rayon::current_num_threads(),
            prefetch: 2,
            seed: 0,
            max_batches: 0,
        },
    )?;
    let mut times = Vec::new();
    for step in 0..args.warmup + args.steps {
        let t0 = Instant::now();
        let batches: Vec<_> = loader.epoch(step).collect();
        let dt = t0.elapsed().as_secs_f64();
        let rendered: usize = batches.iter().map(|b| b.views * b.batch).sum();
        if step >= args.warmup {
            times.push(rendered as f64 / dt);
        }
    }
    let med = median(&mut times);
    println!(
        "RESULT workload=views threads={} views_per_s={med:.0} (16 views of 32x32 RGB, EMP-SSL augmentations, {} images per epoch)",
        rayon::current_num_threads(),
        images
    );
    Ok(())
}
