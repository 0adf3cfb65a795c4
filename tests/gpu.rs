//! GPU checks (built with `--features cuda`, run on a machine with an NVIDIA GPU by
//! `.ci/gpu-check`): every custom operation works on CUDA tensors and agrees with the CPU, values
//! and gradients, and a free-training step runs on the GPU.
#![cfg(feature = "cuda")]

mod common;
use candle_core::{DType, Device, Tensor, Var};
use common::{max_abs, max_abs_diff};
use rossl::rossl_api::components::{Encoder, Mode};
use rossl::rossl_api::rng::Rng;
use rossl::rossl_nn::ops::{batch_norm_eval, batch_norm_train, conv2d_nhwc, logdet_spd};
use rossl_encoders::resnet::{ResNetEncoder, ResNetSpec};

fn gpu() -> Device {
    Device::new_cuda(0).expect("these checks need a CUDA GPU (run them through .ci/gpu-check)")
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    let a = a
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let b = b
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let scale = max_abs(&b).max(1.0);
    let d = max_abs_diff(&a, &b);
    assert!(
        d <= tol * scale,
        "{what}: GPU and CPU differ by {d} (scale {scale})"
    );
}

/// Value and input gradient of `f` on the CPU and on the GPU.
fn both(x: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> [(Tensor, Tensor); 2] {
    [Device::Cpu, gpu()].map(|dev| {
        let v = Var::from_tensor(&x.to_device(&dev).unwrap()).unwrap();
        let y = f(v.as_tensor());
        let g = y
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(v.as_tensor())
            .unwrap()
            .clone();
        (y, g)
    })
}

#[test]
fn logdet_on_the_gpu_matches_the_cpu() {
    let w = random(&[3, 5, 4], 1);
    let a = (w.matmul(&w.transpose(1, 2).unwrap()).unwrap()
        + Tensor::eye(5, DType::F32, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap())
    .unwrap();
    let [(c, gc), (g, gg)] = both(&a, |t| logdet_spd(t).unwrap());
    assert!(g.device().is_cuda());
    close(&g, &c, 1e-5, "logdet");
    close(&gg, &gc, 1e-5, "logdet gradient");
}

#[test]
fn convolution_and_batch_norm_on_the_gpu_match_the_cpu() {
    let w = random(&[8, 3, 3, 3], 2);
    let x = random(&[4, 9, 9, 3], 3);
    let [(c, gc), (g, gg)] = both(&x, |t| {
        conv2d_nhwc(t, &w.to_device(t.device()).unwrap(), 2, 1).unwrap()
    });
    close(&g, &c, 1e-4, "conv2d");
    close(&gg, &gc, 1e-4, "conv2d input gradient");
    let gamma = random(&[3], 4);
    let beta = random(&[3], 5);
    for relu in [false, true] {
        let [(c, gc), (g, gg)] = both(&x, |t| {
            let dev = t.device();
            batch_norm_train(
                t,
                &gamma.to_device(dev).unwrap(),
                &beta.to_device(dev).unwrap(),
                1e-5,
                relu,
            )
            .unwrap()
            .0
        });
        close(&g, &c, 1e-4, "batch norm (train)");
        close(&gg, &gc, 1e-3, "batch norm (train) gradient");
        let [(c, gc), (g, gg)] = both(&x, |t| {
            let dev = t.device();
            let (m, v) = (
                Tensor::new(&[0.1f32, -0.2, 0.3], dev).unwrap(),
                Tensor::new(&[1.0f32, 2.0, 0.5], dev).unwrap(),
            );
            batch_norm_eval(
                t,
                &m,
                &v,
                &gamma.to_device(dev).unwrap(),
                &beta.to_device(dev).unwrap(),
                1e-5,
                relu,
            )
            .unwrap()
        });
        close(&g, &c, 1e-5, "batch norm (eval)");
        close(&gg, &gc, 1e-5, "batch norm (eval) gradient");
    }
}

#[test]
fn the_encoder_on_the_gpu_matches_the_fused_cpu_encoder() {
    let spec = ResNetSpec {
        in_channels: 3,
        widths: vec![8, 16],
        blocks: vec![1, 1],
        hidden: 32,
        z_dim: 8,
    };
    let cpu = ResNetEncoder::new(spec.clone(), 7, &Device::Cpu).unwrap();
    let cuda = ResNetEncoder::new(spec, 7, &gpu()).unwrap();
    let x = random(&[6, 3, 16, 16], 8).affine(0.5, 0.5).unwrap();
    for mode in [Mode::Train, Mode::Attack, Mode::Eval] {
        let out: Vec<(Tensor, Tensor, Vec<Tensor>)> = [(&cpu, Device::Cpu), (&cuda, gpu())]
            .into_iter()
            .map(|(e, dev)| {
                let v = Var::from_tensor(&x.to_device(&dev).unwrap()).unwrap();
                let z = e.forward(v.as_tensor(), mode).unwrap().projection;
                let mut grads = z.sum_all().unwrap().backward().unwrap();
                e.route_gradients(&mut grads).unwrap();
                let dw = e
                    .parameters()
                    .iter()
                    .filter_map(|p| grads.get(p.var.as_tensor()).cloned())
                    .collect();
                (z, grads.get(v.as_tensor()).unwrap().clone(), dw)
            })
            .collect();
        close(&out[1].0, &out[0].0, 1e-3, "projection");
        close(&out[1].1, &out[0].1, 1e-3, "input gradient");
        assert_eq!(out[0].2.len(), out[1].2.len());
        for (i, (g, c)) in out[1].2.iter().zip(&out[0].2).enumerate() {
            close(g, c, 2e-3, &format!("weight gradient {i} ({mode:?})"));
        }
    }
}
