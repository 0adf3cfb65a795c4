//! The attack objective on a classifier (cross-entropy, margin or DLR, untargeted or aimed at a
//! target class, with expectation over transformation for random classifiers), and predictions
//! under a fixed draw.

use super::batch_rows::rows_of;
use candle_core::Tensor;
use rossl_api::components::{
    AttackLoss, Classifier, Objective, Window, WindowedPass, WindowedScore,
};
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::{
    cross_entropy, dlr_loss, margin_loss, predictions, targeted_cross_entropy, targeted_dlr_loss,
    targeted_margin,
};

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
    /// Target classes (B,) u32 of a targeted attack: the loss then aims at them (cross-entropy
    /// towards the target, `z_t - z_y`, targeted DLR); success is still any misclassification.
    pub targets: Option<Tensor>,
}

impl ClassifierObjective<'_> {
    fn loss_of(&self, logits: &Tensor) -> Result<Tensor> {
        self.loss_with(logits, &self.labels, self.targets.as_ref())
    }

    /// The loss of `logits` for true classes `labels` and, for a targeted attack, `targets`.
    fn loss_with(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        targets: Option<&Tensor>,
    ) -> Result<Tensor> {
        match (self.loss, targets) {
            (AttackLoss::CrossEntropy, None) => cross_entropy(logits, labels),
            (AttackLoss::Margin, None) => margin_loss(logits, labels),
            (AttackLoss::Dlr, None) => dlr_loss(logits, labels),
            (AttackLoss::CrossEntropy, Some(t)) => targeted_cross_entropy(logits, t),
            (AttackLoss::Margin, Some(t)) => targeted_margin(logits, labels, t),
            (AttackLoss::Dlr, Some(t)) => targeted_dlr_loss(logits, labels, t),
        }
    }

    /// The loss of `logits` (rows of true classes `labels`, on the host `label_values`, aimed at
    /// `targets` when targeted) and each row's misclassification, from that one forward pass.
    fn scored(
        &self,
        logits: &Tensor,
        (labels, label_values): (&Tensor, &[u32]),
        targets: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Vec<bool>>)> {
        let misclassified = predictions(logits)?
            .iter()
            .zip(label_values)
            .map(|(p, l)| p != l)
            .collect();
        Ok((
            self.loss_with(logits, labels, targets)?,
            Some(misclassified),
        ))
    }

    /// An error naming `what` unless `x` holds one image per row of `rows`, each a row of the
    /// batch.
    fn check_rows(&self, x: &Tensor, rows: &[usize], what: &str) -> Result<()> {
        if x.dim(0)? != rows.len() || rows.iter().any(|&r| r >= self.label_values.len()) {
            return Err(rossl_api::Error::Msg(format!(
                "{what}: {} images for rows {rows:?} of a batch of {}",
                x.dim(0)?,
                self.label_values.len()
            )));
        }
        Ok(())
    }

    /// [`Self::scored`] of `logits`, the rows `rows` of the batch.
    fn scored_rows(&self, logits: &Tensor, rows: &[usize]) -> Result<(Tensor, Option<Vec<bool>>)> {
        let targets = self
            .targets
            .as_ref()
            .map(|t| rows_of(t, rows))
            .transpose()?;
        let values: Vec<u32> = rows.iter().map(|&r| self.label_values[r]).collect();
        let labels = rows_of(&self.labels, rows)?;
        self.scored(logits, (&labels, &values), targets.as_ref())
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

    fn score(&mut self, x: &Tensor) -> Result<(Tensor, Option<Vec<bool>>)> {
        if self.classifier.is_random() {
            let loss = self.loss(x)?.detach();
            return Ok((loss, self.succeeded(x)?));
        }
        // a deterministic classifier: one forward pass gives both
        let logits = self
            .classifier
            .logits(&x.detach(), &mut self.prediction_rng.clone())?
            .detach();
        self.scored(
            &logits,
            (&self.labels, &self.label_values),
            self.targets.as_ref(),
        )
    }

    fn score_rows(
        &mut self,
        x: &Tensor,
        rows: &[usize],
    ) -> Result<Option<(Tensor, Option<Vec<bool>>)>> {
        // a random classifier's draws follow the whole batch: it is scored whole
        if self.classifier.is_random() {
            return Ok(None);
        }
        self.check_rows(x, rows, "score_rows")?;
        let logits = self
            .classifier
            .logits_at_rows(
                &x.detach(),
                rows,
                self.label_values.len(),
                &mut self.prediction_rng.clone(),
            )?
            .detach();
        self.scored_rows(&logits, rows).map(Some)
    }

    fn windowed(&self, base: &Tensor) -> Result<Option<Box<dyn WindowedScore + '_>>> {
        if self.classifier.is_random() || base.dim(0)? != self.label_values.len() {
            return Ok(None);
        }
        Ok(self.classifier.windowed(&base.detach())?.map(|pass| {
            Box::new(WindowedClassifierScore {
                objective: self,
                pass,
            }) as Box<dyn WindowedScore + '_>
        }))
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

/// The objective's score of images changed inside windows, from its classifier's windowed pass.
struct WindowedClassifierScore<'o, 'a> {
    objective: &'o ClassifierObjective<'a>,
    pass: Box<dyn WindowedPass + 'o>,
}

impl WindowedScore for WindowedClassifierScore<'_, '_> {
    fn score_rows(
        &mut self,
        images: &Tensor,
        rows: &[usize],
        windows: &[Window],
    ) -> Result<(Tensor, Option<Vec<bool>>)> {
        self.objective.check_rows(images, rows, "windowed score")?;
        let logits = self.pass.run(&images.detach(), rows, windows)?.detach();
        self.objective.scored_rows(&logits, rows)
    }

    fn keep(&mut self, rows: &[usize]) -> Result<()> {
        self.pass.keep(rows)
    }
}

/// Predictions of `classifier` on `x` under the fixed draw `rng`.
pub fn predict(classifier: &dyn Classifier, x: &Tensor, rng: &Rng) -> Result<Vec<u32>> {
    let logits = classifier.logits(x, &mut rng.clone())?;
    predictions(&logits.detach())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Logits are the images themselves (rows of 4 values: 4 classes); random when asked.
    struct Identity(bool);

    impl Classifier for Identity {
        fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
            Ok(images.clone())
        }

        fn is_random(&self) -> bool {
            self.0
        }

        fn tensors(&self) -> Vec<(String, Tensor)> {
            Vec::new()
        }

        fn windowed(&self, _base: &Tensor) -> Result<Option<Box<dyn WindowedPass + '_>>> {
            Ok(Some(Box::new(IdentityPass)))
        }
    }

    /// The identity's windowed pass: the images are their logits.
    struct IdentityPass;

    impl WindowedPass for IdentityPass {
        fn run(&mut self, images: &Tensor, _rows: &[usize], _windows: &[Window]) -> Result<Tensor> {
            Ok(images.clone())
        }

        fn keep(&mut self, _rows: &[usize]) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rows_are_scored_alone_as_the_whole_batch_scores_them() {
        let device = Device::Cpu;
        let values: Vec<f32> = (0..20).map(|k| ((k * 7) % 9) as f32 / 4.0).collect();
        let x = Tensor::from_vec(values, (5, 4), &device).unwrap();
        let labels = [0u32, 3, 1, 2, 2];
        let rows = [1usize, 2, 4];
        let picked = rows_of(&x, &rows).unwrap();
        for (loss, targeted) in [
            (AttackLoss::CrossEntropy, false),
            (AttackLoss::Margin, false),
            (AttackLoss::Dlr, false),
            (AttackLoss::CrossEntropy, true),
            (AttackLoss::Margin, true),
            (AttackLoss::Dlr, true),
        ] {
            let classifier = Identity(false);
            let mut objective = ClassifierObjective {
                classifier: &classifier,
                labels: Tensor::new(&labels, &device).unwrap(),
                label_values: labels.to_vec(),
                loss,
                eot_samples: 1,
                draws: Rng::new(1),
                prediction_rng: Rng::new(2),
                targets: targeted.then(|| Tensor::new(&[1u32, 0, 3, 3, 0], &device).unwrap()),
            };
            let (whole, whole_success) = objective.score(&x).unwrap();
            let (part, part_success) = objective.score_rows(&picked, &rows).unwrap().unwrap();
            let whole = whole.to_vec1::<f32>().unwrap();
            let whole_success = whole_success.unwrap();
            let expected = rows.map(|r| whole[r]).to_vec();
            let what = format!("{loss:?}, targeted {targeted}");
            assert_eq!(part.to_vec1::<f32>().unwrap(), expected, "{what}");
            let expected_success = rows.map(|r| whole_success[r]).to_vec();
            assert_eq!(part_success.unwrap(), expected_success);
            // the windowed score reads the same rows' labels and targets
            let window = Window {
                top: 0,
                left: 0,
                side: 1,
            };
            let mut windowed = objective.windowed(&x).unwrap().expect("deterministic");
            let (by_window, by_window_success) =
                windowed.score_rows(&picked, &rows, &[window; 3]).unwrap();
            assert_eq!(by_window.to_vec1::<f32>().unwrap(), expected, "{what}");
            assert_eq!(by_window_success.unwrap(), expected_success);
        }
        // a random classifier's draws follow the whole batch: it is not scored in part
        let random = Identity(true);
        let mut objective = ClassifierObjective {
            classifier: &random,
            labels: Tensor::new(&labels, &device).unwrap(),
            label_values: labels.to_vec(),
            loss: AttackLoss::Margin,
            eot_samples: 1,
            draws: Rng::new(1),
            prediction_rng: Rng::new(2),
            targets: None,
        };
        assert!(objective.score_rows(&picked, &rows).unwrap().is_none());
        assert!(objective.windowed(&x).unwrap().is_none());
    }
}
