//! Losses, the log-determinant and the optimiser against independent references: PyTorch values
//! (the expressions are in the comments), closed forms and central finite differences in f64.
//! The fast operations (convolution, dense layer, batch norm) are in `fast_ops.rs`.

use candle_core::{DType, Device, Tensor, Var};
use rossl::rossl_api::components::{
    BuildContext, Embedding, InputShape, LossInput, ParamRole, Parameter, SslLoss,
};
use rossl::rossl_api::registry;
use rossl::rossl_api::rng::Rng;
use rossl::rossl_nn::ops::logdet_spd;
use rossl::rossl_nn::optim::OptimConfig;
use rossl::rossl_nn::optim::SgdLars;

const DEV: Device = Device::Cpu;

fn loss(name: &str) -> Box<dyn SslLoss> {
    registry::build::<dyn SslLoss>(name, "", &BuildContext::cpu(0)).unwrap()
}

/// z (12 x 5): 3 views of 4 images, z[r][j] = sin(0.7 r + 1.3 j + 0.1 r j), rows L2-normalised.
fn sample_z() -> Vec<f64> {
    let (rows, dim) = (12, 5);
    let mut z = Vec::new();
    for r in 0..rows {
        let row: Vec<f64> = (0..dim)
            .map(|j| (0.7 * r as f64 + 1.3 * j as f64 + 0.1 * (r * j) as f64).sin())
            .collect();
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        z.extend(row.iter().map(|v| v / n));
    }
    z
}

fn value_and_grad(l: &dyn SslLoss, z: &[f64]) -> (f64, Vec<f64>) {
    let var = Var::from_tensor(&Tensor::from_slice(z, (12, 5), &DEV).unwrap()).unwrap();
    let value = l.loss(var.as_tensor(), 3).unwrap();
    let grads = value.backward().unwrap();
    let g = grads
        .get(var.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    (value.to_scalar::<f64>().unwrap(), g)
}

fn check_against_pytorch_and_finite_differences(
    name: &str,
    expected: f64,
    expected_grad: [f64; 3],
) {
    let l = loss(name);
    let z = sample_z();
    let (v, g) = value_and_grad(l.as_ref(), &z);
    assert!(
        (v - expected).abs() < 1e-9,
        "{name}: {v} vs PyTorch {expected}"
    );
    for (a, b) in g.iter().zip(expected_grad) {
        assert!((a - b).abs() < 1e-9, "{name} gradient {a} vs PyTorch {b}");
    }
    let h = 1e-6;
    for i in 0..z.len() {
        let (mut plus, mut minus) = (z.clone(), z.clone());
        plus[i] += h;
        minus[i] -= h;
        let numeric = (value_and_grad(l.as_ref(), &plus).0 - value_and_grad(l.as_ref(), &minus).0)
            / (2.0 * h);
        assert!(
            (numeric - g[i]).abs() < 1e-6 * (1.0 + numeric.abs()),
            "{name} d/dz[{i}]: {numeric} vs {}",
            g[i]
        );
    }
}

// PyTorch (float64), z as in `sample_z`, V = 3 views:
//   tcr: sum over chunks c of -logdet(I + (p / (m * 0.2)) * c.T.T @ c.T) / 2, divided by 3
//        -> -2.729887817706963, grad z[0,:3] = [-0.14315664083321306, -0.14301985327259145, -0.06661852084210217]
//   invariance: -sum(F.cosine_similarity(c, mean, dim=1).mean() for c in chunks) / 3
//        -> -0.23231847531221064, grad z[0,:3] = [0.02077279656834059, -0.03645033245176575, 0.013513111432859675]
//   infonce: SupConLoss(temperature=0.07, base_temperature=0.07, contrast_mode="all") on features [4, 3, 5]
//        -> 16.053953423596674, grad z[0,:3] = [0.19918872950151117, 0.7105628594870667, 0.45352796266926776]
//   barlow-twins and vicreg take two views; with V views, the mean over the pairs v < w:
//     sum(f(c[v], c[w]) for v < w) / 3 with c = z.chunk(3)
//   barlow-twins, f = solo-learn's barlow_loss_func(z1, z2, lamb=0.0051, scale_loss=1.0):
//     bn = BatchNorm1d(5, affine=False); cor = bn(z1).T @ bn(z2) / N;
//     (diag(cor) - 1).pow(2).sum() + 0.0051 * off_diagonal(cor).pow(2).sum()
//        -> 12.185430849278946, grad z[0,:3] = [0.09365472240407041, 0.12179914673964785, -0.02227145583587098]
//   vicreg, f = 25 * F.mse_loss(z1, z2)
//     + 25 * (relu(1 - sqrt(z1.var(0) + 1e-4)).mean() + relu(1 - sqrt(z2.var(0) + 1e-4)).mean())
//     + sum of off-diagonal ((z - z.mean(0)).T @ (z - z.mean(0)) / (N - 1))^2 / 5 over z1 and z2
//        -> 43.299014147372105, grad z[0,:3] = [1.7027231986119178, 0.23109305494444365, -0.738867074516727]
#[test]
fn barlow_twins_matches_pytorch_and_finite_differences() {
    check_against_pytorch_and_finite_differences(
        "barlow-twins",
        12.185430849278946,
        [
            0.09365472240407041,
            0.12179914673964785,
            -0.02227145583587098,
        ],
    );
}

#[test]
fn vicreg_matches_pytorch_and_finite_differences() {
    check_against_pytorch_and_finite_differences(
        "vicreg",
        43.299014147372105,
        [1.7027231986119178, 0.23109305494444365, -0.738867074516727],
    );
}

#[test]
fn two_view_losses_refuse_a_single_view_by_name() {
    let z = Tensor::from_slice(&sample_z(), (12, 5), &DEV).unwrap();
    for name in ["barlow-twins", "vicreg"] {
        let message = loss(name).loss(&z, 1).unwrap_err().to_string();
        assert!(
            message.contains(name) && message.contains("at least 2 views"),
            "{message}"
        );
    }
}

/// Loss `name` (`cross-entropy` or `trades`) with the head of the PyTorch references below, on
/// features `f` (6 x 5: 2 views of 3 images) and, for `trades`, the clean features `fc`: its
/// value and the gradients of `f` and `fc`.
fn supervised_loss(name: &str, f: &[f32], fc: &[f32]) -> (f64, Vec<f32>, Vec<f32>) {
    let ctx = BuildContext::cpu(0)
        .with_input(InputShape {
            channels: 1,
            height: 4,
            width: 4,
            classes: 4,
        })
        .with_encoder_dims(5, 5);
    let l = registry::build::<dyn SslLoss>(name, "", &ctx).unwrap();
    assert!(l.uses_labels());
    for p in l.parameters() {
        let value: Vec<f32> = if p.name == format!("loss.{name}.head.weight") {
            (0..20)
                .map(|i| (0.5 * (i / 5) as f64 + 0.9 * (i % 5) as f64).cos() as f32)
                .collect()
        } else {
            assert_eq!(p.name, format!("loss.{name}.head.bias"));
            (0..4).map(|c| (0.1 * c as f64 - 0.15) as f32).collect()
        };
        let t = Tensor::from_vec(value, p.var.dims(), &DEV).unwrap();
        p.var.set(&t).unwrap();
    }
    let var = |v: &[f32]| Var::from_tensor(&Tensor::from_slice(v, (6, 5), &DEV).unwrap()).unwrap();
    let (feature, clean_feature) = (var(f), var(fc));
    let clean = Embedding {
        feature: clean_feature.as_tensor().clone(),
        projection: clean_feature.as_tensor().clone(),
    };
    let labels = Tensor::new(&[0u32, 2, 3], &DEV).unwrap();
    let input = LossInput {
        projection: feature.as_tensor(),
        feature: feature.as_tensor(),
        views: 2,
        labels: Some(&labels),
        clean: l.uses_clean().then_some(&clean),
    };
    let value = l.loss_of(&input).unwrap();
    let grads = value.backward().unwrap();
    let grad = |v: &Var| match grads.get(v.as_tensor()) {
        Some(g) => g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        None => vec![0.0; 30],
    };
    let (g, gc) = (grad(&feature), grad(&clean_feature));
    (f64::from(value.to_scalar::<f32>().unwrap()), g, gc)
}

/// Checks loss `name` against PyTorch's value and first three gradient entries of `f` and of `fc`,
/// and every gradient entry against central differences in f32 (h = 1e-2 keeps rounding,
/// 1e-7 / h, and curvature, h^2, small).
fn check_supervised(name: &str, expected: f64, grad_f: [f64; 3], grad_fc: [f64; 3]) {
    let features = |a: f64, b: f64, c: f64, sin: bool| -> Vec<f32> {
        (0..30)
            .map(|i| {
                let (r, j) = ((i / 5) as f64, (i % 5) as f64);
                let t = a * r + b * j + c * r * j;
                (if sin { t.sin() } else { t.cos() }) as f32
            })
            .collect()
    };
    let f = features(0.3, 0.7, 0.2, true);
    let fc = features(0.4, 0.6, 0.1, false);
    let (v, g, gc) = supervised_loss(name, &f, &fc);
    assert!(
        (v - expected).abs() < 1e-5,
        "{name}: {v} vs PyTorch {expected}"
    );
    for (got, want) in g.iter().zip(grad_f).chain(gc.iter().zip(grad_fc)) {
        assert!(
            (f64::from(*got) - want).abs() < 1e-5,
            "{name} gradient {got} vs PyTorch {want}"
        );
    }
    let h = 1e-2f32;
    for (which, base, analytic) in [("f", &f, &g), ("fc", &fc, &gc)] {
        for i in 0..30 {
            let (mut plus, mut minus) = (base.clone(), base.clone());
            plus[i] += h;
            minus[i] -= h;
            let value = |v: &[f32]| match which {
                "f" => supervised_loss(name, v, &fc).0,
                _ => supervised_loss(name, &f, v).0,
            };
            let numeric = (value(&plus) - value(&minus)) / f64::from(2.0 * h);
            assert!(
                (numeric - f64::from(analytic[i])).abs() < 1e-3,
                "{name} d/d{which}[{i}]: {numeric} vs {}",
                analytic[i]
            );
        }
    }
}

// PyTorch (float64), f[r][j] = sin(0.3 r + 0.7 j + 0.2 r j), fc[r][j] = cos(0.4 r + 0.6 j + 0.1 r j)
// (6 x 5: 2 views of 3 images; fc the clean views), W[c][j] = cos(0.5 c + 0.9 j) (4 x 5),
// b[c] = 0.1 c - 0.15, labels [0, 2, 3].repeat(2):
//   cross-entropy: F.cross_entropy(f @ W.T + b, labels)
//        -> 1.6891549327944146, grad f[0,:3] = [-0.05260767072628481, -0.09451646655049448, -0.06489708482073156]
//   trades (beta 6), as trades.py: lc = fc @ W.T + b; la = f @ W.T + b;
//     F.cross_entropy(lc, labels)
//       + 6 * nn.KLDivLoss(reduction="sum")(F.log_softmax(la, dim=1), F.softmax(lc, dim=1)) / 6
//        -> 3.2810756201164697, grad f[0,:3] = [-0.21348576751087142, -0.31691561841689553, -0.18051004750633737],
//           grad fc[0,:3] = [0.07814590269202346, 0.11561605513986946, 0.06559028204212383]
#[test]
fn cross_entropy_matches_pytorch_and_finite_differences() {
    check_supervised(
        "cross-entropy",
        1.6891549327944146,
        [
            -0.05260767072628481,
            -0.09451646655049448,
            -0.06489708482073156,
        ],
        [0.0; 3],
    );
}

#[test]
fn trades_matches_pytorch_and_finite_differences() {
    check_supervised(
        "trades",
        3.2810756201164697,
        [
            -0.21348576751087142,
            -0.31691561841689553,
            -0.18051004750633737,
        ],
        [
            0.07814590269202346,
            0.11561605513986946,
            0.06559028204212383,
        ],
    );
}

// PyTorch (float64), z as in `sample_z` (3 views of 4 images), predictor
// nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 5)) in train mode with
// weight0[i][j] = cos(0.3 i + 0.5 j), bias0[i] = 0.05 i, weight3[i][j] = sin(0.2 i + 0.4 j + 0.1),
// bias3[i] = -0.02 i; c = z.chunk(3); p = [pred(x) for x in c] (each view on its own):
//   sum(-F.cosine_similarity(p[v], c[w].detach(), dim=-1).mean() for v != w) / 6
//        -> -0.0895110801945876, grad z[0,:3] = [0.00012662607938592298, -0.00010605721916752853, -0.00031277401159393977]
// (checked in f32, the predictor's precision, against PyTorch's float64 gradient: the
// stop-gradient leaves only the path through the predictor, whose gradients are too small here
// for f32 central differences to resolve)
#[test]
fn simsiam_matches_pytorch_with_a_stop_gradient_target() {
    let ctx = BuildContext::cpu(0).with_encoder_dims(5, 5);
    let loss = registry::build::<dyn SslLoss>("simsiam", "hidden = 3", &ctx).unwrap();
    for p in loss.parameters() {
        let dims = p.var.dims().to_vec();
        let value: Vec<f32> = match p.name.as_str() {
            "loss.simsiam.predictor.0.weight" => (0..15)
                .map(|k| (0.3 * (k / 5) as f64 + 0.5 * (k % 5) as f64).cos() as f32)
                .collect(),
            "loss.simsiam.predictor.0.bias" => (0..3).map(|i| 0.05 * i as f32).collect(),
            "loss.simsiam.predictor.3.weight" => (0..15)
                .map(|k| (0.2 * (k / 3) as f64 + 0.4 * (k % 3) as f64 + 0.1).sin() as f32)
                .collect(),
            "loss.simsiam.predictor.3.bias" => (0..5).map(|i| -0.02 * i as f32).collect(),
            name if name.ends_with(".weight") => vec![1.0; dims.iter().product()],
            _ => vec![0.0; dims.iter().product()],
        };
        p.var
            .set(&Tensor::from_vec(value, dims.as_slice(), &DEV).unwrap())
            .unwrap();
    }
    let z: Vec<f32> = sample_z().iter().map(|&v| v as f32).collect();
    let var = Var::from_tensor(&Tensor::from_slice(&z, (12, 5), &DEV).unwrap()).unwrap();
    let value = loss.loss(var.as_tensor(), 3).unwrap();
    let v = f64::from(value.to_scalar::<f32>().unwrap());
    assert!((v - -0.0895110801945876).abs() < 1e-6, "{v}");
    let grads = value.backward().unwrap();
    let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
    let g = g.to_vec1::<f32>().unwrap();
    let expected = [
        0.00012662607938592298,
        -0.00010605721916752853,
        -0.00031277401159393977,
    ];
    for (a, b) in g.iter().zip(expected) {
        assert!(
            (f64::from(*a) - b).abs() < 2e-7,
            "gradient {a} vs PyTorch {b}"
        );
    }
}

#[test]
fn tcr_matches_pytorch_and_finite_differences() {
    check_against_pytorch_and_finite_differences(
        "tcr",
        -2.729887817706963,
        [
            -0.14315664083321306,
            -0.14301985327259145,
            -0.06661852084210217,
        ],
    );
}

#[test]
fn invariance_matches_pytorch_and_finite_differences() {
    check_against_pytorch_and_finite_differences(
        "invariance",
        -0.23231847531221064,
        [
            0.02077279656834059,
            -0.03645033245176575,
            0.013513111432859675,
        ],
    );
}

#[test]
fn infonce_matches_pytorch_and_finite_differences() {
    check_against_pytorch_and_finite_differences(
        "infonce",
        16.053953423596674,
        [0.19918872950151117, 0.7105628594870667, 0.45352796266926776],
    );
}

#[test]
fn logdet_of_either_gram_side_agrees_and_non_positive_matrices_are_errors() {
    // logdet(I_d + c W W^T) = logdet(I_b + c W^T W) for W (d x b)
    let (d, b, c) = (7, 3, 0.8);
    let mut rng = Rng::new(4);
    let w: Vec<f64> = (0..d * b).map(|_| rng.normal()).collect();
    let w = Tensor::from_vec(w, (d, b), &DEV).unwrap();
    let big = ((w.matmul(&w.t().unwrap()).unwrap() * c).unwrap()
        + Tensor::eye(d, DType::F64, &DEV).unwrap())
    .unwrap();
    let small = ((w.t().unwrap().matmul(&w).unwrap() * c).unwrap()
        + Tensor::eye(b, DType::F64, &DEV).unwrap())
    .unwrap();
    let (a, s) = (
        logdet_spd(&big).unwrap().to_scalar::<f64>().unwrap(),
        logdet_spd(&small).unwrap().to_scalar::<f64>().unwrap(),
    );
    assert!((a - s).abs() < 1e-10, "{a} vs {s}");
    let indefinite = Tensor::new(&[[1.0f64, 0.0], [0.0, -1.0]], &DEV).unwrap();
    let message = logdet_spd(&indefinite).unwrap_err().to_string();
    assert!(message.contains("not positive definite"), "{message}");
    // a NaN projection makes the coding rate an error, not a NaN
    let z = Tensor::new(&[[f32::NAN, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], &DEV).unwrap();
    assert!(loss("tcr").loss(&z, 2).is_err());
}

#[test]
fn one_sgd_lars_step_matches_the_reference_wrapper() {
    // PyTorch: SGD(lr=0.3, momentum=0.9, weight_decay=1e-4, nesterov=True) in solo-learn's
    // LARSWrapper(eta=0.005, clip=True, exclude_bias_n_norm=True), two steps with the gradients
    // below, prints W = [0.4941035940337887, -1.0117916327101906, 2.005894931938421,
    // 0.24705179701689434, 0.0, -0.7676878912736228], b = [-0.185, 0.085, -0.27] after step 1 and
    // W = [0.5079626064104623, -1.0250043375289077, 2.008406392360929, 0.23760815536245503,
    // -0.008186573921388074, -0.783414464054083], b = [-0.449, 0.064, 0.057] after step 2.
    let w =
        Var::from_tensor(&Tensor::new(&[[0.5f64, -1.0, 2.0], [0.25, 0.0, -0.75]], &DEV).unwrap())
            .unwrap();
    let b = Var::from_tensor(&Tensor::new(&[0.1f64, -0.2, 0.3], &DEV).unwrap()).unwrap();
    let params = vec![
        Parameter {
            name: "w".into(),
            var: w.clone(),
            role: ParamRole::Weight,
        },
        Parameter {
            name: "b".into(),
            var: b.clone(),
            role: ParamRole::BiasOrNorm,
        },
    ];
    let mut opt = SgdLars::new(params, &OptimConfig::default());
    // (weight gradient, bias gradient, expected weight, expected bias) per step
    type Step = ([[f64; 3]; 2], [f64; 3], [f64; 6], [f64; 3]);
    let steps: [Step; 2] = [
        (
            [[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]],
            [0.5, -0.5, 1.0],
            [
                0.4941035940337887,
                -1.0117916327101906,
                2.005894931938421,
                0.24705179701689434,
                0.0,
                -0.7676878912736228,
            ],
            [-0.185, 0.085, -0.27],
        ),
        (
            [[-2.0, 1.0, 0.0], [1.0, 1.0, 1.0]],
            [0.25, 0.25, -1.0],
            [
                0.5079626064104623,
                -1.0250043375289077,
                2.008406392360929,
                0.23760815536245503,
                -0.008186573921388074,
                -0.783414464054083,
            ],
            [-0.449, 0.064, 0.057],
        ),
    ];
    for (gw, gb, ew, eb) in steps {
        // gradients of sum(w * gw) + sum(b * gb) are exactly gw and gb
        let loss = ((w.as_tensor() * Tensor::new(&gw, &DEV).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            + (b.as_tensor() * Tensor::new(&gb, &DEV).unwrap())
                .unwrap()
                .sum_all()
                .unwrap())
        .unwrap();
        opt.step(&loss.backward().unwrap(), 0.3).unwrap();
        let got_w = w.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let got_b = b.to_vec1::<f64>().unwrap();
        for (g, e) in got_w.iter().chain(&got_b).zip(ew.iter().chain(&eb)) {
            assert!((g - e).abs() < 1e-12, "{got_w:?} {got_b:?}");
        }
    }
}

#[test]
fn the_in_place_f32_update_matches_the_reference_too() {
    // the same two steps as above in f32, which takes the in-place CPU path
    let w =
        Var::from_tensor(&Tensor::new(&[[0.5f32, -1.0, 2.0], [0.25, 0.0, -0.75]], &DEV).unwrap())
            .unwrap();
    let b = Var::from_tensor(&Tensor::new(&[0.1f32, -0.2, 0.3], &DEV).unwrap()).unwrap();
    let params = vec![
        Parameter {
            name: "w".into(),
            var: w.clone(),
            role: ParamRole::Weight,
        },
        Parameter {
            name: "b".into(),
            var: b.clone(),
            role: ParamRole::BiasOrNorm,
        },
    ];
    let mut opt = SgdLars::new(params, &OptimConfig::default());
    let grads: [([[f32; 3]; 2], [f32; 3]); 2] = [
        ([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]], [0.5, -0.5, 1.0]),
        ([[-2.0, 1.0, 0.0], [1.0, 1.0, 1.0]], [0.25, 0.25, -1.0]),
    ];
    for (gw, gb) in grads {
        let loss = ((w.as_tensor() * Tensor::new(&gw, &DEV).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            + (b.as_tensor() * Tensor::new(&gb, &DEV).unwrap())
                .unwrap()
                .sum_all()
                .unwrap())
        .unwrap();
        opt.step(&loss.backward().unwrap(), 0.3).unwrap();
    }
    // PyTorch's values after step 2 (see the f64 test)
    let expected_w = [
        0.5079626064104623,
        -1.0250043375289077,
        2.008406392360929,
        0.23760815536245503,
        -0.008186573921388074,
        -0.783414464054083,
    ];
    let expected_b = [-0.449, 0.064, 0.057];
    let got_w = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let got_b = b.to_vec1::<f32>().unwrap();
    for (g, e) in got_w
        .iter()
        .chain(&got_b)
        .zip(expected_w.iter().chain(&expected_b))
    {
        assert!((f64::from(*g) - e).abs() < 1e-6, "{got_w:?} {got_b:?}");
    }
}
