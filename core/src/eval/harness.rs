//! Fitting each evaluator's classifier and measuring it clean, under attack and with checks.

use super::checks::{run_checks, CheckSettings, Snapshot};
use super::classify::{cross_entropy, labels_tensor, margin_loss, predictions};
use super::report::{EvaluationReport, RobustResult, WorstCase};
use super::suite::{attack_suite, AttackLoss};
use crate::components::{
    BuildContext, Classifier, Encoder, Evaluator, FitContext, FrozenEncoder, ImageSet, Objective,
};
use crate::config::EvalConfig;
use crate::data::image_batch;
use crate::rng::{stream, Rng};
use crate::Result;
use candle_core::{Device, Tensor};
use std::time::Instant;

/// What an evaluation runs on.
pub struct EvalInputs<'a> {
    /// The trained encoder (frozen for evaluation).
    pub encoder: &'a dyn Encoder,
    /// Labelled training images for fitting probes.
    pub train: &'a ImageSet,
    /// Test images.
    pub test: &'a ImageSet,
    /// The device.
    pub device: &'a Device,
    /// The run's seed.
    pub seed: u64,
    /// The evaluation settings.
    pub config: &'a EvalConfig,
    /// How attacks are built.
    pub ctx: &'a BuildContext,
}

/// An attack objective on a classifier: cross-entropy or margin per example, averaged over
/// `eot_samples` draws when the classifier is random (expectation over transformation);
/// success means misclassified under a fixed prediction draw.
pub struct ClassifierObjective<'a> {
    /// The classifier attacked.
    pub classifier: &'a dyn Classifier,
    /// True labels (B,) u32.
    pub labels: Tensor,
    /// True labels on the host.
    pub label_values: Vec<u32>,
    /// The loss maximised.
    pub loss: AttackLoss,
    /// Draws per gradient for random classifiers.
    pub eot_samples: usize,
    /// The stream of draws for gradients.
    pub draws: Rng,
    /// The draw used for predictions (cloned at every use, so every prediction sees it).
    pub prediction_rng: Rng,
}

impl Objective for ClassifierObjective<'_> {
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        let samples = if self.classifier.is_random() {
            self.eot_samples.max(1)
        } else {
            1
        };
        let mut total: Option<Tensor> = None;
        for _ in 0..samples {
            let logits = self.classifier.logits(x, &mut self.draws)?;
            let value = match self.loss {
                AttackLoss::CrossEntropy => cross_entropy(&logits, &self.labels)?,
                AttackLoss::Margin => margin_loss(&logits, &self.labels)?,
            };
            total = Some(match total {
                Some(t) => (t + value)?,
                None => value,
            });
        }
        let total = total.expect("at least one sample");
        Ok(if samples > 1 {
            (total / samples as f64)?
        } else {
            total
        })
    }

    fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
        let predicted = predict(self.classifier, x, &self.prediction_rng)?;
        Ok(Some(
            predicted
                .iter()
                .zip(&self.label_values)
                .map(|(p, l)| p != l)
                .collect(),
        ))
    }
}

/// Predictions of `classifier` on `x` under the fixed draw `rng`.
pub(crate) fn predict(classifier: &dyn Classifier, x: &Tensor, rng: &Rng) -> Result<Vec<u32>> {
    let logits = classifier.logits(x, &mut rng.clone())?;
    predictions(&logits.detach())
}

/// Fits `evaluator`'s classifier and measures it: clean accuracy, accuracy under every attack of
/// the preset at every radius, the per-example worst case, and the sanity checks.
pub fn evaluate(
    name: &str,
    evaluator: &dyn Evaluator,
    index: usize,
    inputs: &EvalInputs<'_>,
) -> Result<EvaluationReport> {
    let started = Instant::now();
    let config = inputs.config;
    let fit = FitContext {
        encoder: FrozenEncoder::new(inputs.encoder),
        train: inputs.train,
        device: inputs.device,
        seed: Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 0]).next_u64(),
    };
    let classifier = evaluator.fit(&fit)?;
    let snapshot = Snapshot::take(inputs.encoder)?;
    let classifier = classifier.as_ref();
    let suites = config
        .eps
        .iter()
        .map(|&eps| attack_suite(config, eps, inputs.ctx))
        .collect::<Result<Vec<_>>>()?;
    let n = inputs.test.len();
    let mut clean = Vec::with_capacity(n);
    let mut correct: Vec<Vec<Vec<bool>>> = suites
        .iter()
        .map(|s| vec![Vec::with_capacity(n); s.len()])
        .collect();
    let mut ball_violation = 0.0f64;
    let indices: Vec<usize> = (0..n).collect();
    let batches: Vec<&[usize]> = indices.chunks(config.batch_size.max(1)).collect();
    let attacks_per_batch: usize = suites.iter().map(Vec::len).sum();
    let mut bar = crate::progress::bar((batches.len() * (1 + attacks_per_batch)) as u64, name);
    for (b, part) in batches.iter().enumerate() {
        let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
        let prediction_rng = Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 1, b as u64]);
        let clean_pred = predict(classifier, &x, &prediction_rng)?;
        clean.extend(clean_pred.iter().zip(&labels).map(|(p, l)| p == l));
        bar.inc(1);
        let label_tensor = labels_tensor(&labels, inputs.device)?;
        for (e, suite) in suites.iter().enumerate() {
            for (a, plan) in suite.iter().enumerate() {
                let path = [stream::EVAL, index as u64, 2, e as u64, a as u64, b as u64];
                let mut objective = ClassifierObjective {
                    classifier,
                    labels: label_tensor.clone(),
                    label_values: labels.clone(),
                    loss: plan.loss,
                    eot_samples: config.eot_samples,
                    draws: Rng::derive(inputs.seed, &path),
                    prediction_rng: prediction_rng.clone(),
                };
                let mut attack_rng = Rng::derive(
                    inputs.seed,
                    &[stream::ATTACK, index as u64, e as u64, a as u64, b as u64],
                );
                let adversarial = plan.attack.perturb(&x, &mut objective, &mut attack_rng)?;
                ball_violation = ball_violation.max(violation(&x, &adversarial, plan.eps)?);
                let predicted = predict(classifier, &adversarial, &prediction_rng)?;
                correct[e][a].extend(predicted.iter().zip(&labels).map(|(p, l)| p == l));
                bar.set_message(format!("{} eps {:.4}", plan.label, plan.eps));
                bar.inc(1);
            }
        }
    }
    bar.finish();
    let fraction = |v: &[bool]| v.iter().filter(|&&c| c).count() as f64 / v.len().max(1) as f64;
    let clean_accuracy = fraction(&clean);
    let mut robust = Vec::new();
    let mut worst_case = Vec::new();
    for (e, suite) in suites.iter().enumerate() {
        let mut worst = clean.clone();
        for (a, plan) in suite.iter().enumerate() {
            robust.push(RobustResult {
                attack: plan.label.clone(),
                eps: plan.eps,
                steps: plan.attack.spec().steps,
                accuracy: fraction(&correct[e][a]),
            });
            for (w, c) in worst.iter_mut().zip(&correct[e][a]) {
                *w = *w && *c;
            }
        }
        if !suite.is_empty() {
            worst_case.push(WorstCase {
                eps: config.eps[e],
                accuracy: fraction(&worst),
            });
        }
    }
    let settings = CheckSettings::from_config(config);
    let checks = run_checks(
        classifier,
        inputs,
        index,
        &settings,
        &clean,
        &robust,
        &worst_case,
        ball_violation,
        &snapshot,
    )?;
    Ok(EvaluationReport {
        evaluator: name.to_string(),
        clean_accuracy,
        robust,
        worst_case,
        checks,
        test_images: n,
        threat_model: format!(
            "L-infinity, eps in {:?}, inputs in [0, 1] with no normalisation outside the model, white box end to end through encoder and classifier, {n} test images, preset `{}`",
            config.eps,
            config.preset
        ),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// How far `adversarial` leaves the ball of radius `eps` around `x` or the pixel range (0 when
/// it does not).
pub(crate) fn violation(x: &Tensor, adversarial: &Tensor, eps: f64) -> Result<f64> {
    let outside_ball = ((adversarial - x)?
        .abs()?
        .max_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        - eps)
        .max(0.0);
    let low = (-adversarial
        .min_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?)
    .max(0.0);
    let high = (adversarial
        .max_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        - 1.0)
        .max(0.0);
    Ok(outside_ball.max(low).max(high))
}
