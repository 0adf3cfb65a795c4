//! `rossl bench`: times the CF-AMC-SSL inner training step exactly as the PyTorch reference
//! (`tests/reference/torch_reference.py`) does, and the view pipeline.

mod eval;
mod host;
mod layers;
mod step;
mod views;
mod wakeup;

use clap::{Args, ValueEnum};
use std::process::ExitCode;

/// What `rossl bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// The training step of the small ResNet on 16 images x 16 crops of 1x28x28.
    Small,
    /// The training step of the CIFAR ResNet-18 on 4 images x 16 crops of 3x32x32.
    Resnet18,
    /// The same at the paper's batch, 100 images x 16 crops (for GPUs).
    Resnet18Paper,
    /// The augmentation pipeline: 16 views of 32x32 RGB images.
    Views,
    /// An evaluation attack step (input gradient through the frozen small ResNet and a linear
    /// head) against a training step, on the `small` workload's batch of 256 images.
    Eval,
    /// The small ResNet's convolutions one at a time in evaluation mode (forward pass and input
    /// gradient on 256 images): where an evaluation's encoder passes spend their time.
    Layers,
    /// The time of a two-thread parallel region on rossl's pool after idle gaps of 0 to 20 ms
    /// (`--steps` x 100 regions per gap): how long parked workers take to wake.
    Wakeup,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.to_possible_value().expect("no skipped variants");
        f.write_str(value.get_name())
    }
}

/// The training step `rossl bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StepKind {
    /// One free-training replay, the reference's step: forward on x + delta, backward to the
    /// weights and delta, update, sign step.
    Free,
    /// A standard step on x alone.
    Standard,
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepKind::Free => "free",
            StepKind::Standard => "standard",
        })
    }
}

/// Arguments of `rossl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to time.
    #[arg(long, value_enum, default_value_t = Workload::Small)]
    pub workload: Workload,
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
    /// The training step timed.
    #[arg(long, value_enum, default_value_t = StepKind::Free)]
    pub regime: StepKind,
    /// The widest instruction set of rossl's kernels: avx512, avx2 or portable (default: the
    /// host's widest); to measure a lower path on one host.
    #[arg(long, value_name = "ISA")]
    pub isa: Option<rossl_kernels::isa::Isa>,
    /// The precision of the encoder's training passes: f32, or bf16 (forward and backward in
    /// bf16 over f32 master weights; the loss and the optimiser in f32), as the `precision` key.
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    pub precision: rossl_nn::precision::Precision,
    /// What the pool's other threads do while a step runs: spin (poll for work through the
    /// step, the default) or park (rayon's own waiting: they sleep after 32 rounds of looking for work).
    #[arg(long, default_value = "spin", value_parser = parse_pool_wait)]
    pub pool_wait: rossl_kernels::pool::PoolWait,
}

/// `--pool-wait`'s value.
fn parse_pool_wait(text: &str) -> Result<rossl_kernels::pool::PoolWait, String> {
    text.parse()
}

/// `--precision`'s value.
fn parse_precision(text: &str) -> Result<rossl_nn::precision::Precision, String> {
    text.parse()
}

/// The median of `values` (0 when empty).
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

/// Runs `rossl bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    rossl_runtime::device::configure_threads(args.threads);
    rossl_kernels::isa::limit(args.isa);
    rossl_kernels::pool::set_wait(args.pool_wait);
    match args.workload {
        Workload::Views => views::bench_views(args)?,
        Workload::Eval => eval::bench_eval(args)?,
        Workload::Layers => layers::bench_layers(args)?,
        Workload::Wakeup => wakeup::bench_wakeup(args)?,
        workload => step::bench_step(workload, args)?,
    }
    Ok(ExitCode::SUCCESS)
}
