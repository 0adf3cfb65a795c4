//! rossl's AutoAttack attacks against independent reference figures: torchattacks' APGD-CE,
//! APGD-T, FAB-T and Square on one small fixed model (an MLP 256 -> 32 -> 10 on 200 test images of
//! 1x16x16), for the L-infinity and the L2 threat model. The model, the images and the figures come
//! from tests/reference/autoattack_reference.py (its header says how to run it); this test loads
//! the same weights with candle, runs rossl's attacks through the runtime (`PlannedAttack`,
//! `AttackRun`), each standalone on all 200 images, and asks for the same accuracy within 1 point
//! (2 images of 200), or within torchattacks' own spread over its seeds 0, 1 and 2 where that is
//! larger (the JSON's `spread`). Python is needed only to write the figures again, not to run this.
//!
//! The counts are decisive by design, so they show that each attack works, not that it works as
//! AutoAttack's does. FAB-T's points show that: with no random start, they are a deterministic
//! function of the model and the images, shaped by FAB's parameters, and the test asks rossl's
//! FAB-T for torchattacks' distances image by image (the script's header has how far changed
//! parameters move them).
//!
//! The attacks as the `autoattack` preset runs them: APGD-CE (`apgd`, cross-entropy), APGD-T
//! (`apgd`, DLR, 9 target classes: the runtime aims the DLR at each of the 9 most likely other
//! classes in turn), FAB-T (`fab`, 9 target classes) and Square (`square`, margin, 5000 queries);
//! 100 iterations each for APGD and FAB. The model is blind to the images' last row and column,
//! which AutoAttack's Square never moves; the images are 16x16 because on smaller ones its L2
//! start leaves part of the budget on those pixels for good (see the script).

use candle_core::{DType, Device, Tensor};
use rossl::rossl_api::components::{AttackLoss, BuildContext, Classifier, PresetAttack, Stage};
use rossl::rossl_api::rng::Rng;
use rossl::rossl_api::Result;
use rossl::rossl_runtime::eval::{AttackRun, PlannedAttack};
use std::path::PathBuf;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

/// The reference MLP: flatten, `fc1` (256 -> 32), ReLU, `fc2` (32 -> 10), under the torch names.
struct Mlp {
    fc1_weight: Tensor,
    fc1_bias: Tensor,
    fc2_weight: Tensor,
    fc2_bias: Tensor,
}

impl Classifier for Mlp {
    fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let x = images.flatten_from(1)?;
        let hidden = x
            .matmul(&self.fc1_weight.t()?)?
            .broadcast_add(&self.fc1_bias)?
            .relu()?;
        Ok(hidden
            .matmul(&self.fc2_weight.t()?)?
            .broadcast_add(&self.fc2_bias)?)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        vec![
            ("fc1.weight".into(), self.fc1_weight.clone()),
            ("fc1.bias".into(), self.fc1_bias.clone()),
            ("fc2.weight".into(), self.fc2_weight.clone()),
            ("fc2.bias".into(), self.fc2_bias.clone()),
        ]
    }
}

/// The model, the test images (200, 1, 16, 16) and their labels.
fn load() -> (Mlp, Tensor, Vec<u32>) {
    let path = reference_dir().join("autoattack_model.safetensors");
    let mut t = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut take = |name: &str| {
        t.remove(name)
            .unwrap_or_else(|| panic!("{} has no tensor `{name}`", path.display()))
    };
    let model = Mlp {
        fc1_weight: take("fc1.weight"),
        fc1_bias: take("fc1.bias"),
        fc2_weight: take("fc2.weight"),
        fc2_bias: take("fc2.bias"),
    };
    let x = take("x").to_dtype(DType::F32).unwrap();
    let labels = take("y")
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|l| l as u32)
        .collect();
    (model, x, labels)
}

fn expected() -> serde_json::Value {
    let path = reference_dir().join("autoattack_expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// One AutoAttack attack as rossl builds it: (JSON key, registered attack, loss, targets).
const ATTACKS: [(&str, &str, AttackLoss, usize); 4] = [
    ("apgd-ce", "apgd", AttackLoss::CrossEntropy, 0),
    ("apgd-t", "apgd", AttackLoss::Dlr, 9),
    ("fab-t", "fab", AttackLoss::Margin, 9),
    ("square", "square", AttackLoss::Margin, 0),
];

/// The parameters of `attack` at radius `eps` under `norm` (`linf` or `l2`), as torchattacks ran
/// it: 100 iterations for APGD and FAB, 5000 queries for Square.
fn params(attack: &str, eps: f64, norm: &str) -> toml::Table {
    let mut p = toml::Table::new();
    p.insert("eps".into(), toml::Value::Float(eps));
    p.insert("norm".into(), toml::Value::String(norm.into()));
    match attack {
        "square" => p.insert("queries".into(), toml::Value::Integer(5000)),
        _ => p.insert("steps".into(), toml::Value::Integer(100)),
    };
    p
}

/// Images still correctly classified after rossl's `attack`.
fn rossl_correct(
    model: &Mlp,
    x: &Tensor,
    labels: &[u32],
    (label, attack, loss, targets): (&str, &str, AttackLoss, usize),
    eps: f64,
    norm: &str,
) -> std::result::Result<usize, String> {
    let plan = PlannedAttack::build(
        PresetAttack {
            label: label.to_string(),
            attack: attack.to_string(),
            loss,
            params: params(attack, eps, norm),
            stage: Stage::AllPoints,
            targets,
        },
        "test",
        &BuildContext::cpu(0),
    )
    .map_err(|e| e.to_string())?;
    let (correct, excursion) = AttackRun {
        classifier: model,
        eot_samples: 1,
        draws: Rng::new(1),
        attack_rng: Rng::new(2),
        prediction_rng: Rng::new(3),
    }
    .run(&plan, x, labels)
    .map_err(|e| e.to_string())?;
    // the excursion: how far the points leave the attack's ball (L2 or L-infinity, as its `norm`)
    // or the pixel range
    if excursion > 1e-5 {
        return Err(format!("left the ball by {excursion}"));
    }
    Ok(correct.iter().filter(|&&c| c).count())
}

/// Runs every attack at the reference radius of `norm` and compares with torchattacks' figures.
fn compare(norm: &str) {
    let (model, x, labels) = load();
    let expected = expected();
    let images = expected["images"].as_u64().unwrap() as usize;
    assert_eq!(labels.len(), images);
    let clean = rossl::rossl_runtime::eval::predict(&model, &x, &Rng::new(3))
        .unwrap()
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    assert_eq!(
        clean as u64,
        expected["clean_correct"].as_u64().unwrap(),
        "clean accuracy of the loaded model differs from torch's: the weights or the forward pass differ"
    );
    let reference = &expected["norms"][norm];
    let eps = reference["eps"].as_f64().unwrap();
    let mut table = format!(
        "{norm}, eps {eps}: images still correct of {images} (clean {clean})\n{:<8} {:>6} {:>6} {:>16} {:>6}  ok\n",
        "attack", "rossl", "torch", "seeds", "limit"
    );
    let mut failed = false;
    for spec in ATTACKS {
        let figure = &reference["attacks"][spec.0];
        let torch = figure["reference"].as_u64().unwrap() as i64;
        let seeds: Vec<u64> = figure["correct"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        // 1 point of accuracy (2 images of 200), or torchattacks' own spread over its seeds where
        // that is larger. The figures are decisive but not exact: torchattacks' L2 Square leaves
        // 123 to 125 images correct over its seeds 0, 1 and 2; rossl's (each image drawing from
        // its own stream since 2026-12-07) 122 to 127 over attack seeds 0 to 11, mean 124.3, 125
        // at this test's seed 2 (127 at seed 3 and 126 at seed 10 would fail); the gradient
        // attacks leave 120 under each of torchattacks' seeds and at this test's seed. A change
        // of rossl's random streams can move Square by a few images: look at the seeds before
        // suspecting the attack.
        let limit = ((images as i64) / 100).max(figure["spread"].as_i64().unwrap());
        let (shown, verdict) = match rossl_correct(&model, &x, &labels, spec, eps, norm) {
            Ok(c) if (c as i64 - torch).abs() <= limit => (c.to_string(), "yes".to_string()),
            Ok(c) => (c.to_string(), "NO".to_string()),
            Err(e) => ("error".to_string(), format!("NO: {e}")),
        };
        failed |= verdict != "yes";
        table += &format!(
            "{:<8} {:>6} {:>6} {:>16} {:>6}  {verdict}\n",
            spec.0,
            shown,
            torch,
            format!("{seeds:?}"),
            limit,
        );
    }
    println!("{table}");
    assert!(
        !failed,
        "rossl's attacks differ from torchattacks' figures: see the table above"
    );
}

#[test]
fn autoattack_matches_torchattacks_under_linf() {
    compare("linf");
}

#[test]
fn autoattack_matches_torchattacks_under_l2() {
    compare("l2");
}

/// Per image, the distance of rossl's FAB-T point from the image (infinite where it is still
/// correctly classified) at the radius `eps` under `norm`.
fn rossl_fab_distances(model: &Mlp, x: &Tensor, labels: &[u32], eps: f64, norm: &str) -> Vec<f64> {
    let plan = PlannedAttack::build(
        PresetAttack {
            label: "fab-t".into(),
            attack: "fab".into(),
            loss: AttackLoss::Margin,
            params: params("fab", eps, norm),
            stage: Stage::AllPoints,
            targets: 9,
        },
        "test",
        &BuildContext::cpu(0),
    )
    .unwrap();
    let (correct, _, points) = AttackRun {
        classifier: model,
        eot_samples: 1,
        draws: Rng::new(1),
        attack_rng: Rng::new(2),
        prediction_rng: Rng::new(3),
    }
    .run_with_points(&plan, x, labels)
    .unwrap();
    let norm = match norm {
        "l2" => rossl::rossl_api::norm::Norm::L2,
        _ => rossl::rossl_api::norm::Norm::Linf,
    };
    let distances = norm.distances(&(points - x).unwrap()).unwrap();
    distances
        .into_iter()
        .zip(correct)
        .map(|(d, still)| if still { f64::INFINITY } else { d })
        .collect()
}

/// FAB-T's distances, image by image, against torchattacks'.
fn compare_fab_distances(norm: &str) {
    let (model, x, labels) = load();
    let reference = &expected()["norms"][norm]["fab_t_distances"];
    let eps = reference["eps"].as_f64().unwrap();
    let torch: Vec<f64> = reference["distances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap_or(f64::INFINITY))
        .collect();
    let ours = rossl_fab_distances(&model, &x, &labels, eps, norm);
    let broken = |d: &[f64]| d.iter().filter(|d| d.is_finite()).count();
    assert_eq!(broken(&ours), broken(&torch), "images FAB-T broke");
    let mut relative: Vec<f64> = ours
        .iter()
        .zip(&torch)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (a / b - 1.0).abs())
        .collect();
    relative.sort_by(f64::total_cmp);
    let at = |q: f64| relative[((relative.len() - 1) as f64 * q).round() as usize];
    let (median, p95) = (at(0.5), at(0.95));
    println!(
        "{norm} FAB-T distances, rossl against torchattacks, relative difference over {} images: median {median:.2e}, 95th percentile {p95:.2e}, largest {:.2e}",
        relative.len(),
        at(1.0)
    );
    // a tenth of what changing one of FAB's parameters moves them (eta 1.0: median 0.5%, beta
    // 1.0: 95th percentile 4.7% and more, alpha_max 0: median 0.25%)
    assert!(
        median <= 2.5e-4 && p95 <= 2.5e-3,
        "{norm}: median {median}, p95 {p95}"
    );
}

#[test]
fn fab_t_finds_torchattacks_points_under_linf_and_l2() {
    compare_fab_distances("linf");
    compare_fab_distances("l2");
}
