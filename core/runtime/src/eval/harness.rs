//! Fitting each evaluator's classifier and measuring it clean, under attack and with checks.

use super::checks::{run_checks, CheckContext, Snapshot};
use super::report::{EvaluationReport, RobustResult, WorstCase};
use super::suite::{attack_suite, PlannedAttack};
use crate::config::EvalConfig;
use crate::Result;
use candle_core::{Device, Tensor};
use rossl_api::components::{
    AttackLoss, BuildContext, Classifier, Encoder, Evaluator, FitContext, FrozenEncoder, ImageSet,
    Objective, Stage,
};
use rossl_api::data::image_batch;
use rossl_api::rng::{stream, Rng};
use rossl_nn::classify::{cross_entropy, dlr_loss, labels_tensor, margin_loss, predictions};
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

/// An attack objective on a classifier: cross-entropy, margin or DLR per example, averaged over
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

impl ClassifierObjective<'_> {
    fn loss_of(&self, logits: &Tensor) -> Result<Tensor> {
        match self.loss {
            AttackLoss::CrossEntropy => cross_entropy(logits, &self.labels),
            AttackLoss::Margin => margin_loss(logits, &self.labels),
            AttackLoss::Dlr => dlr_loss(logits, &self.labels),
        }
    }

    fn misclassified(&self, predicted: &[u32]) -> Vec<bool> {
        predicted
            .iter()
            .zip(&self.label_values)
            .map(|(p, l)| p != l)
            .collect()
    }
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
            let value = self.loss_of(&logits)?;
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
        Ok(Some(self.misclassified(&predicted)))
    }

    fn evaluate(&mut self, x: &Tensor) -> Result<(Tensor, Option<Vec<bool>>)> {
        if self.classifier.is_random() {
            let loss = self.loss(x)?.detach();
            return Ok((loss, self.succeeded(x)?));
        }
        // a deterministic classifier: one forward pass gives both
        let logits = self
            .classifier
            .logits(&x.detach(), &mut self.prediction_rng.clone())?
            .detach();
        let predicted = predictions(&logits)?;
        Ok((self.loss_of(&logits)?, Some(self.misclassified(&predicted))))
    }
}

/// Predictions of `classifier` on `x` under the fixed draw `rng`.
pub(crate) fn predict(classifier: &dyn Classifier, x: &Tensor, rng: &Rng) -> Result<Vec<u32>> {
    let logits = classifier.logits(x, &mut rng.clone())?;
    predictions(&logits.detach())
}

/// How far `adversarial` leaves the ball of radius `eps` around `x` or the pixel range (0 when
/// it does not).
pub(crate) fn violation(x: &Tensor, adversarial: &Tensor, eps: f64) -> Result<f64> {
    let scalar =
        |t: Tensor| -> Result<f64> { Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?) };
    let outside_ball = (scalar((adversarial - x)?.abs()?.max_all()?)? - eps).max(0.0);
    let low = (-scalar(adversarial.min_all()?)?).max(0.0);
    let high = (scalar(adversarial.max_all()?)? - 1.0).max(0.0);
    Ok(outside_ball.max(low).max(high))
}

/// Per-example outcomes of the main pass over the test set.
pub(crate) struct MainPass {
    /// Clean correctness of every test image.
    pub clean: Vec<bool>,
    /// Per radius, per attack of its suite, per test image: correct under the attack, or `None`
    /// when the attack did not run on the image (a survivors-stage attack on a point already
    /// misclassified).
    pub attacked: Vec<Vec<Vec<Option<bool>>>>,
    /// The largest ball or pixel-range excursion of any attack.
    pub violation: f64,
}

impl MainPass {
    /// Per-example worst case at radius index `e`: correct clean and under every attack run.
    pub fn worst(&self, e: usize) -> Vec<bool> {
        let mut worst = self.clean.clone();
        for outcomes in &self.attacked[e] {
            for (w, o) in worst.iter_mut().zip(outcomes) {
                *w &= o.unwrap_or(true);
            }
        }
        worst
    }
}

/// Rows of `x` and `labels` at `rows`.
fn select_rows(x: &Tensor, labels: &[u32], rows: &[usize]) -> Result<(Tensor, Vec<u32>)> {
    let index: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let index = Tensor::from_vec(index, rows.len(), x.device())?;
    Ok((
        x.index_select(&index, 0)?,
        rows.iter().map(|&r| labels[r]).collect(),
    ))
}

/// One attack on a batch: the per-example correctness of its adversarial examples and how far
/// they leave the ball.
pub(crate) struct AttackRun<'a> {
    /// The classifier attacked.
    pub classifier: &'a dyn Classifier,
    /// EOT draws per gradient.
    pub eot_samples: usize,
    /// The stream of gradient draws.
    pub draws: Rng,
    /// The stream of the attack's own randomness.
    pub attack_rng: Rng,
    /// The fixed draw of predictions.
    pub prediction_rng: Rng,
}

impl AttackRun<'_> {
    /// Attacks `x` (true labels `labels`) with `plan`: (correct per example, excursion).
    pub fn run(
        mut self,
        plan: &PlannedAttack,
        x: &Tensor,
        labels: &[u32],
    ) -> Result<(Vec<bool>, f64)> {
        let mut objective = ClassifierObjective {
            classifier: self.classifier,
            labels: labels_tensor(labels, x.device())?,
            label_values: labels.to_vec(),
            loss: plan.loss,
            eot_samples: self.eot_samples,
            draws: self.draws,
            prediction_rng: self.prediction_rng.clone(),
        };
        let adversarial = plan
            .attack
            .perturb(x, &mut objective, &mut self.attack_rng)?;
        let excursion = violation(x, &adversarial, plan.eps)?;
        let predicted = predict(self.classifier, &adversarial, &self.prediction_rng)?;
        let correct = predicted.iter().zip(labels).map(|(p, l)| p == l).collect();
        Ok((correct, excursion))
    }
}

fn main_pass(
    classifier: &dyn Classifier,
    suites: &[Vec<PlannedAttack>],
    name: &str,
    index: usize,
    inputs: &EvalInputs<'_>,
) -> Result<MainPass> {
    let config = inputs.config;
    let n = inputs.test.len();
    let mut pass = MainPass {
        clean: Vec::with_capacity(n),
        attacked: suites
            .iter()
            .map(|s| vec![Vec::with_capacity(n); s.len()])
            .collect(),
        violation: 0.0,
    };
    let indices: Vec<usize> = (0..n).collect();
    let batches: Vec<&[usize]> = indices.chunks(config.batch_size.max(1)).collect();
    let attacks_per_batch: usize = suites.iter().map(Vec::len).sum();
    let mut bar = crate::progress::bar((batches.len() * (1 + attacks_per_batch)) as u64, name);
    for (b, part) in batches.iter().enumerate() {
        let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
        let prediction_rng = Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 1, b as u64]);
        let clean: Vec<bool> = predict(classifier, &x, &prediction_rng)?
            .iter()
            .zip(&labels)
            .map(|(p, l)| p == l)
            .collect();
        pass.clean.extend(&clean);
        bar.inc(1);
        for (e, suite) in suites.iter().enumerate() {
            // white-box attacks on every point first, then survivors-stage attacks on the points
            // all earlier attacks left correct
            let mut order: Vec<usize> = (0..suite.len()).collect();
            order.sort_by_key(|&a| suite[a].stage == Stage::Survivors);
            let mut still = clean.clone();
            let mut outcomes: Vec<Vec<Option<bool>>> = vec![Vec::new(); suite.len()];
            for a in order {
                let plan = &suite[a];
                let rows: Vec<usize> = match plan.stage {
                    Stage::AllPoints => (0..labels.len()).collect(),
                    Stage::Survivors => (0..labels.len()).filter(|&r| still[r]).collect(),
                };
                let mut outcome = vec![None; labels.len()];
                if !rows.is_empty() {
                    let (xs, ys) = if rows.len() == labels.len() {
                        (x.clone(), labels.clone())
                    } else {
                        select_rows(&x, &labels, &rows)?
                    };
                    let run = AttackRun {
                        classifier,
                        eot_samples: config.eot_samples,
                        draws: Rng::derive(
                            inputs.seed,
                            &[stream::EVAL, index as u64, 2, e as u64, a as u64, b as u64],
                        ),
                        attack_rng: Rng::derive(
                            inputs.seed,
                            &[stream::ATTACK, index as u64, e as u64, a as u64, b as u64],
                        ),
                        prediction_rng: prediction_rng.clone(),
                    };
                    let (correct, excursion) = run.run(plan, &xs, &ys)?;
                    pass.violation = pass.violation.max(excursion);
                    for (&r, c) in rows.iter().zip(correct) {
                        outcome[r] = Some(c);
                        still[r] &= c;
                    }
                }
                outcomes[a] = outcome;
                bar.set_message(format!("{} eps {:.4}", plan.label, plan.eps));
                bar.inc(1);
            }
            for (a, outcome) in outcomes.into_iter().enumerate() {
                pass.attacked[e][a].extend(outcome);
            }
        }
    }
    bar.finish();
    Ok(pass)
}

/// The fraction of `true` among the values present.
pub(crate) fn fraction<'a>(values: impl IntoIterator<Item = &'a bool>) -> f64 {
    let (mut yes, mut total) = (0usize, 0usize);
    for &v in values {
        yes += usize::from(v);
        total += 1;
    }
    yes as f64 / total.max(1) as f64
}

fn summarise(
    suites: &[Vec<PlannedAttack>],
    pass: &MainPass,
    eps: &[f64],
) -> (Vec<RobustResult>, Vec<WorstCase>) {
    let mut robust = Vec::new();
    let mut worst_case = Vec::new();
    for (e, suite) in suites.iter().enumerate() {
        for (a, plan) in suite.iter().enumerate() {
            let run: Vec<bool> = pass.attacked[e][a].iter().flatten().copied().collect();
            robust.push(RobustResult {
                attack: plan.label.clone(),
                eps: plan.eps,
                steps: plan.attack.spec().steps,
                accuracy: fraction(&run),
                images: run.len(),
                stage: plan.stage,
            });
        }
        if !suite.is_empty() {
            worst_case.push(WorstCase {
                eps: eps[e],
                accuracy: fraction(&pass.worst(e)),
            });
        }
    }
    (robust, worst_case)
}

/// Fits `evaluator`'s classifier and measures it: clean accuracy, accuracy under every attack of
/// the suite at every radius, the per-example worst case, and the sanity checks.
pub fn evaluate(
    name: &str,
    evaluator: &dyn Evaluator,
    index: usize,
    inputs: &EvalInputs<'_>,
) -> Result<Evaluated> {
    let started = Instant::now();
    let config = inputs.config;
    // taken before the probe is fitted: fitting must not change the encoder either
    let encoder_before = Snapshot::of_encoder(inputs.encoder)?;
    let fit = FitContext {
        encoder: FrozenEncoder::new(inputs.encoder),
        train: inputs.train,
        device: inputs.device,
        seed: Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 0]).next_u64(),
    };
    let classifier = evaluator.fit(&fit)?;
    let classifier = classifier.as_ref();
    let head_before = Snapshot::of(classifier.tensors())?;
    let suites = config
        .eps
        .iter()
        .map(|&eps| attack_suite(config, eps, inputs.test.classes, inputs.ctx))
        .collect::<Result<Vec<_>>>()?;
    let pass = main_pass(classifier, &suites, name, index, inputs)?;
    let (robust, worst_case) = summarise(&suites, &pass, &config.eps);
    let checks = run_checks(&CheckContext::new(
        classifier,
        inputs,
        index,
        &suites,
        &pass,
        [&encoder_before, &head_before],
    ))?;
    let n = inputs.test.len();
    let report = EvaluationReport {
        evaluator: name.to_string(),
        clean_accuracy: fraction(&pass.clean),
        robust,
        worst_case,
        checks,
        test_images: n,
        threat_model: format!(
            "L-infinity, eps in {:?}, inputs in [0, 1] with no normalisation outside the model, white box end to end through encoder and classifier (and the score-based Square attack where the preset has it), {n} test images, preset `{}`",
            config.eps,
            config.preset
        ),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Evaluated {
        report,
        head: classifier
            .tensors()
            .into_iter()
            .map(|(n, t)| Ok((n, t.detach().copy()?)))
            .collect::<Result<Vec<_>>>()?,
    })
}

/// An evaluation's report and the classifier tensors it attacked.
pub struct Evaluated {
    /// The report.
    pub report: EvaluationReport,
    /// The classifier's own tensors ([`Classifier::tensors`]), as attacked.
    pub head: Vec<(String, Tensor)>,
}
