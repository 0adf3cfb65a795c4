//! The fast operations (channels-last convolution, the dense layer, fused batch norm) against
//! candle's own operations and central finite differences in f64.

use candle_core::{DType, Device, Tensor, Var};
use rossl::rossl_api::rng::Rng;
use rossl::rossl_nn::ops::{
    batch_norm_eval, batch_norm_train, batch_norm_train_reference, conv2d_nhwc, conv2d_nhwc_gemm,
    conv2d_nhwc_reference, dense, dense_reference,
};

const DEV: Device = Device::Cpu;

fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
    Tensor::from_vec(v, shape, &DEV)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// The gradients of `sum(out * g)`.
fn grads_of(out: &Tensor, g: &Tensor) -> candle_core::backprop::GradStore {
    (out * g).unwrap().sum_all().unwrap().backward().unwrap()
}

#[test]
fn fast_convolution_matches_candle_s_and_its_gradients_match_finite_differences() {
    for &(k, stride, pad, c, o, hw) in &[
        (3, 1, 1, 3, 8, 9),
        (3, 2, 1, 8, 16, 8),
        (1, 1, 0, 16, 8, 5),
        (1, 2, 0, 8, 16, 8),
    ] {
        let x = Var::from_tensor(&random(&[2, hw, hw, c], 1, DType::F32)).unwrap();
        let w = Var::from_tensor(&random(&[o, c, k, k], 2, DType::F32)).unwrap();
        let g = random(
            &[
                2,
                (hw + 2 * pad - k) / stride + 1,
                (hw + 2 * pad - k) / stride + 1,
                o,
            ],
            3,
            DType::F32,
        );
        let fast = conv2d_nhwc(x.as_tensor(), w.as_tensor(), stride, pad).unwrap();
        let reference = conv2d_nhwc_reference(x.as_tensor(), w.as_tensor(), stride, pad).unwrap();
        assert!(max_diff(&fast, &reference) < 1e-4, "forward k{k} s{stride}");
        let gf = grads_of(&fast, &g);
        let gr = grads_of(&reference, &g);
        for v in [&x, &w] {
            let d = max_diff(
                gf.get(v.as_tensor()).unwrap(),
                gr.get(v.as_tensor()).unwrap(),
            );
            assert!(d < 1e-4, "gradient k{k} s{stride}: {d}");
        }
    }
    // f64 finite differences of L = sum(conv(x, w) * g)
    let (k, stride, pad) = (3, 2, 1);
    let x = random(&[1, 5, 5, 2], 4, DType::F64);
    let w = random(&[3, 2, k, k], 5, DType::F64);
    let g = random(&[1, 3, 3, 3], 6, DType::F64);
    let loss = |x: &Tensor, w: &Tensor| {
        (conv2d_nhwc(x, w, stride, pad).unwrap() * &g)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let xv = Var::from_tensor(&x).unwrap();
    let wv = Var::from_tensor(&w).unwrap();
    let grads = grads_of(
        &conv2d_nhwc(xv.as_tensor(), wv.as_tensor(), stride, pad).unwrap(),
        &g,
    );
    for (t, var) in [(&x, &xv), (&w, &wv)] {
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let flat = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for i in (0..flat.len()).step_by(3) {
            let bump = |d: f64| {
                let mut v = flat.clone();
                v[i] += d;
                Tensor::from_vec(v, t.shape(), &DEV).unwrap()
            };
            let numeric = if std::ptr::eq(t, &x) {
                (loss(&bump(1e-6), &w) - loss(&bump(-1e-6), &w)) / 2e-6
            } else {
                (loss(&x, &bump(1e-6)) - loss(&x, &bump(-1e-6))) / 2e-6
            };
            assert!(
                (numeric - analytic[i]).abs() < 1e-7,
                "{numeric} vs {}",
                analytic[i]
            );
        }
    }
}

/// The central finite difference of `loss` in element `i` of `t` (f64), with step 1e-6.
fn finite_difference(t: &Tensor, i: usize, loss: &dyn Fn(&Tensor) -> f64) -> f64 {
    let flat = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let bump = |d: f64| {
        let mut v = flat.clone();
        v[i] += d;
        Tensor::from_vec(v, t.shape(), &DEV).unwrap()
    };
    (loss(&bump(1e-6)) - loss(&bump(-1e-6))) / 2e-6
}

#[test]
fn the_gpu_path_s_convolution_matches_candle_s_and_finite_differences() {
    // the windows-and-matrix-product convolution that every device but the CPU uses, run here:
    // kernels 1 and 3, strides 1 and 2, paddings 0 and 1, odd and even sizes, in f64
    let mut seed = 10;
    for k in [1, 3] {
        for stride in [1, 2] {
            for pad in [0, 1] {
                for hw in [7, 8] {
                    seed += 3;
                    let x = Var::from_tensor(&random(&[2, hw, hw, 3], seed, DType::F64)).unwrap();
                    let w = Var::from_tensor(&random(&[4, 3, k, k], seed + 1, DType::F64)).unwrap();
                    let out = (hw + 2 * pad - k) / stride + 1;
                    let g = random(&[2, out, out, 4], seed + 2, DType::F64);
                    let case = format!("k{k} s{stride} p{pad} size {hw}");
                    let gemm = conv2d_nhwc_gemm(x.as_tensor(), w.as_tensor(), stride, pad).unwrap();
                    let reference =
                        conv2d_nhwc_reference(x.as_tensor(), w.as_tensor(), stride, pad).unwrap();
                    assert_eq!(gemm.dims(), reference.dims(), "{case}");
                    assert!(max_diff(&gemm, &reference) < 1e-12, "forward {case}");
                    let (ga, gr) = (grads_of(&gemm, &g), grads_of(&reference, &g));
                    for v in [&x, &w] {
                        let d = max_diff(
                            ga.get(v.as_tensor()).unwrap(),
                            gr.get(v.as_tensor()).unwrap(),
                        );
                        assert!(d < 1e-12, "gradient {case}: {d}");
                    }
                    let loss = |x: &Tensor, w: &Tensor| {
                        (conv2d_nhwc_gemm(x, w, stride, pad).unwrap() * &g)
                            .unwrap()
                            .sum_all()
                            .unwrap()
                            .to_scalar::<f64>()
                            .unwrap()
                    };
                    let analytic = |v: &Var| {
                        ga.get(v.as_tensor())
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f64>()
                            .unwrap()
                    };
                    let (dx, dw) = (analytic(&x), analytic(&w));
                    for i in (0..dx.len()).step_by(37) {
                        let numeric =
                            finite_difference(x.as_tensor(), i, &|t| loss(t, w.as_tensor()));
                        assert!((numeric - dx[i]).abs() < 1e-7, "input gradient {case}");
                    }
                    for i in (0..dw.len()).step_by(5) {
                        let numeric =
                            finite_difference(w.as_tensor(), i, &|t| loss(x.as_tensor(), t));
                        assert!((numeric - dw[i]).abs() < 1e-7, "weight gradient {case}");
                    }
                }
            }
        }
    }
}

#[test]
fn dense_layer_matches_candle_s_operations_and_computes_only_tracked_gradients() {
    // 70 rows and 129 outputs: blocks of the parallel product with tails, both ways of cutting
    for (rows, inputs, outputs) in [(3, 5, 4), (70, 33, 129), (130, 65, 40)] {
        let x = Var::from_tensor(&random(&[rows, inputs], 11, DType::F64)).unwrap();
        let w = Var::from_tensor(&random(&[outputs, inputs], 12, DType::F64)).unwrap();
        let b = Var::from_tensor(&random(&[outputs], 13, DType::F64)).unwrap();
        let g = random(&[rows, outputs], 14, DType::F64);
        let fast = dense(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
        let reference = dense_reference(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
        assert!(max_diff(&fast, &reference) < 1e-12);
        let gf = grads_of(&fast, &g);
        let gr = grads_of(&reference, &g);
        for v in [&x, &w, &b] {
            let d = max_diff(
                gf.get(v.as_tensor()).unwrap(),
                gr.get(v.as_tensor()).unwrap(),
            );
            assert!(
                d < 1e-12,
                "dense gradient ({rows}, {inputs}, {outputs}): {d}"
            );
        }
        // an attack pass: frozen weights, gradient to the input only
        let frozen = dense(
            x.as_tensor(),
            &w.as_tensor().detach(),
            &b.as_tensor().detach(),
        )
        .unwrap();
        let grads = grads_of(&frozen, &g);
        assert!(grads.get(w.as_tensor()).is_none() && grads.get(b.as_tensor()).is_none());
        let d = max_diff(
            grads.get(x.as_tensor()).unwrap(),
            gr.get(x.as_tensor()).unwrap(),
        );
        assert!(d < 1e-12);
    }
    // f32 against the same expression
    let x = random(&[64, 96], 15, DType::F32);
    let w = random(&[200, 96], 16, DType::F32);
    let b = random(&[200], 17, DType::F32);
    let d = max_diff(
        &dense(&x, &w, &b).unwrap(),
        &dense_reference(&x, &w, &b).unwrap(),
    );
    assert!(d < 1e-4, "{d}");
    // in f32 the bias's gradient has the very bits of candle's sum over the rows
    let (rows, outputs) = (70, 129);
    let b = Var::from_tensor(&random(&[outputs], 19, DType::F32)).unwrap();
    let x = random(&[rows, 33], 20, DType::F32);
    let w = random(&[outputs, 33], 21, DType::F32);
    let g = random(&[rows, outputs], 22, DType::F32);
    let fast = grads_of(&dense(&x, &w, b.as_tensor()).unwrap(), &g);
    let reference = grads_of(&dense_reference(&x, &w, b.as_tensor()).unwrap(), &g);
    assert_eq!(
        max_diff(
            fast.get(b.as_tensor()).unwrap(),
            reference.get(b.as_tensor()).unwrap()
        ),
        0.0
    );
    // shapes that do not chain are errors that name them
    let err = dense(&x, &random(&[200, 95], 18, DType::F32), &b).unwrap_err();
    assert!(err.to_string().contains("[200, 95]"), "{err}");
}

#[test]
fn fused_batch_norm_matches_candle_s_operations_and_its_gradients() {
    for relu in [false, true] {
        for shape in [vec![4usize, 3, 3, 5], vec![6, 7]] {
            let c = *shape.last().unwrap();
            let x = Var::from_tensor(&random(&shape, 7, DType::F64)).unwrap();
            let gamma = Var::from_tensor(&random(&[c], 8, DType::F64)).unwrap();
            let beta = Var::from_tensor(&random(&[c], 9, DType::F64)).unwrap();
            let g = random(&shape, 10, DType::F64);
            let (fast, (mean, var)) = batch_norm_train(
                x.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
                1e-5,
                relu,
            )
            .unwrap();
            let (reference, (rmean, rvar)) = batch_norm_train_reference(
                x.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
                1e-5,
                relu,
            )
            .unwrap();
            assert!(max_diff(&fast, &reference) < 1e-10);
            for (a, b) in mean.iter().zip(&rmean).chain(var.iter().zip(&rvar)) {
                assert!((a - b).abs() < 1e-12);
            }
            let gf = grads_of(&fast, &g);
            let gr = grads_of(&reference, &g);
            for v in [&x, &gamma, &beta] {
                let d = max_diff(
                    gf.get(v.as_tensor()).unwrap(),
                    gr.get(v.as_tensor()).unwrap(),
                );
                assert!(
                    d < 1e-9,
                    "batch norm gradient (relu {relu}, {shape:?}): {d}"
                );
            }
            // evaluation mode with frozen statistics: (x - m) / sqrt(v + eps) * gamma + beta
            let m = Tensor::new(&[0.1f64; 1], &DEV)
                .unwrap()
                .broadcast_as(c)
                .unwrap()
                .contiguous()
                .unwrap();
            let v = Tensor::new(&[2.0f64; 1], &DEV)
                .unwrap()
                .broadcast_as(c)
                .unwrap()
                .contiguous()
                .unwrap();
            let eval = batch_norm_eval(
                x.as_tensor(),
                &m,
                &v,
                gamma.as_tensor(),
                beta.as_tensor(),
                1e-5,
                relu,
            )
            .unwrap();
            let direct = x
                .as_tensor()
                .broadcast_sub(&m)
                .unwrap()
                .broadcast_div(&(&v + 1e-5).unwrap().sqrt().unwrap())
                .unwrap()
                .broadcast_mul(gamma.as_tensor())
                .unwrap()
                .broadcast_add(beta.as_tensor())
                .unwrap();
            let direct = if relu { direct.relu().unwrap() } else { direct };
            assert!(max_diff(&eval, &direct) < 1e-12);
        }
    }
}
