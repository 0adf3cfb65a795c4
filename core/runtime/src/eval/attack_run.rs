//! One attack run on a batch: the per-example correctness of its adversarial examples and how far
//! they leave the ball.

use super::classifier_objective::{predict, ClassifierObjective};
use super::suite::PlannedAttack;
use candle_core::Tensor;
use rossl_api::components::Classifier;
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::labels_tensor;

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
