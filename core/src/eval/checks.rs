//! Sanity checks that catch broken evaluations (robustness-evaluation notes): eps = 0 gives the
//! clean accuracy, accuracy does not rise with eps nor with more steps, a very large eps drives
//! accuracy to near 0, input gradients are finite and non-zero, perturbations stay in the ball
//! and the pixel range, and attacks leave the weights and batch-norm statistics unchanged.

use super::harness::{predict, violation, ClassifierObjective, EvalInputs};
use super::report::{CheckResult, RobustResult, WorstCase};
use super::suite::{build_attack, AttackLoss};
use crate::adversarial::input_gradient;
use crate::components::{Classifier, Encoder};
use crate::config::EvalConfig;
use crate::data::image_batch;
use crate::eval::classify::labels_tensor;
use crate::rng::{stream, Rng};
use crate::train::encoder_tensors;
use crate::Result;
use candle_core::{Tensor, D};

/// Settings of the checks.
#[derive(Clone, Debug)]
pub struct CheckSettings {
    /// Test images used (0: all).
    pub images: usize,
    /// Steps of the long PGD.
    pub steps: usize,
    /// The large radius.
    pub large_eps: f64,
    /// Highest accuracy allowed at the large radius.
    pub large_eps_max_accuracy: f64,
    /// The largest configured radius.
    pub max_eps: f64,
    /// The evaluation batch size (checks batch differently on purpose).
    pub batch_size: usize,
    /// EOT draws.
    pub eot_samples: usize,
}

impl CheckSettings {
    /// The checks' settings from the evaluation's.
    pub fn from_config(config: &EvalConfig) -> Self {
        CheckSettings {
            images: config.check_images,
            steps: config.steps,
            large_eps: config.large_eps,
            large_eps_max_accuracy: config.large_eps_max_accuracy,
            max_eps: config.eps.iter().copied().fold(0.0, f64::max),
            batch_size: config.batch_size,
            eot_samples: config.eot_samples,
        }
    }
}

/// A copy of every encoder tensor, to prove that evaluation changed none.
pub(crate) struct Snapshot {
    tensors: Vec<(String, Tensor)>,
}

impl Snapshot {
    pub(crate) fn take(encoder: &dyn Encoder) -> Result<Self> {
        let tensors = encoder_tensors(encoder)
            .into_iter()
            .map(|(n, t)| Ok((n, t.copy()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Snapshot { tensors })
    }

    /// Names of the tensors whose values changed.
    fn changed(&self, encoder: &dyn Encoder) -> Result<Vec<String>> {
        let now = encoder_tensors(encoder);
        let mut changed = Vec::new();
        for ((name, before), (_, after)) in self.tensors.iter().zip(&now) {
            let same = before.dims() == after.dims()
                && before
                    .flatten_all()?
                    .ne(&after.flatten_all()?)?
                    .to_dtype(candle_core::DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()?
                    == 0.0;
            if !same {
                changed.push(name.clone());
            }
        }
        Ok(changed)
    }
}

fn check(name: &str, passed: bool, detail: String) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        passed,
        detail,
    }
}

/// Accuracy of `classifier` under attack `name` with `params` over the check images, in batches of
/// `batch`; also returns the largest ball/range violation.
#[allow(clippy::too_many_arguments)]
fn attacked_accuracy(
    classifier: &dyn Classifier,
    inputs: &EvalInputs<'_>,
    index: usize,
    tag: u64,
    images: &[usize],
    batch: usize,
    attack: &dyn crate::components::Attack,
    loss: AttackLoss,
    settings: &CheckSettings,
) -> Result<(Vec<bool>, Vec<bool>, f64)> {
    let mut correct = Vec::new();
    let mut clean = Vec::new();
    let mut worst_violation = 0.0f64;
    for (b, part) in images.chunks(batch).enumerate() {
        let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
        let prediction_rng =
            Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 3, tag, b as u64]);
        let mut objective = ClassifierObjective {
            classifier,
            labels: labels_tensor(&labels, inputs.device)?,
            label_values: labels.clone(),
            loss,
            eot_samples: settings.eot_samples,
            draws: Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 4, tag, b as u64]),
            prediction_rng: prediction_rng.clone(),
        };
        let mut rng = Rng::derive(
            inputs.seed,
            &[stream::ATTACK, index as u64, 99, tag, b as u64],
        );
        let adversarial = attack.perturb(&x, &mut objective, &mut rng)?;
        worst_violation = worst_violation.max(violation(&x, &adversarial, attack.spec().eps)?);
        let predicted = predict(classifier, &adversarial, &prediction_rng)?;
        correct.extend(predicted.iter().zip(&labels).map(|(p, l)| p == l));
        let clean_predicted = predict(classifier, &x, &prediction_rng)?;
        clean.extend(clean_predicted.iter().zip(&labels).map(|(p, l)| p == l));
    }
    Ok((correct, clean, worst_violation))
}

fn fraction(v: &[bool]) -> f64 {
    v.iter().filter(|&&c| c).count() as f64 / v.len().max(1) as f64
}

fn pgd(
    eps: f64,
    step: f64,
    steps: usize,
    random_start: bool,
    inputs: &EvalInputs<'_>,
) -> Result<Box<dyn crate::components::Attack>> {
    use toml::Value::{Boolean, Float, Integer};
    let params: toml::Table = [
        ("eps".to_string(), Float(eps)),
        ("step".to_string(), Float(step)),
        ("steps".to_string(), Integer(steps as i64)),
        ("random_start".to_string(), Boolean(random_start)),
    ]
    .into_iter()
    .collect();
    build_attack("pgd-linf", params, inputs.ctx)
}

/// Runs every check; `clean` holds the main pass's per-example clean correctness.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_checks(
    classifier: &dyn Classifier,
    inputs: &EvalInputs<'_>,
    index: usize,
    settings: &CheckSettings,
    clean: &[bool],
    robust: &[RobustResult],
    worst_case: &[WorstCase],
    ball_violation: f64,
    snapshot: &Snapshot,
) -> Result<Vec<CheckResult>> {
    let n = inputs.test.len();
    let count = if settings.images == 0 {
        n
    } else {
        settings.images.min(n)
    };
    let images: Vec<usize> = (0..count).collect();
    // A batch size unlike the main pass's, so that batch-dependent predictions (batch norm left in
    // training mode) show up as differences.
    let batch = (settings.batch_size / 2).max(1) + 1;
    let tolerance = 1.0 / count.max(1) as f64 + 1e-12;
    let mut checks = Vec::new();
    let mut excursion = ball_violation;

    // 1. eps = 0
    let zero = pgd(0.0, 0.01, 2, true, inputs)?;
    let (at_zero, clean_here, v0) = attacked_accuracy(
        classifier,
        inputs,
        index,
        1,
        &images,
        batch,
        zero.as_ref(),
        AttackLoss::CrossEntropy,
        settings,
    )?;
    let reference: Vec<bool> = if classifier.is_random() {
        clean_here
    } else {
        clean[..count].to_vec()
    };
    let differing = at_zero
        .iter()
        .zip(&reference)
        .filter(|(a, b)| a != b)
        .count();
    checks.push(check(
        "eps = 0 gives exactly the clean accuracy",
        differing == 0 && v0 == 0.0,
        format!(
            "PGD at eps 0: accuracy {:.4}, clean {:.4} on {count} images; {differing} per-example results differ{}",
            fraction(&at_zero),
            fraction(&reference),
            if classifier.is_random() { " (random classifier: same draws, same batches)" } else { " (batched differently from the clean pass)" }
        ),
    ));

    // 2. accuracy does not rise with eps
    let mut sorted: Vec<&WorstCase> = worst_case.iter().collect();
    sorted.sort_by(|a, b| a.eps.total_cmp(&b.eps));
    let clean_accuracy = fraction(clean);
    let mut rises = Vec::new();
    let mut previous = (0.0, clean_accuracy);
    for w in &sorted {
        if w.accuracy > previous.1 + 1.0 / n.max(1) as f64 {
            rises.push(format!(
                "{:.4} at eps {:.4} > {:.4} at eps {:.4}",
                w.accuracy, w.eps, previous.1, previous.0
            ));
        }
        previous = (w.eps, w.accuracy);
    }
    let curve: Vec<String> = std::iter::once(format!("0: {clean_accuracy:.4}"))
        .chain(
            sorted
                .iter()
                .map(|w| format!("{:.4}: {:.4}", w.eps, w.accuracy)),
        )
        .collect();
    checks.push(check(
        "accuracy does not rise with eps",
        rises.is_empty(),
        if rises.is_empty() {
            format!("worst-case accuracy by eps: {}", curve.join(", "))
        } else {
            format!("{} (curve: {})", rises.join("; "), curve.join(", "))
        },
    ));

    // 3. more steps do not raise accuracy; iterative beats single-step
    if settings.max_eps > 0.0 {
        let eps = settings.max_eps;
        let short_steps = (settings.steps / 4).max(1);
        let long = pgd(eps, eps / 4.0, settings.steps, true, inputs)?;
        let short = pgd(eps, eps / 4.0, short_steps, true, inputs)?;
        let single = pgd(eps, eps, 1, false, inputs)?;
        let (a_long, _, v1) = attacked_accuracy(
            classifier,
            inputs,
            index,
            2,
            &images,
            batch,
            long.as_ref(),
            AttackLoss::CrossEntropy,
            settings,
        )?;
        let (a_short, _, v2) = attacked_accuracy(
            classifier,
            inputs,
            index,
            3,
            &images,
            batch,
            short.as_ref(),
            AttackLoss::CrossEntropy,
            settings,
        )?;
        let (a_single, _, v3) = attacked_accuracy(
            classifier,
            inputs,
            index,
            4,
            &images,
            batch,
            single.as_ref(),
            AttackLoss::CrossEntropy,
            settings,
        )?;
        let (l, s, f) = (fraction(&a_long), fraction(&a_short), fraction(&a_single));
        checks.push(check(
            "accuracy does not rise with more steps",
            l <= s + tolerance,
            format!(
                "at eps {eps:.4} on {count} images: PGD-{short_steps} {s:.4}, PGD-{} {l:.4} (single-step FGSM {f:.4}{})",
                settings.steps,
                if f + tolerance < l { ": below PGD, a sign of gradient masking or of too small a PGD step" } else { "" }
            ),
        ));
        excursion = excursion.max(v1).max(v2).max(v3);
    }

    // 4. a very large eps drives accuracy to near 0
    let large = pgd(
        settings.large_eps,
        settings.large_eps / 4.0,
        settings.steps,
        true,
        inputs,
    )?;
    let (a_large, _, _) = attacked_accuracy(
        classifier,
        inputs,
        index,
        5,
        &images,
        batch,
        large.as_ref(),
        AttackLoss::Margin,
        settings,
    )?;
    let large_accuracy = fraction(&a_large);
    checks.push(check(
        "a very large eps drives accuracy to near 0",
        large_accuracy <= settings.large_eps_max_accuracy,
        format!(
            "PGD-{} (margin) at eps {}: accuracy {large_accuracy:.4} on {count} images (at most {} required)",
            settings.steps, settings.large_eps, settings.large_eps_max_accuracy
        ),
    ));

    // 5. input gradients are finite and non-zero
    let mut finite = true;
    let (mut nonzero, mut total) = (0usize, 0usize);
    for (b, part) in images.chunks(batch).enumerate() {
        let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
        let mut objective = ClassifierObjective {
            classifier,
            labels: labels_tensor(&labels, inputs.device)?,
            label_values: labels.clone(),
            loss: AttackLoss::CrossEntropy,
            eot_samples: settings.eot_samples,
            draws: Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 6, b as u64]),
            prediction_rng: Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 7, b as u64]),
        };
        let (_, gradient) = input_gradient(&mut objective, &x)?;
        let rows = gradient.dim(0)?;
        let per_example = gradient
            .reshape((rows, ()))?
            .abs()?
            .sum(D::Minus1)?
            .to_vec1::<f32>()?;
        finite &= per_example.iter().all(|v| v.is_finite());
        nonzero += per_example.iter().filter(|v| **v > 0.0).count();
        total += rows;
    }
    let share = nonzero as f64 / total.max(1) as f64;
    checks.push(check(
        "input gradients are finite and non-zero",
        finite && share >= 0.9,
        format!(
            "cross-entropy input gradient on {total} images: {}; non-zero for {:.1}% of them",
            if finite {
                "all finite"
            } else {
                "NOT all finite"
            },
            100.0 * share
        ),
    ));

    // 6. perturbations in the ball and the pixel range
    checks.push(check(
        "perturbations stay in the eps ball and the pixel range [0, 1]",
        excursion <= 1e-6,
        format!(
            "largest excursion over the {} evaluation attacks and the checks' attacks: {excursion:e}",
            robust.len()
        ),
    ));

    // 7. weights and batch-norm statistics unchanged
    let changed = snapshot.changed(inputs.encoder)?;
    checks.push(check(
        "attacks leave weights and batch-norm statistics unchanged",
        changed.is_empty(),
        if changed.is_empty() {
            "every encoder parameter and buffer is bit-identical after evaluation".to_string()
        } else {
            format!("changed: {}", changed.join(", "))
        },
    ));
    Ok(checks)
}
