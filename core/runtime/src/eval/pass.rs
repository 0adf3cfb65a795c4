//! What an attacked pass over test images is made of: the inputs of an evaluation, the attack
//! objective on a classifier, one attack run on a batch, and the per-example outcomes of the main
//! pass. Shared by the harness and the sanity checks.

use crate::eval::suite::PlannedAttack;
use candle_core::{Device, Tensor};
use rossl_api::components::{AttackLoss, BuildContext, Classifier, Encoder, ImageSet, Objective};
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::{cross_entropy, dlr_loss, labels_tensor, margin_loss, predictions};

use crate::config::EvalConfig;

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

    fn loss_and_success(&mut self, x: &Tensor) -> Result<(Tensor, Option<Vec<bool>>)> {
        if self.classifier.is_random() {
            // the gradient averages draws; success is judged under the fixed prediction draw
            let loss = self.loss(x)?;
            return Ok((loss, self.succeeded(&x.detach())?));
        }
        // a deterministic classifier: the logits of the gradient's forward pass give both
        let logits = self
            .classifier
            .logits(x, &mut self.prediction_rng.clone())?;
        let predicted = predictions(&logits.detach())?;
        Ok((self.loss_of(&logits)?, Some(self.misclassified(&predicted))))
    }
}

/// Predictions of `classifier` on `x` under the fixed draw `rng`.
pub fn predict(classifier: &dyn Classifier, x: &Tensor, rng: &Rng) -> Result<Vec<u32>> {
    let logits = classifier.logits(x, &mut rng.clone())?;
    predictions(&logits.detach())
}

/// How far `adversarial` leaves the ball of radius `eps` around `x` or the pixel range (0 when
/// it does not).
pub fn violation(x: &Tensor, adversarial: &Tensor, eps: f64) -> Result<f64> {
    let scalar =
        |t: Tensor| -> Result<f64> { Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?) };
    let outside_ball = (scalar((adversarial - x)?.abs()?.max_all()?)? - eps).max(0.0);
    let low = (-scalar(adversarial.min_all()?)?).max(0.0);
    let high = (scalar(adversarial.max_all()?)? - 1.0).max(0.0);
    Ok(outside_ball.max(low).max(high))
}

/// Per-example outcomes of the main pass over the test set.
pub struct MainPass {
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
pub fn select_rows(x: &Tensor, labels: &[u32], rows: &[usize]) -> Result<(Tensor, Vec<u32>)> {
    let index: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let index = Tensor::from_vec(index, rows.len(), x.device())?;
    Ok((
        x.index_select(&index, 0)?,
        rows.iter().map(|&r| labels[r]).collect(),
    ))
}

/// One attack on a batch: the per-example correctness of its adversarial examples and how far
/// they leave the ball.
pub struct AttackRun<'a> {
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
        let rng = &mut self.attack_rng;
        let adversarial = rossl_kernels::on_pool(|| plan.attack.perturb(x, &mut objective, rng))?;
        let excursion = violation(x, &adversarial, plan.eps)?;
        let predicted = predict(self.classifier, &adversarial, &self.prediction_rng)?;
        let correct = predicted.iter().zip(labels).map(|(p, l)| p == l).collect();
        Ok((correct, excursion))
    }
}

/// The fraction of `true` among the values present.
pub fn fraction<'a>(values: impl IntoIterator<Item = &'a bool>) -> f64 {
    let (mut yes, mut total) = (0usize, 0usize);
    for &v in values {
        yes += usize::from(v);
        total += 1;
    }
    yes as f64 / total.max(1) as f64
}
