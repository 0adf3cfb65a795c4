//! The main pass over the test set: every test image clean and under every attack of every
//! radius's suite, batch by batch, as per-example outcomes (what the report and the sanity checks
//! read).

use super::attack_run::AttackRun;
use super::batch_rows::BatchRows;
use super::classifier_objective::predict;
use super::inputs::EvalInputs;
use super::streams;
use super::suite::PlannedAttack;
use crate::progress::Progress;
use crate::Result;
use candle_core::Tensor;
use rossl_api::batch::image_batch;
use rossl_api::components::{Classifier, Stage};
use rossl_api::rng::{stream, Rng};

/// Runs the main pass of `classifier` (evaluator number `index`, shown as `name`) over the test
/// images of `inputs`: clean, then each radius's suite, white-box attacks on every point first and
/// survivors-stage attacks on the points all earlier attacks left correct.
pub(super) fn main_pass(
    classifier: &dyn Classifier,
    suites: &[Vec<PlannedAttack>],
    name: &str,
    index: usize,
    inputs: &EvalInputs<'_>,
) -> Result<MainPass> {
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
    let batches: Vec<&[usize]> = indices.chunks(inputs.config.batch_size.max(1)).collect();
    let attacks_per_batch: usize = suites.iter().map(Vec::len).sum();
    let mut bar = crate::progress::bar((batches.len() * (1 + attacks_per_batch)) as u64, name);
    let attacker = Attacker {
        classifier,
        index: index as u64,
        inputs,
    };
    for (b, part) in batches.iter().enumerate() {
        let batch = attacker.batch(b as u64, part)?;
        pass.clean.extend(&batch.clean);
        bar.inc(1);
        for (e, suite) in suites.iter().enumerate() {
            let outcomes =
                attacker.suite(e as u64, suite, &batch, &mut pass.violation, &mut bar)?;
            for (a, outcome) in outcomes.into_iter().enumerate() {
                pass.attacked[e][a].extend(outcome);
            }
        }
    }
    bar.finish();
    Ok(pass)
}

/// One batch of test images with its prediction draw and clean correctness.
struct Batch {
    /// The batch's number (for random streams).
    number: u64,
    /// The images.
    x: Tensor,
    /// Their labels.
    labels: Vec<u32>,
    /// The batch's fixed prediction draw.
    prediction_rng: Rng,
    /// Clean correctness per image.
    clean: Vec<bool>,
}

/// What the main pass attacks: one evaluator's classifier on the evaluation's inputs.
struct Attacker<'a> {
    classifier: &'a dyn Classifier,
    /// The evaluator's index (for random streams).
    index: u64,
    inputs: &'a EvalInputs<'a>,
}

impl Attacker<'_> {
    /// Test images `part` as batch number `b`, with their clean correctness.
    fn batch(&self, b: u64, part: &[usize]) -> Result<Batch> {
        let inputs = self.inputs;
        let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
        let prediction_rng = Rng::derive(
            inputs.seed,
            &[stream::EVAL, self.index, streams::PREDICTION, b],
        );
        let clean: Vec<bool> = predict(self.classifier, &x, &prediction_rng)?
            .iter()
            .zip(&labels)
            .map(|(p, l)| p == l)
            .collect();
        Ok(Batch {
            number: b,
            x,
            labels,
            prediction_rng,
            clean,
        })
    }

    /// Runs radius `e`'s `suite` on `batch`: per attack of the suite (in the suite's order), per
    /// image, correct under the attack or `None` where it did not run. Raises `violation` to the
    /// largest excursion.
    fn suite(
        &self,
        e: u64,
        suite: &[PlannedAttack],
        batch: &Batch,
        violation: &mut f64,
        bar: &mut Progress,
    ) -> Result<Vec<Vec<Option<bool>>>> {
        // white-box attacks on every point first, then survivors-stage attacks on the points
        // all earlier attacks left correct
        let mut order: Vec<usize> = (0..suite.len()).collect();
        order.sort_by_key(|&a| suite[a].stage == Stage::Survivors);
        let mut still = batch.clean.clone();
        let mut outcomes: Vec<Vec<Option<bool>>> = vec![Vec::new(); suite.len()];
        for a in order {
            let plan = &suite[a];
            let rows: Vec<usize> = match plan.stage {
                Stage::AllPoints => (0..batch.labels.len()).collect(),
                Stage::Survivors => (0..batch.labels.len()).filter(|&r| still[r]).collect(),
            };
            let mut outcome = vec![None; batch.labels.len()];
            if !rows.is_empty() {
                let (correct, excursion) = self.attack_rows(plan, [e, a as u64], batch, &rows)?;
                *violation = violation.max(excursion);
                for (&r, c) in rows.iter().zip(correct) {
                    outcome[r] = Some(c);
                    still[r] &= c;
                }
            }
            outcomes[a] = outcome;
            bar.set_message(format!("{} eps {:.4}", plan.label, plan.eps));
            bar.inc(1);
        }
        Ok(outcomes)
    }

    /// Attack number `a` of radius `e`'s suite (`plan`) on the `rows` of `batch`: (correct per
    /// row, excursion).
    fn attack_rows(
        &self,
        plan: &PlannedAttack,
        [e, a]: [u64; 2],
        batch: &Batch,
        rows: &[usize],
    ) -> Result<(Vec<bool>, f64)> {
        let (xs, ys) = if rows.len() == batch.labels.len() {
            (batch.x.clone(), batch.labels.clone())
        } else {
            select_rows(&batch.x, &batch.labels, rows)?
        };
        // a random classifier judges each row under its draw in the clean pass's whole batch
        let classifier = BatchRows {
            classifier: self.classifier,
            rows: rows.to_vec(),
            batch_len: batch.labels.len(),
        };
        let (seed, index, b) = (self.inputs.seed, self.index, batch.number);
        let run = AttackRun {
            classifier: &classifier,
            eot_samples: self.inputs.config.eot_samples,
            draws: Rng::derive(seed, &[stream::EVAL, index, streams::ATTACK_DRAWS, e, a, b]),
            attack_rng: Rng::derive(seed, &[stream::ATTACK, index, e, a, b]),
            prediction_rng: batch.prediction_rng.clone(),
        };
        run.run(plan, &xs, &ys)
    }
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
fn select_rows(x: &Tensor, labels: &[u32], rows: &[usize]) -> Result<(Tensor, Vec<u32>)> {
    let index: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let index = Tensor::from_vec(index, rows.len(), x.device())?;
    Ok((
        x.index_select(&index, 0)?,
        rows.iter().map(|&r| labels[r]).collect(),
    ))
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
