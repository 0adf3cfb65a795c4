//! `rossl bench`: times the CF-AMC-SSL inner training step exactly as the PyTorch reference
//! (`torch_reference.py`) does, and the view pipeline.

use clap::Args;
use rossl_api::adversarial;
use rossl_api::components::{Mode, ParamRole, SslLoss, ViewStrategy};
use rossl_api::registry;
use rossl_api::rng::Rng;
use rossl_encoders::resnet::{ResNetEncoder, ResNetSpec};
use rossl_kernels::profile;
use rossl_nn::optim::SgdLars;
use rossl_nn::optim::{LarsConfig, OptimConfig};
use rossl_runtime::objective::{SslObjective, Term};
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `rossl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `small`, `resnet18`, `resnet18-paper` (the training step), or `views` (the augmentation
    /// pipeline: 16 views of 32x32 RGB images).
    #[arg(long, default_value = "small")]
    pub workload: String,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Threads (0: every core).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Device: cpu, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// `free`: one free-training replay, the reference's step (forward on x + delta, backward to
    /// the weights and delta, update, sign step); `standard`: a standard step on x alone.
    #[arg(long, default_value = "free")]
    pub regime: String,
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// A training-step workload of the reference benchmark.
struct Workload {
    in_ch: usize,
    hw: usize,
    widths: Vec<usize>,
    blocks: usize,
    hidden: usize,
    z_dim: usize,
    images: usize,
    crops: usize,
}

fn workload(name: &str) -> anyhow::Result<Workload> {
    let (in_ch, hw, widths, blocks, hidden, z_dim, images, crops) = match name {
        "small" => (1, 28, vec![16, 32, 64, 128], 1, 512, 128, 16, 16),
        "resnet18" => (3, 32, vec![64, 128, 256, 512], 2, 4096, 1024, 4, 16),
        "resnet18-paper" => (3, 32, vec![64, 128, 256, 512], 2, 4096, 1024, 100, 16),
        other => anyhow::bail!(
            "unknown workload `{other}`: use small, resnet18, resnet18-paper or views"
        ),
    };
    Ok(Workload {
        in_ch,
        hw,
        widths,
        blocks,
        hidden,
        z_dim,
        images,
        crops,
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn loss_from_registry(name: &str) -> anyhow::Result<Box<dyn SslLoss>> {
    Ok(registry::build::<dyn SslLoss>(
        name,
        "",
        &rossl_api::components::BuildContext::cpu(0),
    )?)
}

fn bench_step(args: &BenchArgs) -> anyhow::Result<()> {
    let w = workload(&args.workload)?;
    let free = match args.regime.as_str() {
        "free" => true,
        "standard" => false,
        other => anyhow::bail!("unknown regime `{other}`: use free or standard"),
    };
    let device =
        rossl_runtime::device::select_device(args.device.parse().map_err(anyhow::Error::msg)?)?;
    let dev = device.device.clone();
    let spec = ResNetSpec {
        in_channels: w.in_ch,
        widths: w.widths.clone(),
        blocks: vec![w.blocks; w.widths.len()],
        hidden: w.hidden,
        z_dim: w.z_dim,
    };
    let encoder = ResNetEncoder::new(spec, 0, &dev)?;
    let objective = SslObjective::new(vec![
        Term {
            name: "invariance".into(),
            weight: 200.0,
            loss: loss_from_registry("invariance")?,
        },
        Term {
            name: "tcr".into(),
            weight: 1.0,
            loss: loss_from_registry("tcr")?,
        },
    ])?;
    // plain SGD, lr 0.01, as the reference
    let sgd = OptimConfig {
        lr: 0.01,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
        lars: LarsConfig {
            enabled: false,
            ..LarsConfig::default()
        },
        ..OptimConfig::default()
    };
    let params: Vec<_> = rossl_api::components::Encoder::parameters(&encoder)
        .into_iter()
        .map(|mut p| {
            p.role = ParamRole::Weight;
            p
        })
        .collect();
    let mut optimizer = SgdLars::new(params, &sgd);
    let n = w.images * w.crops;
    let mut rng = Rng::new(0);
    let pixels: Vec<f32> = (0..n * w.in_ch * w.hw * w.hw)
        .map(|_| rng.uniform() as f32)
        .collect();
    let x = candle_core::Tensor::from_vec(pixels, (n, w.in_ch, w.hw, w.hw), &dev)?;
    let mut delta = x.zeros_like()?;
    let (eps, alpha) = (8.0 / 255.0, 0.01);
    let mut times = Vec::new();
    // Per phase: (wall seconds, process CPU seconds), summed over the timed steps.
    let mut phases: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    let sync = |t: &candle_core::Tensor| -> anyhow::Result<()> {
        t.device().synchronize()?;
        Ok(())
    };
    profile::enable(true);
    let (mut timed_cpu, mut timed_wall) = (0.0, 0.0);
    for step in 0..args.warmup + args.steps {
        let cpu0 = cpu_seconds();
        profile::reset();
        sync(&x)?;
        let t0 = (Instant::now(), profile::process_cpu_seconds());
        let delta_var = candle_core::Var::from_tensor(&delta)?;
        let input = if free {
            (&x + delta_var.as_tensor())?
        } else {
            x.clone()
        };
        let embedding = rossl_api::components::Encoder::forward(&encoder, &input, Mode::Train)?;
        sync(&embedding.projection)?;
        let t1 = (Instant::now(), profile::process_cpu_seconds());
        let value = objective.evaluate(&embedding.projection, w.crops)?;
        let loss = value.finite_total()?;
        let t2 = (Instant::now(), profile::process_cpu_seconds());
        let mut grads = value.total.backward()?;
        rossl_api::components::Encoder::route_gradients(&encoder, &mut grads)?;
        sync(&x)?;
        let t3 = (Instant::now(), profile::process_cpu_seconds());
        optimizer.step(&grads, 0.01)?;
        sync(&x)?;
        let t4 = (Instant::now(), profile::process_cpu_seconds());
        let g = grads
            .get(delta_var.as_tensor())
            .cloned()
            .unwrap_or(delta.zeros_like()?);
        delta = adversarial::clip_delta(&x, &(&delta + (g.sign()? * alpha)?)?, eps)?;
        sync(&delta)?;
        let t5 = (Instant::now(), profile::process_cpu_seconds());
        let dt = (t5.0 - t0.0).as_secs_f64();
        eprintln!("step {step} loss {loss:.4} {dt:.3}s");
        if step >= args.warmup {
            times.push(dt);
            timed_cpu += cpu_seconds() - cpu0;
            timed_wall += dt;
            let mut add = |k: &str, wall: f64, cpu: f64| {
                let e = phases.entry(k.to_string()).or_default();
                e.0 += wall;
                e.1 += cpu;
            };
            let span =
                |a: (Instant, f64), b: (Instant, f64)| ((b.0 - a.0).as_secs_f64(), b.1 - a.1);
            for (name, (a, b)) in [
                ("forward (total)", (t0, t1)),
                ("loss", (t1, t2)),
                ("backward (total)", (t2, t3)),
                ("optimiser", (t3, t4)),
                ("perturbation update", (t4, t5)),
            ] {
                let (wall, cpu) = span(a, b);
                add(name, wall, cpu);
            }
            for (name, total) in profile::totals() {
                add(name, total.wall_s, total.cpu_s);
            }
        }
    }
    profile::enable(false);
    let timed = times.len().max(1) as f64;
    let med = median(&mut times.clone());
    println!(
        "RESULT workload={} device={} threads={} steps={} median_step_s={med:.4} images_per_s={:.1} regime={} cpu_per_wall={:.2}",
        args.workload,
        device.description,
        rayon::current_num_threads(),
        times.len(),
        n as f64 / med,
        args.regime,
        timed_cpu / timed_wall.max(1e-9)
    );
    println!("phase breakdown (mean seconds per step; cores: CPU time over wall time):");
    let get = |k: &str| {
        let (wall, cpu) = phases.get(k).copied().unwrap_or((0.0, 0.0));
        (wall / timed, cpu / timed)
    };
    let minus = |a: (f64, f64), parts: &[(f64, f64)]| {
        parts.iter().fold(a, |acc, p| (acc.0 - p.0, acc.1 - p.1))
    };
    let forward = get("forward (total)");
    let backward = get("backward (total)");
    let rows = [
        ("forward (total)", forward),
        ("  conv", get("conv.forward")),
        ("  batch norm + relu", get("batchnorm.forward")),
        (
            "  other (linear, add, pool, permute)",
            minus(forward, &[get("conv.forward"), get("batchnorm.forward")]),
        ),
        (
            "  (fused backbone forward, all of it)",
            get("backbone.forward (all)"),
        ),
        ("loss (EMP: invariance + TCR)", get("loss")),
        ("backward (total)", backward),
        ("  conv input gradient", get("conv.backward.input")),
        ("  conv weight gradient", get("conv.backward.weight")),
        ("  batch norm + relu", get("batchnorm.backward")),
        (
            "  other (linear, add, pool, loss)",
            minus(
                backward,
                &[
                    get("conv.backward.input"),
                    get("conv.backward.weight"),
                    get("batchnorm.backward"),
                ],
            ),
        ),
        (
            "  (fused backbone backward, all of it)",
            get("backbone.backward (all)"),
        ),
        ("optimiser", get("optimiser")),
        ("perturbation update", get("perturbation update")),
    ];
    for (name, (wall, cpu)) in rows {
        let cores = if wall > 1e-6 { cpu / wall } else { 0.0 };
        println!("  {name:<40} {wall:>8.4} s  {cores:>5.2} cores");
    }
    Ok(())
}

fn bench_views(args: &BenchArgs) -> anyhow::Result<()> {
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
    let loader = rossl_runtime::data::Loader::new(
        set.clone(),
        std::sync::Arc::from(views),
        rossl_runtime::data::LoaderSettings {
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

/// Runs `rossl bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    rossl_runtime::device::configure_threads(args.threads);

    if args.workload == "views" {
        bench_views(args)?;
    } else {
        bench_step(args)?;
    }
    Ok(ExitCode::SUCCESS)
}
