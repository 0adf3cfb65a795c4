//! The `small` workload's convolutions one at a time, as an evaluation runs them: the encoder in
//! evaluation mode (F(4x4, 3x3) for the 3x3 stride-1 layers, the direct kernel for the others),
//! each layer's forward pass (with a ReLU epilogue, as a frozen batch norm's) and its input
//! gradient (what an attack's backward pass computes), on 256 images. It shows where an
//! evaluation's encoder passes spend their time, layer by layer.

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
fn values(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.uniform() as f32 - 0.5).collect()
}

/// Times `args.steps` forward passes and input gradients of each convolution (after
/// `args.warmup` untimed ones), prints one line per layer (medians, and the forward pass's
/// multiply-adds per second as the direct convolution counts them) and a `RESULT` line with
/// the sums over the layers.
pub(super) fn bench_layers(args: &BenchArgs) -> anyhow::Result<()> {
    let s = shapes(Workload::Small);
    let mut rng = Rng::new(11);
    let (mut forward_total, mut grad_total) = (0.0, 0.0);
    for (name, shape) in convolutions(IMAGES, s.in_ch, s.hw, &s.widths, s.blocks) {
        let k2 = shape.k * shape.k;
        let x = values(shape.n * shape.h * shape.w * shape.c, &mut rng);
        let kkco = weights_to_kkco(&values(shape.o * shape.c * k2, &mut rng), &shape);
        let (mut forward, mut grad) = (Vec::new(), Vec::new());
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
                forward.push((t1 - t0).as_secs_f64());
                grad.push((t2 - t1).as_secs_f64());
            }
        }
        let (f, g) = (median(&mut forward), median(&mut grad));
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

    #[test]
    fn the_small_resnet_has_its_twelve_convolutions_in_forward_order() {
        let layers = convolutions(2, 1, 28, &[16, 32, 64, 128], 1);
        let got: Vec<(&str, usize, usize, usize, usize, usize, usize)> = layers
            .iter()
            .map(|(name, s)| (name.as_str(), s.h, s.c, s.o, s.k, s.stride, s.pad))
            .collect();
        let expected = vec![
            ("stem", 28, 1, 16, 3, 1, 1),
            ("stage 1 block 1 conv1", 28, 16, 16, 3, 1, 1),
            ("stage 1 block 1 conv2", 28, 16, 16, 3, 1, 1),
            ("stage 2 block 1 conv1", 28, 16, 32, 3, 2, 1),
            ("stage 2 block 1 shortcut", 28, 16, 32, 1, 2, 0),
            ("stage 2 block 1 conv2", 14, 32, 32, 3, 1, 1),
            ("stage 3 block 1 conv1", 14, 32, 64, 3, 2, 1),
            ("stage 3 block 1 shortcut", 14, 32, 64, 1, 2, 0),
            ("stage 3 block 1 conv2", 7, 64, 64, 3, 1, 1),
            ("stage 4 block 1 conv1", 7, 64, 128, 3, 2, 1),
            ("stage 4 block 1 shortcut", 7, 64, 128, 1, 2, 0),
            ("stage 4 block 1 conv2", 4, 128, 128, 3, 1, 1),
        ];
        assert_eq!(got, expected);
        // two blocks per stage: the second block of a stage keeps its resolution and width
        let two = convolutions(2, 3, 32, &[64, 128], 2);
        let names: Vec<&str> = two.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "stem",
                "stage 1 block 1 conv1",
                "stage 1 block 1 conv2",
                "stage 1 block 2 conv1",
                "stage 1 block 2 conv2",
                "stage 2 block 1 conv1",
                "stage 2 block 1 shortcut",
                "stage 2 block 1 conv2",
                "stage 2 block 2 conv1",
                "stage 2 block 2 conv2",
            ]
        );
        assert!(two[8..]
            .iter()
            .all(|(_, s)| s.h == 16 && s.c == 128 && s.stride == 1));
    }
}
