//! The main pass over the test set: every test image clean and under every attack of every
//! radius's suite, batch by batch, as per-example outcomes (what the report and the sanity checks
//! read).

use super::attack_run::AttackRun;
use super::batch_rows::{select_rows, BatchRows};
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
/// images of `inputs`: clean, then each radius's suite, from the smallest radius up.
///
/// Each attack runs only on the points still correct (correct clean, unbroken by every earlier
/// attack at that radius and at every smaller radius), as AutoAttack does; with
/// `eval.per_attack`, every attack that is not survivors-stage runs on every point correct clean
/// instead, so that its standalone accuracy can be reported.
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
        carried: vec![Vec::with_capacity(n); suites.len()],
        order: suites.iter().map(|s| run_order(s)).collect(),
        seconds: suites.iter().map(|s| vec![0.0; s.len()]).collect(),
        violation: 0.0,
    };
    let eps = &inputs.config.eps;
    let mut radii: Vec<usize> = (0..suites.len()).collect();
    radii.sort_by(|&a, &b| eps[a].total_cmp(&eps[b]));
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
        // broken at a smaller radius: broken at every larger one (its point is in their balls)
        let mut broken_below = vec![false; part.len()];
        // the radii's random streams follow their rank by size, not their place in `eval.eps`:
        // listed in any order, they give the same numbers
        for (rank, &e) in radii.iter().enumerate() {
            let run = attacker.suite(
                rank as u64,
                (&suites[e], &pass.order[e]),
                &batch,
                &broken_below,
                &mut bar,
            )?;
            pass.violation = pass.violation.max(run.violation);
            pass.carried[e].extend(&broken_below);
            for (a, outcome) in run.outcomes.into_iter().enumerate() {
                pass.attacked[e][a].extend(outcome);
            }
            for (total, s) in pass.seconds[e].iter_mut().zip(&run.seconds) {
                *total += s;
            }
            for (r, still) in run.still.iter().enumerate() {
                broken_below[r] |= batch.clean[r] && !still;
            }
        }
    }
    bar.finish();
    Ok(pass)
}

/// The order in which a suite's attacks run: the suite's order, survivors-stage attacks last.
fn run_order(suite: &[PlannedAttack]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..suite.len()).collect();
    order.sort_by_key(|&a| suite[a].stage == Stage::Survivors);
    order
}

/// What one radius's suite did to one batch.
struct SuiteRun {
    /// Per attack of the suite, per image: correct under the attack, or `None` where it did
    /// not run.
    outcomes: Vec<Vec<Option<bool>>>,
    /// Per image: correct clean and under every attack (and not broken at a smaller radius).
    still: Vec<bool>,
    /// Per attack of the suite: the wall-clock seconds it ran.
    seconds: Vec<f64>,
    /// The largest excursion of the suite's attacks.
    violation: f64,
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

    /// Runs the `suite` of the radius of rank `e` by size on `batch` in `order`, skipping the rows
    /// `broken_below` (broken at a smaller radius).
    fn suite(
        &self,
        e: u64,
        (suite, order): (&[PlannedAttack], &[usize]),
        batch: &Batch,
        broken_below: &[bool],
        bar: &mut Progress,
    ) -> Result<SuiteRun> {
        let per_attack = self.inputs.config.per_attack;
        let len = batch.labels.len();
        let mut still: Vec<bool> = (0..len)
            .map(|r| batch.clean[r] && !broken_below[r])
            .collect();
        let mut run = SuiteRun {
            outcomes: vec![vec![None; len]; suite.len()],
            still: Vec::new(),
            seconds: vec![0.0; suite.len()],
            violation: 0.0,
        };
        for &a in order {
            let plan = &suite[a];
            // the bar names the attack running now
            bar.set_message(format!(
                "{} eps {}",
                plan.label,
                crate::run_dir::eps_in_norm(plan.norm, plan.eps)
            ));
            let rows: Vec<usize> = if per_attack && plan.stage == Stage::AllPoints {
                (0..len).filter(|&r| batch.clean[r]).collect()
            } else {
                (0..len).filter(|&r| still[r]).collect()
            };
            if !rows.is_empty() {
                let started = std::time::Instant::now();
                let (correct, excursion) = self.attack_rows(plan, [e, a as u64], batch, &rows)?;
                run.seconds[a] = started.elapsed().as_secs_f64();
                tracing::debug!(
                    attack = %plan.label,
                    eps = plan.eps,
                    images = rows.len(),
                    seconds = run.seconds[a],
                    "attack ran"
                );
                run.violation = run.violation.max(excursion);
                for (&r, c) in rows.iter().zip(correct) {
                    run.outcomes[a][r] = Some(c);
                    still[r] &= c;
                }
            }
            bar.inc(1);
        }
        run.still = still;
        Ok(run)
    }

    /// Attack number `a` of the suite of the radius of rank `e` (`plan`) on the `rows` of `batch`:
    /// (correct per row, excursion).
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
            // each row starts where an attack on the whole batch would start it
            attack_rng: Rng::derive(seed, &[stream::ATTACK, index, e, a, b])
                .for_batch_rows(rows.to_vec(), batch.labels.len()),
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
    /// when the attack did not run on the image (misclassified clean, or broken earlier).
    pub attacked: Vec<Vec<Vec<Option<bool>>>>,
    /// Per radius, per test image: broken at a smaller radius (so broken here, unattacked).
    pub carried: Vec<Vec<bool>>,
    /// Per radius, the order in which its suite's attacks ran.
    pub order: Vec<Vec<usize>>,
    /// Per radius, per attack of its suite: the wall-clock seconds it ran, over every batch.
    pub seconds: Vec<Vec<f64>>,
    /// The largest ball or pixel-range excursion of any attack.
    pub violation: f64,
}

impl MainPass {
    /// Per-example worst case at radius index `e`: correct clean, not broken at a smaller radius
    /// and correct under every attack run.
    pub fn worst(&self, e: usize) -> Vec<bool> {
        self.after(e, self.order[e].len())
    }

    /// Per example: correct clean, not broken at a smaller radius, and correct under the first
    /// `k` attacks of radius `e`'s run order.
    pub fn after(&self, e: usize, k: usize) -> Vec<bool> {
        let mut correct: Vec<bool> = self
            .clean
            .iter()
            .zip(&self.carried[e])
            .map(|(&c, &carried)| c && !carried)
            .collect();
        for &a in &self.order[e][..k] {
            for (w, o) in correct.iter_mut().zip(&self.attacked[e][a]) {
                *w &= o.unwrap_or(true);
            }
        }
        correct
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
