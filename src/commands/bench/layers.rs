//! The `small` workload's convolutions one at a time, as an evaluation runs them: the encoder in
//! evaluation mode (F(4x4, 3x3) for the 3x3 stride-1 layers after the stem, the direct kernel for
//! the other forward passes), each layer's forward pass (with a ReLU epilogue standing in for the
//! frozen batch norm's) and its input gradient (what an attack's backward pass computes), on 256
//! images of the CPU. It shows where an evaluation's encoder passes spend their time, layer by
//! layer. `--steps`, `--warmup`, `--threads` and `--isa` apply; the training options do not.

use super::step::shapes;
use super::{median, BenchArgs, Workload};
use rossl_api::rng::Rng;
use rossl_kernels::conv::{
    forward_then_with, input_grad_then_with, weights_to_kkco, ConvShape, Winograd,
};
use std::time::Instant;

/// Images per pass: the evaluation workload's batch.
const IMAGES: usize = 256;

/// Every convolution of a ResNet with these stage `widths` and `blocks` basic blocks per stage, on
/// `n` images of `in_ch` x `hw` x `hw`, in forward order, each with a name saying its place.
fn convolutions(
    n: usize,
    in_ch: usize,
    hw: usize,
    widths: &[usize],
    blocks: usize,
) -> Vec<(String, ConvShape)> {
    let conv = |h: usize, c: usize, o: usize, k: usize, stride: usize| ConvShape {
        n,
        h,
        w: h,
        c,
        o,
        k,
        stride,
        pad: k / 2,
    };
    let mut out = vec![("stem".to_string(), conv(hw, in_ch, widths[0], 3, 1))];
    let (mut h, mut c) = (hw, widths[0]);
    for (stage, &o) in widths.iter().enumerate() {
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let at = format!("stage {} block {}", stage + 1, block + 1);
            let first = conv(h, c, o, 3, stride);
            let oh = first.oh();
            out.push((format!("{at} conv1"), first));
            if stride != 1 || c != o {
                out.push((format!("{at} shortcut"), conv(h, c, o, 1, stride)));
            }
            out.push((format!("{at} conv2"), conv(oh, o, o, 3, 1)));
            (h, c) = (oh, o);
        }
    }
    out
}

/// `len` values drawn uniformly from [-0.5, 0.5).
fn uniform_values(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.uniform() as f32 - 0.5).collect()
}

/// Times `args.steps` forward passes and input gradients of each convolution (after
/// `args.warmup` untimed ones), prints one line per layer (medians, and the forward pass's
/// multiply-adds per second as the direct convolution counts them) and a `RESULT` line with
/// the sums over the layers.
pub(super) fn bench_layers(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.steps > 0,
        "--steps {}: the layers workload needs at least one timed call",
        args.steps
    );
    anyhow::ensure!(
        args.device == "cpu",
        "--device {}: the layers workload times the CPU kernels (use --device cpu)",
        args.device
    );
    let small = shapes(Workload::Small);
    let mut rng = Rng::new(11);
    let (mut forward_total, mut grad_total) = (0.0, 0.0);
    let layers = convolutions(IMAGES, small.in_ch, small.hw, &small.widths, small.blocks);
    for (name, shape) in layers {
        let k2 = shape.k * shape.k;
        let x = uniform_values(shape.n * shape.h * shape.w * shape.c, &mut rng);
        let weights = uniform_values(shape.o * shape.c * k2, &mut rng);
        let kkco = weights_to_kkco(&weights, &shape);
        let (mut forward_times, mut grad_times) = (Vec::new(), Vec::new());
        for step in 0..args.warmup + args.steps {
            let t0 = Instant::now();
            let y = rossl_kernels::on_pool(|| {
                forward_then_with(&x, &kkco, &shape, Winograd::F4x4, |_, part| {
                    part.iter_mut().for_each(|v| *v = v.max(0.0))
                })
            });
            let t1 = Instant::now();
            let dx = rossl_kernels::on_pool(|| {
                input_grad_then_with(&y, &kkco, &shape, Winograd::F4x4, |_, _| {})
            });
            let t2 = Instant::now();
            std::hint::black_box(&dx);
            if step >= args.warmup {
                forward_times.push((t1 - t0).as_secs_f64());
                grad_times.push((t2 - t1).as_secs_f64());
            }
        }
        let (f, g) = (median(&mut forward_times), median(&mut grad_times));
        let macs = (shape.rows() * shape.o * shape.c * k2) as f64;
        let geometry = format!(
            "{}x{} {} -> {}, {}x{} stride {}",
            shape.h, shape.w, shape.c, shape.o, shape.k, shape.k, shape.stride
        );
        println!(
            "{name:24} {geometry:30} forward {:7.3} ms ({:6.1} GMAC/s), input gradient {:7.3} ms",
            f * 1e3,
            macs / f.max(1e-12) / 1e9,
            g * 1e3
        );
        forward_total += f;
        grad_total += g;
    }
    println!(
        "RESULT workload=layers isa={} threads={} steps={} images={IMAGES} forward_ms={:.3} input_gradient_ms={:.3}",
        rossl_kernels::isa::active(),
        rayon::current_num_threads(),
        args.steps,
        forward_total * 1e3,
        grad_total * 1e3
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::convolutions;
    use candle_core::Device;
    use rossl_api::components::Encoder;
    use rossl_encoders::resnet::{ResNetEncoder, ResNetSpec};
    use std::collections::BTreeMap;

    /// The weight name a convolution of [`convolutions`] has in the encoder's `state_dict`.
    fn state_dict_name(name: &str) -> String {
        if name == "stem" {
            return "backbone.conv1.weight".into();
        }
        let words: Vec<&str> = name.split(' ').collect();
        let (stage, block) = (words[1], words[3].parse::<usize>().expect("a block number"));
        let conv = if words[4] == "shortcut" {
            "downsample.0"
        } else {
            words[4]
        };
        format!("backbone.layer{stage}.{}.{conv}.weight", block - 1)
    }

    #[test]
    fn the_layers_are_the_encoders_convolutions_in_forward_order() {
        for (in_ch, hw, widths, blocks) in
            [(1, 28, vec![16, 32, 64, 128], 1), (3, 32, vec![16, 32], 2)]
        {
            let spec = ResNetSpec {
                in_channels: in_ch,
                widths: widths.clone(),
                blocks: vec![blocks; widths.len()],
                hidden: 32,
                z_dim: 8,
            };
            let encoder = ResNetEncoder::new(spec, 0, &Device::Cpu).unwrap();
            // every 4-dimensional weight of the encoder is a convolution's (O, C, K, K)
            let expected: BTreeMap<String, Vec<usize>> = encoder
                .parameters()
                .iter()
                .filter(|p| p.var.as_tensor().rank() == 4)
                .map(|p| (p.name.clone(), p.var.as_tensor().dims().to_vec()))
                .collect();
            let layers = convolutions(2, in_ch, hw, &widths, blocks);
            let got: BTreeMap<String, Vec<usize>> = layers
                .iter()
                .map(|(name, s)| (state_dict_name(name), vec![s.o, s.c, s.k, s.k]))
                .collect();
            assert_eq!(got, expected, "{widths:?} x {blocks}");
            // in forward order: each layer reads the resolution and width the one before left
            // (a shortcut reads its block's input, as the block's first convolution does)
            let mut at = (hw, in_ch);
            let mut halvings = 0;
            for (name, s) in layers
                .iter()
                .filter(|(name, _)| !name.ends_with("shortcut"))
            {
                assert_eq!((s.h, s.c), at, "{name}");
                halvings += usize::from(s.stride == 2);
                at = (s.oh(), s.o);
            }
            assert_eq!(
                halvings,
                widths.len() - 1,
                "{widths:?}: one per stage after the first"
            );
            assert_eq!(at.1, widths[widths.len() - 1]);
        }
    }
}
