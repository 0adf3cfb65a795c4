//! Losses, the log-determinant and the optimiser against independent references: PyTorch values
//! (the expressions are in the comments), closed forms and central finite differences in f64.
//! The fast operations (convolution, dense layer, batch norm) are in `fast_ops.rs`; the losses
//! with weights of their own (heads, predictors) in `losses_with_weights.rs`.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use rossl::rossl_api::components::{
    BuildContext, Embedding, LossInput, ParamRole, Parameter, SslLoss,
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

fn sample_z() -> Vec<f64> {
    common::sample_z(0.7, 1.3, 0.1)
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

/// 6 x 5 features, x[r][j] = f(a r + b j + c r j) with f = sin or cos.
fn features(a: f64, b: f64, c: f64, f: fn(f64) -> f64) -> Vec<f64> {
    (0..30)
        .map(|i| {
            let (r, j) = ((i / 5) as f64, (i % 5) as f64);
            f(a * r + b * j + c * r * j)
        })
        .collect()
}

/// The `deacl` loss on the student's perturbed features `f`, clean features `fc` and the
/// teacher's features of the reference below, in an update pass or an attack pass: its value
/// and the gradients of `f` and `fc`.
fn deacl_of(f: &[f64], fc: &[f64], attack: bool) -> (f64, Vec<f64>, Vec<f64>) {
    let l = loss("deacl");
    let var = |v: &[f64]| Var::from_tensor(&Tensor::from_slice(v, (6, 5), &DEV).unwrap()).unwrap();
    let (student, clean) = (var(f), var(fc));
    let embedding = |t: &Tensor| Embedding {
        feature: t.clone(),
        projection: t.clone(),
    };
    let teacher = Tensor::from_slice(&features(0.2, 0.9, 0.3, f64::sin), (6, 5), &DEV).unwrap();
    let (clean_e, teacher_e) = (embedding(clean.as_tensor()), embedding(&teacher));
    let input = LossInput {
        projection: student.as_tensor(),
        feature: student.as_tensor(),
        views: 1,
        labels: None,
        clean: Some(&clean_e),
        target: Some(&teacher_e),
        attack,
    };
    let value = l.loss_of(&input).unwrap();
    let grads = value.backward().unwrap();
    let grad = |v: &Var| match grads.get(v.as_tensor()) {
        Some(g) => g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        None => vec![0.0; 30],
    };
    (
        value.to_scalar::<f64>().unwrap(),
        grad(&student),
        grad(&clean),
    )
}

// PyTorch (float64), 6 x 5 features x[r][j] = fn(a r + b j + c r j): the student's perturbed
// f (sin; 0.3, 0.7, 0.2), clean fc (cos; 0.4, 0.6, 0.1), the teacher's ft (sin; 0.2, 0.9, 0.3):
//   update: -F.cosine_similarity(fc, ft.detach(), dim=-1).mean() - 2 * F.cosine_similarity(f, fc, dim=-1).mean()
//        -> -1.2580670020470666, grad f[0,:3] = [-0.14341784726078374, -0.10001520724962043, -0.023894807288511222],
//           grad fc[0,:3] = [0.06588596545310188, -0.0984125824718996, -0.19254516205753025]
//   attack: -F.cosine_similarity(f, ft, dim=-1).mean()
//        -> -0.6220375963073078, grad f[0,:3] = [0.0, -0.023922277932343562, -0.01866892347787235]
#[test]
fn deacl_matches_pytorch_and_finite_differences_in_updates_and_attacks() {
    let f = features(0.3, 0.7, 0.2, f64::sin);
    let fc = features(0.4, 0.6, 0.1, f64::cos);
    let cases = [
        (
            false,
            -1.2580670020470666,
            [
                -0.14341784726078374,
                -0.10001520724962043,
                -0.023894807288511222,
                0.06588596545310188,
                -0.0984125824718996,
                -0.19254516205753025,
            ],
        ),
        (
            true,
            -0.6220375963073078,
            [
                0.0,
                -0.023922277932343562,
                -0.01866892347787235,
                0.0,
                0.0,
                0.0,
            ],
        ),
    ];
    for (attack, expected, grads) in cases {
        let (v, g, gc) = deacl_of(&f, &fc, attack);
        assert!(
            (v - expected).abs() < 1e-12,
            "attack {attack}: {v} vs {expected}"
        );
        let got = g[..3].iter().chain(&gc[..3]);
        for (a, b) in got.zip(grads) {
            assert!(
                (a - b).abs() < 1e-12,
                "attack {attack}: gradient {a} vs {b}"
            );
        }
        let h = 1e-6;
        for i in 0..30 {
            let (mut plus, mut minus) = (f.clone(), f.clone());
            plus[i] += h;
            minus[i] -= h;
            let numeric =
                (deacl_of(&plus, &fc, attack).0 - deacl_of(&minus, &fc, attack).0) / (2.0 * h);
            assert!(
                (numeric - g[i]).abs() < 1e-6,
                "attack {attack}: d/df[{i}] {numeric} vs {}",
                g[i]
            );
        }
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
