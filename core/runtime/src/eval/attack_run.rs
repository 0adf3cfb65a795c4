//! One attack run on a batch: the per-example correctness of its adversarial examples and how far
//! they leave the ball. A targeted attack runs once per target class, each time on the points
//! still correct.

use super::batch_rows::{rows_of, select_rows, BatchRows};
use super::classifier_objective::{predict, ClassifierObjective};
use super::suite::PlannedAttack;
use candle_core::Tensor;
use rossl_api::components::Classifier;
use rossl_api::norm::Norm;
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::{class_of_rank, labels_tensor, predictions};

/// How far `adversarial` leaves the `norm` ball of radius `eps` around `x` or the pixel range (0
/// when it does not; infinite when it holds a NaN, which is in no ball).
pub fn violation(x: &Tensor, adversarial: &Tensor, eps: f64, norm: Norm) -> Result<f64> {
    let scalar =
        |t: Tensor| -> Result<f64> { Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?) };
    // NaN != NaN: a NaN pixel would pass every comparison below unnoticed
    if scalar(
        adversarial
            .ne(adversarial)?
            .to_dtype(candle_core::DType::F32)?
            .sum_all()?,
    )? > 0.0
    {
        return Ok(f64::INFINITY);
    }
    let largest = norm
        .distances(&(adversarial - x)?)?
        .into_iter()
        .fold(0.0, f64::max);
    let outside_ball = (largest - eps).max(0.0);
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
    ///
    /// An untargeted plan runs once on every row. A targeted one (`plan.targets > 0`) runs for
    /// the classes of rank 2, 3, ... of the clean logits (the most likely other classes of a
    /// correctly classified image), at most `classes - 1` of them, each run on the rows still
    /// correct; rows misclassified clean count as incorrect and are not attacked.
    pub fn run(
        mut self,
        plan: &PlannedAttack,
        x: &Tensor,
        labels: &[u32],
    ) -> Result<(Vec<bool>, f64)> {
        if plan.targets == 0 {
            return self.once(plan, self.classifier, x, labels, None);
        }
        let clean_logits = self
            .classifier
            .logits(&x.detach(), &mut self.prediction_rng.clone())?
            .detach();
        let classes = clean_logits.dim(1)?;
        let mut correct: Vec<bool> = predictions(&clean_logits)?
            .iter()
            .zip(labels)
            .map(|(p, l)| p == l)
            .collect();
        let mut excursion: f64 = 0.0;
        let targets = plan.targets.min(classes.saturating_sub(1));
        for rank in 2..targets + 2 {
            let rows: Vec<usize> = (0..labels.len()).filter(|&r| correct[r]).collect();
            if rows.is_empty() {
                break;
            }
            let sub = BatchRows {
                classifier: self.classifier,
                rows: rows.clone(),
                batch_len: labels.len(),
            };
            let (xs, ys) = select_rows(x, labels, &rows)?;
            let aimed = class_of_rank(&rows_of(&clean_logits, &rows)?, rank)?;
            let (c, e) = self.once(plan, &sub, &xs, &ys, Some(aimed))?;
            excursion = excursion.max(e);
            for (&r, still) in rows.iter().zip(c) {
                correct[r] = still;
            }
        }
        Ok((correct, excursion))
    }

    /// One run of `plan` on `classifier` at `x` (labels `labels`, optional target classes):
    /// (correct per example, excursion).
    fn once(
        &mut self,
        plan: &PlannedAttack,
        classifier: &dyn Classifier,
        x: &Tensor,
        labels: &[u32],
        targets: Option<Tensor>,
    ) -> Result<(Vec<bool>, f64)> {
        let mut objective = ClassifierObjective {
            classifier,
            labels: labels_tensor(labels, x.device())?,
            label_values: labels.to_vec(),
            loss: plan.loss,
            eot_samples: self.eot_samples,
            draws: self.draws.clone(),
            prediction_rng: self.prediction_rng.clone(),
            targets,
        };
        let rng = &mut self.attack_rng;
        let adversarial = rossl_kernels::on_pool(|| plan.attack.perturb(x, &mut objective, rng))?;
        // the next run continues the stream of gradient draws
        self.draws = objective.draws;
        let excursion = violation(x, &adversarial, plan.eps, plan.norm)?;
        let predicted = predict(classifier, &adversarial, &self.prediction_rng)?;
        let correct = predicted.iter().zip(labels).map(|(p, l)| p == l).collect();
        Ok((correct, excursion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_nan_pixel_is_outside_every_ball() -> Result<()> {
        let x = Tensor::new(&[[0.5f32, 0.5], [0.5, 0.5]], &Device::Cpu)?;
        let inside = Tensor::new(&[[0.51f32, 0.49], [0.5, 0.5]], &Device::Cpu)?;
        let nan = Tensor::new(&[[0.5f32, f32::NAN], [0.5, 0.5]], &Device::Cpu)?;
        for norm in [Norm::Linf, Norm::L2] {
            assert_eq!(violation(&x, &inside, 0.02, norm)?, 0.0, "{norm}");
            assert_eq!(violation(&x, &nan, 0.02, norm)?, f64::INFINITY, "{norm}");
        }
        Ok(())
    }
}
