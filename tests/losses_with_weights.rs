//! Losses with weights of their own against PyTorch: the supervised `cross-entropy` and `trades`
//! (a classifier head) and `simsiam` and `byol` (a predictor), with the weights set to the
//! references' values; the expressions are in the comments.

mod common;

use candle_core::{Device, Tensor, Var};
use rossl::rossl_api::components::{BuildContext, Embedding, InputShape, LossInput, SslLoss};
use rossl::rossl_api::registry;

const DEV: Device = Device::Cpu;

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
        target: None,
        attack: false,
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

/// Loss `name` (`simsiam` or `byol`) with the predictor of the PyTorch references below (hidden
/// width 3), on projections `z` (12 x 5: 3 views of 4 images) and, for `byol`, the target
/// network's projections `target`: its value and the gradient of `z`, in f32 (the predictor's
/// precision).
fn predictor_loss(name: &str, z: &[f64], target: &[f64]) -> (f64, Vec<f32>) {
    let ctx = BuildContext::cpu(0).with_encoder_dims(5, 5);
    let loss = registry::build::<dyn SslLoss>(name, "hidden = 3", &ctx).unwrap();
    let prefix = format!("loss.{name}.predictor");
    for p in loss.parameters() {
        let dims = p.var.dims().to_vec();
        let layer = p.name.strip_prefix(&prefix).unwrap();
        let value: Vec<f32> = match layer {
            ".0.weight" => (0..15)
                .map(|k| (0.3 * (k / 5) as f64 + 0.5 * (k % 5) as f64).cos() as f32)
                .collect(),
            ".0.bias" => (0..3).map(|i| 0.05 * i as f32).collect(),
            ".3.weight" => (0..15)
                .map(|k| (0.2 * (k / 3) as f64 + 0.4 * (k % 3) as f64 + 0.1).sin() as f32)
                .collect(),
            ".3.bias" => (0..5).map(|i| -0.02 * i as f32).collect(),
            ".1.weight" => vec![1.0; 3],
            _ => vec![0.0; dims.iter().product()],
        };
        p.var
            .set(&Tensor::from_vec(value, dims.as_slice(), &DEV).unwrap())
            .unwrap();
    }
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let var = Var::from_tensor(&Tensor::from_slice(&f32s(z), (12, 5), &DEV).unwrap()).unwrap();
    let target = Tensor::from_slice(&f32s(target), (12, 5), &DEV).unwrap();
    let target = Embedding {
        feature: target.clone(),
        projection: target,
    };
    let input = LossInput {
        projection: var.as_tensor(),
        feature: var.as_tensor(),
        views: 3,
        labels: None,
        clean: None,
        target: loss.uses_target().then_some(&target),
        attack: false,
    };
    let value = loss.loss_of(&input).unwrap();
    let grads = value.backward().unwrap();
    // every weight of the predictor trains, its batch norm's scale and shift included
    for p in loss.parameters() {
        let g = grads.get(p.var.as_tensor());
        let size = g.map_or(0.0, common::max_abs);
        assert!(size > 0.0, "{name}: `{}` gets no gradient", p.name);
    }
    let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
    (
        f64::from(value.to_scalar::<f32>().unwrap()),
        g.to_vec1::<f32>().unwrap(),
    )
}

/// Checks `predictor_loss` against PyTorch's float64 value (within 1e-6) and first three
/// gradient entries (within 2e-7: the stop-gradient leaves only the path through the predictor,
/// whose gradients are too small here for f32 central differences to resolve).
fn check_predictor_loss(name: &str, expected: f64, grad: [f64; 3]) {
    let z = common::sample_z(0.7, 1.3, 0.1);
    let target = common::sample_z(0.5, 1.1, 0.2);
    let (v, g) = predictor_loss(name, &z, &target);
    assert!(
        (v - expected).abs() < 1e-6,
        "{name}: {v} vs PyTorch {expected}"
    );
    for (a, b) in g.iter().zip(grad) {
        assert!(
            (f64::from(*a) - b).abs() < 2e-7,
            "{name} gradient {a} vs PyTorch {b}"
        );
    }
}

// PyTorch (float64), z[r][j] = sin(0.7 r + 1.3 j + 0.1 r j) and the target network's
// zt[r][j] = sin(0.5 r + 1.1 j + 0.2 r j), rows L2-normalised (3 views of 4 images); predictor
// nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 5)) in train mode with
// weight0[i][j] = cos(0.3 i + 0.5 j), bias0[i] = 0.05 i, weight3[i][j] = sin(0.2 i + 0.4 j + 0.1),
// bias3[i] = -0.02 i; c = z.chunk(3), t = zt.chunk(3), p = [pred(x) for x in c] (each view on its
// own), sums over the ordered pairs v != w:
//   simsiam: sum(-F.cosine_similarity(p[v], c[w].detach(), dim=-1).mean()) / 6
//        -> -0.0895110801945876, grad z[0,:3] = [0.00012662607938592298, -0.00010605721916752853, -0.00031277401159393977]
//   byol: sum((2 - 2 * F.cosine_similarity(p[v], t[w], dim=-1)).mean()) * 2 / 6
//        -> 3.9206751018412365, grad z[0,:3] = [-0.001224989516458672, -0.0023600668923183946, -0.002917317582728181]
#[test]
fn simsiam_matches_pytorch_with_a_stop_gradient_target() {
    check_predictor_loss(
        "simsiam",
        -0.0895110801945876,
        [
            0.00012662607938592298,
            -0.00010605721916752853,
            -0.00031277401159393977,
        ],
    );
}

#[test]
fn byol_matches_pytorch_with_the_target_network_s_projections() {
    check_predictor_loss(
        "byol",
        3.9206751018412365,
        [
            -0.001224989516458672,
            -0.0023600668923183946,
            -0.002917317582728181,
        ],
    );
}
