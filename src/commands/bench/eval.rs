//! An evaluation attack step against a training step on the same batch: the attack step is a
//! forward pass of the frozen encoder (evaluation mode) and a linear head, cross-entropy, and the
//! gradient with respect to the input alone; the training step is `rossl bench`'s own (forward,
//! EMP loss, backward to the weights, update). Alternated step by step, so that both see the same
//! machine.

use super::step::{shapes, Bench};
use super::{median, BenchArgs, StepKind, Workload};
use candle_core::{DType, Tensor};
use rossl_api::adversarial::input_gradient;
use rossl_api::components::Mode;
use rossl_api::rng::Rng;
use rossl_nn::classify::{cross_entropy, labels_tensor};
use std::time::Instant;

/// Times `args.steps` attack steps and as many training steps, alternated, on the `small`
/// workload's batch (256 images of 1x28x28); prints a `RESULT` line with images x steps per
/// second for each and their ratio.
pub(super) fn bench_eval(args: &BenchArgs) -> anyhow::Result<()> {
    let s = shapes(Workload::Small);
    let device =
        rossl_runtime::device::select_device(args.device.parse().map_err(anyhow::Error::msg)?)?;
    let dev = &device.device;
    let mut train = Bench::new(&s, StepKind::Standard, args.precision, dev)?;
    let images = s.images * s.crops;
    let classes = 10;
    let mut rng = Rng::new(7);
    let head: Vec<f32> = (0..s.hidden * classes)
        .map(|_| (rng.normal() * 0.05) as f32)
        .collect();
    let head = Tensor::from_vec(head, (s.hidden, classes), dev)?;
    let labels: Vec<u32> = (0..images).map(|i| (i % classes) as u32).collect();
    let labels = labels_tensor(&labels, dev)?;
    // the attacked encoder is its own (same weights at the start): the training step changes
    // `train`'s
    let frozen = Bench::new(&s, StepKind::Standard, args.precision, dev)?;
    let x = frozen.input().clone();
    let encoder = frozen.encoder();
    let mut objective = |input: &Tensor| -> rossl_api::Result<Tensor> {
        let logits = encoder.features(input, Mode::Eval)?.matmul(&head)?;
        cross_entropy(&logits, &labels)
    };
    let (mut attack_times, mut train_times) = (Vec::new(), Vec::new());
    for step in 0..args.warmup + args.steps {
        x.device().synchronize()?;
        let t0 = Instant::now();
        let (_, g) = rossl_kernels::on_pool(|| input_gradient(&mut objective, &x))?;
        g.to_dtype(DType::F32)?.device().synchronize()?;
        let attack = t0.elapsed().as_secs_f64();
        let (_, t) = train.step()?;
        let training = (t[5].0 - t[0].0).as_secs_f64();
        eprintln!("step {step}: attack {attack:.3}s, training {training:.3}s");
        if step >= args.warmup {
            attack_times.push(attack);
            train_times.push(training);
        }
    }
    let (attack, training) = (median(&mut attack_times), median(&mut train_times));
    println!(
        "RESULT workload=eval device={} isa={} threads={} steps={} batch={images} attack_step_s={attack:.4} attack_image_steps_per_s={:.1} train_step_s={training:.4} train_image_steps_per_s={:.1} attack_over_train={:.2}",
        device.description,
        rossl_kernels::isa::active(),
        rayon::current_num_threads(),
        attack_times.len(),
        images as f64 / attack,
        images as f64 / training,
        attack / training
    );
    Ok(())
}
