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
    pub fn run(self, plan: &PlannedAttack, x: &Tensor, labels: &[u32]) -> Result<(Vec<bool>, f64)> {
        let (correct, excursion, _) = self.run_keeping(plan, x, labels, false)?;
        Ok((correct, excursion))
    }

    /// [`AttackRun::run`], with the adversarial points too (the shape of `x`): for a targeted
    /// plan, each row's point from the first target class that broke it, the row of `x` where
    /// none did.
    pub fn run_with_points(
        self,
        plan: &PlannedAttack,
        x: &Tensor,
        labels: &[u32],
    ) -> Result<(Vec<bool>, f64, Tensor)> {
        let (correct, excursion, points) = self.run_keeping(plan, x, labels, true)?;
        let points = points.map_or_else(|| Ok(x.clone()), |rows| Tensor::cat(&rows, 0))?;
        Ok((correct, excursion, points))
    }

    /// [`AttackRun::run`], with the points in parts along the rows when `keep` asks for them.
    fn run_keeping(
        mut self,
        plan: &PlannedAttack,
        x: &Tensor,
        labels: &[u32],
        keep: bool,
    ) -> Result<(Vec<bool>, f64, Option<Vec<Tensor>>)> {
        if plan.targets == 0 {
            let (correct, excursion, points) = self.once(plan, self.classifier, x, labels, None)?;
            // the whole batch's points, as one part
            return Ok((correct, excursion, keep.then(|| vec![points])));
        }
        let mut points = keep.then(|| split_rows(x)).transpose()?;
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
        // the rows of the whole batch that the rows of `x` are (all of them, unmarked): each
        // target's run marks its own rows among them, so that a row's random start does not
        // depend on which other rows earlier targets broke
        let (batch_rows, batch_len) = match self.attack_rng.batch_rows() {
            Some(b) if b.rows.len() == labels.len() => (b.rows.clone(), b.batch_len),
            _ => ((0..labels.len()).collect(), labels.len()),
        };
        for rank in 2..targets + 2 {
            let rows: Vec<usize> = (0..labels.len()).filter(|&r| correct[r]).collect();
            if rows.is_empty() {
                break;
            }
            let marked = rows.iter().map(|&r| batch_rows[r]).collect();
            self.attack_rng = self.attack_rng.clone().for_batch_rows(marked, batch_len);
            let sub = BatchRows {
                classifier: self.classifier,
                rows: rows.clone(),
                batch_len: labels.len(),
            };
            let (xs, ys) = select_rows(x, labels, &rows)?;
            let aimed = class_of_rank(&rows_of(&clean_logits, &rows)?, rank)?;
            let (c, e, adversarial) = self.once(plan, &sub, &xs, &ys, Some(aimed))?;
            excursion = excursion.max(e);
            for (j, (&r, still)) in rows.iter().zip(c).enumerate() {
                if let (Some(points), false) = (points.as_mut(), still) {
                    points[r] = adversarial.narrow(0, j, 1)?;
                }
                correct[r] = still;
            }
        }
        Ok((correct, excursion, points))
    }

    /// One run of `plan` on `classifier` at `x` (labels `labels`, optional target classes):
    /// (correct per example, excursion, the adversarial points).
    fn once(
        &mut self,
        plan: &PlannedAttack,
        classifier: &dyn Classifier,
        x: &Tensor,
        labels: &[u32],
        targets: Option<Tensor>,
    ) -> Result<(Vec<bool>, f64, Tensor)> {
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
        Ok((correct, excursion, adversarial))
    }
}

/// The rows of `x`, each (1, ...).
fn split_rows(x: &Tensor) -> Result<Vec<Tensor>> {
    (0..x.dim(0)?).map(|r| Ok(x.narrow(0, r, 1)?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rossl_api::components::{Attack, AttackLoss, AttackSpec, Objective, Stage};
    use std::sync::{Arc, Mutex};

    /// Logits are the images themselves (rows of 3 values: 3 classes).
    struct Identity;

    impl Classifier for Identity {
        fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
            Ok(images.clone())
        }

        fn tensors(&self) -> Vec<(String, Tensor)> {
            Vec::new()
        }
    }

    /// Records the random start it draws for each row of every run, and on its first run moves
    /// the rows whose third value is above 0.55 to class 2 (breaks them); later runs break
    /// nothing.
    struct Recorder(Arc<Mutex<Vec<Vec<Vec<f32>>>>>);

    impl Attack for Recorder {
        fn spec(&self) -> AttackSpec {
            AttackSpec {
                eps: 0.1,
                steps: 1,
                step_size: None,
                restarts: 1,
                random_start: true,
            }
        }

        fn perturb(&self, x: &Tensor, _: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
            let start = Norm::Linf.random_delta(x, 0.1, rng)?.to_vec2::<f32>()?;
            let mut runs = self.0.lock().expect("the record");
            let first = runs.is_empty();
            runs.push(start);
            let values: Vec<f32> = x
                .to_vec2::<f32>()?
                .into_iter()
                .flat_map(|r| {
                    if first && r[2] > 0.55 {
                        vec![0.0, 0.0, 1.0]
                    } else {
                        r
                    }
                })
                .collect();
            Ok(Tensor::from_vec(values, x.shape(), x.device())?)
        }
    }

    /// The random starts of every target class's run of a targeted recorder on the batch rows
    /// `rows` of `batch` (all of them: unmarked).
    fn starts(batch: &[[f32; 3]], rows: Option<&[usize]>) -> Result<Vec<Vec<Vec<f32>>>> {
        let record = Arc::new(Mutex::new(Vec::new()));
        let plan = PlannedAttack {
            label: "recorder".into(),
            name: "recorder".into(),
            params: toml::Table::new(),
            attack: Box::new(Recorder(record.clone())),
            loss: AttackLoss::CrossEntropy,
            eps: 0.1,
            stage: Stage::AllPoints,
            origin: "a test".into(),
            targets: 2,
            norm: Norm::Linf,
        };
        let mut attack_rng = Rng::derive(3, &[1]);
        let picked: Vec<[f32; 3]> = match rows {
            Some(rows) => {
                attack_rng = attack_rng.for_batch_rows(rows.to_vec(), batch.len());
                rows.iter().map(|&r| batch[r]).collect()
            }
            None => batch.to_vec(),
        };
        let flat: Vec<f32> = picked.iter().flatten().copied().collect();
        let x = Tensor::from_vec(flat, (picked.len(), 3), &Device::Cpu)?;
        let run = AttackRun {
            classifier: &Identity,
            eot_samples: 1,
            draws: Rng::derive(3, &[2]),
            attack_rng,
            prediction_rng: Rng::new(0),
        };
        run.run(&plan, &x, &vec![0; picked.len()])?;
        let starts = record.lock().expect("the record").clone();
        Ok(starts)
    }

    #[test]
    fn every_target_class_starts_a_row_where_a_run_on_the_whole_batch_would() -> Result<()> {
        // all of class 0; the first target's run breaks row 0 (third value 0.6), so the second
        // target's run on the whole batch sees rows 1, 2, 3, as a run on those rows alone does
        let batch = [
            [0.9, 0.2, 0.6],
            [0.8, 0.3, 0.1],
            [0.7, 0.1, 0.2],
            [0.9, 0.4, 0.3],
        ];
        let whole = starts(&batch, None)?;
        let part = starts(&batch, Some(&[1, 2, 3]))?;
        assert_eq!((whole.len(), part.len()), (2, 2));
        assert_eq!(whole[0].len(), 4);
        assert_eq!(&whole[0][1..], &part[0][..], "the first target class");
        assert_eq!(whole[1], part[1], "the second target class, after a break");
        Ok(())
    }

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
