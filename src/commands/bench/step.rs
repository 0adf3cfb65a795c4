//! The training step, timed exactly as `tests/reference/torch_reference.py` times it: forward on
//! x + delta, the EMP loss (200 x invariance + total coding rate), backward, a plain SGD update,
//! and the sign step on delta; with a breakdown by phase and the cores each phase kept busy.

use super::host::{self, HostCounters};
use super::{median, BenchArgs, StepKind, Workload};
use candle_core::{Tensor, Var};
use rossl_api::components::{BuildContext, Encoder, LossInput, Mode, ParamRole, SslLoss};
use rossl_api::registry;
use rossl_api::rng::Rng;
use rossl_encoders::resnet::{ResNetEncoder, ResNetSpec};
use rossl_kernels::profile;
use rossl_nn::ops::signed_step;
use rossl_nn::optim::{LarsConfig, OptimConfig, SgdLars};
use rossl_nn::precision::Precision;
use rossl_runtime::ssl_loss::{Term, WeightedSslLoss};
use std::collections::BTreeMap;
use std::time::Instant;

/// The shapes of a training-step workload (as the reference's `WORKLOADS`).
pub(super) struct Shapes {
    pub(super) in_ch: usize,
    pub(super) hw: usize,
    pub(super) widths: Vec<usize>,
    pub(super) blocks: usize,
    pub(super) hidden: usize,
    pub(super) z_dim: usize,
    pub(super) images: usize,
    pub(super) crops: usize,
}

pub(super) fn shapes(workload: Workload) -> Shapes {
    let resnet18 = |images| Shapes {
        in_ch: 3,
        hw: 32,
        widths: vec![64, 128, 256, 512],
        blocks: 2,
        hidden: 4096,
        z_dim: 1024,
        images,
        crops: 16,
    };
    match workload {
        Workload::Resnet18 => resnet18(4),
        Workload::Resnet18Paper => resnet18(100),
        Workload::Small
        | Workload::Views
        | Workload::Eval
        | Workload::Layers
        | Workload::Wakeup => Shapes {
            in_ch: 1,
            hw: 28,
            widths: vec![16, 32, 64, 128],
            blocks: 1,
            hidden: 512,
            z_dim: 128,
            images: 16,
            crops: 16,
        },
    }
}

/// Wall and process-CPU seconds, summed per phase over the timed steps.
type Phases = BTreeMap<String, (f64, f64)>;

/// An instant with the process's CPU time then.
type Stamp = (Instant, f64);

fn stamp(sync: &Tensor) -> anyhow::Result<Stamp> {
    sync.device().synchronize()?;
    Ok((Instant::now(), profile::process_cpu_seconds()))
}

/// Everything a step runs on.
pub(super) struct Bench {
    encoder: Box<dyn Encoder>,
    objective: WeightedSslLoss,
    optimizer: SgdLars,
    x: Tensor,
    delta: Tensor,
    crops: usize,
    kind: StepKind,
}

fn loss(name: &str) -> anyhow::Result<Box<dyn SslLoss>> {
    Ok(registry::build::<dyn SslLoss>(
        name,
        "",
        &BuildContext::cpu(0),
    )?)
}

impl Bench {
    /// The batch of images it steps on.
    pub(super) fn input(&self) -> &Tensor {
        &self.x
    }

    /// Its encoder.
    pub(super) fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }

    /// The workload `s` on `dev`, its encoder's training passes in `precision`.
    pub(super) fn new(
        s: &Shapes,
        kind: StepKind,
        precision: Precision,
        dev: &candle_core::Device,
    ) -> anyhow::Result<Self> {
        let spec = ResNetSpec {
            in_channels: s.in_ch,
            widths: s.widths.clone(),
            blocks: vec![s.blocks; s.widths.len()],
            hidden: s.hidden,
            z_dim: s.z_dim,
        };
        let encoder = precision.wrap(Box::new(ResNetEncoder::new(spec, 0, dev)?));
        let objective = WeightedSslLoss::new(vec![
            Term {
                name: "invariance".into(),
                weight: 200.0,
                loss: loss("invariance")?,
            },
            Term {
                name: "tcr".into(),
                weight: 1.0,
                loss: loss("tcr")?,
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
        let params: Vec<_> = encoder
            .parameters()
            .into_iter()
            .map(|mut p| {
                p.role = ParamRole::Weight;
                p
            })
            .collect();
        let n = s.images * s.crops;
        let mut rng = Rng::new(0);
        let pixels: Vec<f32> = (0..n * s.in_ch * s.hw * s.hw)
            .map(|_| rng.uniform() as f32)
            .collect();
        let x = Tensor::from_vec(pixels, (n, s.in_ch, s.hw, s.hw), dev)?;
        Ok(Bench {
            encoder,
            objective,
            optimizer: SgdLars::new(params, &sgd),
            delta: x.zeros_like()?,
            x,
            crops: s.crops,
            kind,
        })
    }

    /// One step: the loss, and the instants between its phases (forward, loss, backward,
    /// optimiser, perturbation update).
    pub(super) fn step(&mut self) -> anyhow::Result<(f64, [Stamp; 6])> {
        rossl_kernels::on_pool(|| self.step_here())
    }

    /// [`Self::step`] on the calling thread.
    fn step_here(&mut self) -> anyhow::Result<(f64, [Stamp; 6])> {
        let t0 = stamp(&self.x)?;
        let delta = Var::from_tensor(&self.delta)?;
        let input = match self.kind {
            StepKind::Free => (&self.x + delta.as_tensor())?,
            StepKind::Standard => self.x.clone(),
        };
        let embedding = self.encoder.forward(&input, Mode::Train)?;
        let t1 = stamp(&embedding.projection)?;
        let value = self
            .objective
            .loss(&LossInput::new(&embedding, self.crops, None))?;
        let loss = value.finite_total()?;
        let t2 = stamp(&self.x)?;
        let mut grads = value.total.backward()?;
        self.encoder.route_gradients(&mut grads)?;
        let t3 = stamp(&self.x)?;
        self.optimizer.step(&grads, 0.01)?;
        let t4 = stamp(&self.x)?;
        let g = match grads.get(delta.as_tensor()) {
            Some(g) => g.clone(),
            None => self.delta.zeros_like()?,
        };
        self.delta = signed_step(&self.x, &self.delta, &g, 0.01, 8.0 / 255.0)?;
        let t5 = stamp(&self.delta)?;
        Ok((loss, [t0, t1, t2, t3, t4, t5]))
    }
}

/// Adds a step's phases (from its instants and the profiler's totals) to `phases`.
fn add_phases(phases: &mut Phases, t: &[Stamp; 6]) {
    let mut add = |k: &str, wall: f64, cpu: f64| {
        let e = phases.entry(k.to_string()).or_default();
        e.0 += wall;
        e.1 += cpu;
    };
    let names = [
        "forward (total)",
        "loss",
        "backward (total)",
        "optimiser",
        "perturbation update",
    ];
    for (i, name) in names.iter().enumerate() {
        let (a, b) = (t[i], t[i + 1]);
        add(name, (b.0 - a.0).as_secs_f64(), b.1 - a.1);
    }
    for (name, total) in profile::totals() {
        add(name, total.wall_s, total.cpu_s);
    }
}

/// Prints the mean seconds per step of each phase and the cores it kept busy.
fn print_breakdown(phases: &Phases, steps: f64) {
    println!("phase breakdown (mean seconds per step; cores: CPU time over wall time):");
    let get = |k: &str| {
        let (wall, cpu) = phases.get(k).copied().unwrap_or((0.0, 0.0));
        (wall / steps, cpu / steps)
    };
    let minus = |a: (f64, f64), parts: &[&str]| {
        parts
            .iter()
            .map(|p| get(p))
            .fold(a, |acc, p| (acc.0 - p.0, acc.1 - p.1))
    };
    let forward = get("forward (total)");
    let backward = get("backward (total)");
    let conv_bwd = [
        "conv.backward.input",
        "conv.backward.weight",
        "batchnorm.backward",
        "dense.backward",
    ];
    let rows = [
        ("forward (total)", forward),
        ("  conv", get("conv.forward")),
        ("  batch norm + relu", get("batchnorm.forward")),
        ("  linear (head)", get("dense.forward")),
        (
            "  other (add, pool, permute, normalise)",
            minus(
                forward,
                &["conv.forward", "batchnorm.forward", "dense.forward"],
            ),
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
        ("  linear (head)", get("dense.backward")),
        (
            "  other (add, pool, normalise, loss)",
            minus(backward, &conv_bwd),
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
}

/// Times `args.steps` training steps of `workload` after `args.warmup` untimed ones; prints a
/// `RESULT` line, warnings about the host, the phase breakdown, the context switches of each
/// thread per step and the idle gaps between rossl's kernels.
pub(super) fn bench_step(workload: Workload, args: &BenchArgs) -> anyhow::Result<()> {
    let s = shapes(workload);
    let device =
        rossl_runtime::device::select_device(args.device.parse().map_err(anyhow::Error::msg)?)?;
    let mut bench = Bench::new(&s, args.regime, args.precision, &device.device)?;
    let mut times = Vec::new();
    let mut phases = Phases::new();
    profile::enable(true);
    let (mut timed_cpu, mut timed_wall) = (0.0f64, 0.0f64);
    let mut gaps: Vec<Vec<f64>> = Vec::new();
    let mut host = HostCounters::zero();
    let mut switches_before = BTreeMap::new();
    for step in 0..args.warmup + args.steps {
        if step == args.warmup {
            switches_before = host::thread_switches();
        }
        let host0 = HostCounters::now();
        let cpu0 = profile::process_cpu_seconds();
        profile::reset();
        let (loss, t) = bench.step()?;
        let (cpu1, host1) = (profile::process_cpu_seconds(), HostCounters::now());
        let dt = (t[5].0 - t[0].0).as_secs_f64();
        eprintln!("step {step} loss {loss:.4} {dt:.3}s");
        if step >= args.warmup {
            times.push(dt);
            timed_cpu += cpu1 - cpu0;
            timed_wall += dt;
            host = host.plus(&host1.since(&host0));
            add_phases(&mut phases, &t);
            gaps.push(profile::gaps());
        }
    }
    let switches_after = host::thread_switches();
    profile::enable(false);
    let med = median(&mut times.clone());
    let cpu_per_wall = timed_cpu / timed_wall.max(1e-9);
    let spread = Spread::of(&times);
    println!(
        "RESULT workload={workload} device={} isa={} (host: {}) threads={} steps={} median_step_s={med:.4} images_per_s={:.1} regime={} cpu_per_wall={cpu_per_wall:.2} precision={} min_step_s={:.4} q1_step_s={:.4} q3_step_s={:.4} max_step_s={:.4} pool_wait={}{}",
        device.description,
        rossl_kernels::isa::active(),
        rossl_kernels::isa::detected(),
        rayon::current_num_threads(),
        times.len(),
        (s.images * s.crops) as f64 / med,
        args.regime,
        args.precision,
        spread.min,
        spread.q1,
        spread.q3,
        spread.max,
        args.pool_wait,
        host.fields(times.len(), timed_wall)
    );
    host::warn_on_a_busy_host(
        &device.device,
        cpu_per_wall,
        host.steal_per_wall(timed_wall),
        (spread.q1, spread.q3),
    );
    print_breakdown(&phases, times.len().max(1) as f64);
    host::print_thread_switches(&switches_before, &switches_after, times.len());
    print_gaps(&gaps);
    Ok(())
}

/// The idle gaps between rossl's profiled kernels in each timed step (time in which none ran,
/// and the pool's workers may park): how many, how long, and how many last over 1 ms.
fn print_gaps(steps: &[Vec<f64>]) {
    let all: Vec<f64> = steps.iter().flatten().copied().collect();
    if all.is_empty() {
        return;
    }
    let n = steps.len().max(1) as f64;
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let long: Vec<f64> = all.iter().copied().filter(|g| *g > 1e-3).collect();
    println!(
        "idle gaps between rossl's kernels, per step: {:.0} gaps, median {:.1} us, p90 {:.1} us, max {:.1} us; {:.1} over 1 ms per step ({:.1} ms of the step)",
        all.len() as f64 / n,
        at(0.5) * 1e6,
        at(0.9) * 1e6,
        at(1.0) * 1e6,
        long.len() as f64 / n,
        long.iter().sum::<f64>() / n * 1e3
    );
}

/// The spread of step times: the smallest, the quartiles and the largest.
struct Spread {
    min: f64,
    q1: f64,
    q3: f64,
    max: f64,
}

impl Spread {
    fn of(times: &[f64]) -> Self {
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((sorted.len().max(1) - 1) as f64 * q).round() as usize;
            sorted.get(i).copied().unwrap_or(0.0)
        };
        Spread {
            min: at(0.0),
            q1: at(0.25),
            q3: at(0.75),
            max: at(1.0),
        }
    }
}
