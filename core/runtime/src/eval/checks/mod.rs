//! Sanity checks that catch broken evaluations (see `robustness-evaluation` notes): each is its
//! own type, runs the suite's own attacks where it needs attacks, and can fail.
//!
//! | check | fails for |
//! | --- | --- |
//! | [`EpsZero`] | batch norm in training mode, an attack that moves at eps 0 |
//! | [`MonotoneInEps`] | an attack that descends (accuracy above clean or rising with eps) |
//! | [`MoreStepsHelp`] | an attack whose extra steps make it weaker |
//! | [`IterativeBeatsSingleStep`] | an iterative attack weaker than one signed step on its loss |
//! | [`LargeEpsBreaks`] | an attack that returns its input, or cannot reach a large radius |
//! | [`GradientsUsable`] | masked gradients: zero, vanishing or non-finite input gradients |
//! | [`InsideTheBall`] | an attack leaving the eps ball or the pixel range |
//! | [`StateUnchanged`] | weights, batch-norm statistics or the probe head changed |
//! | [`BlackBoxFindsNothingMore`] | gradient masking: a score-based attack beats the white-box ones |

mod ball;
mod black_box;
mod eps_zero;
mod gradient;
mod large_eps;
mod monotone;
mod snapshot;
mod steps;

pub use ball::InsideTheBall;
pub use black_box::BlackBoxFindsNothingMore;
pub use eps_zero::EpsZero;
pub use gradient::GradientsUsable;
pub use large_eps::LargeEpsBreaks;
pub use monotone::MonotoneInEps;
pub use snapshot::{Snapshot, StateUnchanged};
pub use steps::{IterativeBeatsSingleStep, MoreStepsHelp};

use super::attack_run::AttackRun;
use super::classifier_objective::predict;
use super::inputs::EvalInputs;
use super::main_pass::MainPass;
use super::report::CheckResult;
use super::streams;
use super::suite::PlannedAttack;
use crate::Result;
use rossl_api::batch::image_batch;
use rossl_api::components::Classifier;
use rossl_api::rng::{stream, Rng};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// What every check can read: the classifier, the evaluation's inputs and suites, the main pass's
/// per-example outcomes, the state snapshots taken before fitting and before attacking.
pub struct CheckContext<'a> {
    /// The classifier evaluated.
    pub classifier: &'a dyn Classifier,
    /// The evaluation's inputs.
    pub inputs: &'a EvalInputs<'a>,
    /// The evaluator's index (for random streams).
    pub index: usize,
    /// Per radius (as `eval.eps`), its attack suite.
    pub suites: &'a [Vec<PlannedAttack>],
    /// The main pass's outcomes.
    pub(crate) pass: &'a MainPass,
    /// The encoder's state before the probe was fitted, and the classifier's after.
    pub snapshots: [&'a Snapshot; 2],
    /// The test images the checks attack: the first `eval.check_images`.
    pub images: Vec<usize>,
    /// The checks' batch size: unlike the main pass's, so that batch-dependent predictions show.
    pub batch: usize,
    /// The largest excursion of the checks' own attacks so far.
    excursion: Cell<f64>,
    /// Per (radius, attack): its outcomes on the check images misclassified clean (computed
    /// once, read by the checks that look for attacks that fix images).
    on_misclassified: RefCell<HashMap<(usize, usize), Outcomes>>,
}

/// A check attack's per-image results: correct under the attack, and correct clean under the
/// same prediction draws.
#[derive(Clone, Debug, Default)]
pub struct Outcomes {
    /// Correct under the attack.
    pub correct: Vec<bool>,
    /// Correct clean, under the same draws.
    pub clean: Vec<bool>,
}

impl Outcomes {
    /// The images the attack made correct although they were misclassified clean.
    pub fn fixed(&self) -> usize {
        self.correct
            .iter()
            .zip(&self.clean)
            .filter(|(&c, &clean)| c && !clean)
            .count()
    }
}

impl<'a> CheckContext<'a> {
    /// The context of one evaluation.
    pub(crate) fn new(
        classifier: &'a dyn Classifier,
        inputs: &'a EvalInputs<'a>,
        index: usize,
        suites: &'a [Vec<PlannedAttack>],
        pass: &'a MainPass,
        snapshots: [&'a Snapshot; 2],
    ) -> Self {
        let n = inputs.test.len();
        let count = match inputs.config.check_images {
            0 => n,
            c => c.min(n),
        };
        CheckContext {
            classifier,
            inputs,
            index,
            suites,
            pass,
            snapshots,
            images: (0..count).collect(),
            batch: check_batch(inputs.config.batch_size, count),
            excursion: Cell::new(0.0),
            on_misclassified: RefCell::new(HashMap::new()),
        }
    }

    /// One example's worth of accuracy on the check images: differences below it are noise.
    pub fn tolerance(&self) -> f64 {
        1.0 / self.images.len().max(1) as f64 + 1e-12
    }

    /// Radius `eps` of the evaluation's norm as details write it (`8/255`, or the number of an
    /// L2 radius).
    pub fn eps_text(&self, eps: f64) -> String {
        crate::run_dir::eps_in_norm(self.inputs.config.norm, eps)
    }

    /// The largest radius of the evaluation.
    pub fn max_eps(&self) -> f64 {
        self.inputs.config.eps.iter().copied().fold(0.0, f64::max)
    }

    /// The index in `eval.eps` of the largest radius.
    pub fn max_eps_index(&self) -> Option<usize> {
        let eps = &self.inputs.config.eps;
        (0..eps.len()).max_by(|&a, &b| eps[a].total_cmp(&eps[b]))
    }

    /// The main pass's per-example result of attack `a` at radius index `e` on the check images
    /// (`None` where it did not run).
    pub fn main_outcome(&self, e: usize, a: usize) -> Vec<Option<bool>> {
        self.pass.attacked[e][a][..self.images.len()].to_vec()
    }

    /// The main pass's clean correctness of the check images.
    pub fn main_clean(&self) -> &[bool] {
        &self.pass.clean[..self.images.len()]
    }

    /// The check images attack `a` of radius `e` ran on in the main pass.
    pub fn ran_on(&self, e: usize, a: usize) -> Vec<usize> {
        let outcomes = &self.pass.attacked[e][a];
        self.images
            .iter()
            .copied()
            .filter(|&i| outcomes[i].is_some())
            .collect()
    }

    /// The check images the main pass found misclassified clean (no attack of the main pass
    /// runs on them).
    pub fn misclassified(&self) -> Vec<usize> {
        self.images
            .iter()
            .copied()
            .filter(|&i| !self.pass.clean[i])
            .collect()
    }

    /// Attack `a` of radius `e` on the check images misclassified clean (run once, then read
    /// from the cache): an attack that ascends its loss leaves them misclassified.
    pub fn on_misclassified(&self, e: usize, a: usize) -> Result<Outcomes> {
        if let Some(found) = self.on_misclassified.borrow().get(&(e, a)) {
            return Ok(found.clone());
        }
        let outcomes = self.attack_on(
            &self.suites[e][a],
            90 + (e * 64 + a) as u64,
            &self.misclassified(),
        )?;
        self.on_misclassified
            .borrow_mut()
            .insert((e, a), outcomes.clone());
        Ok(outcomes)
    }

    /// The largest excursion of the main pass and of every check's attacks so far.
    pub fn excursion(&self) -> f64 {
        self.pass.violation.max(self.excursion.get())
    }

    /// Clean correctness of the check images in the checks' batches, under the draws of `tag`.
    pub fn clean_in_check_batches(&self, tag: u64) -> Result<Vec<bool>> {
        let inputs = self.inputs;
        let mut clean = Vec::new();
        for (b, part) in self.images.chunks(self.batch).enumerate() {
            let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
            let rng = Rng::derive(
                inputs.seed,
                &[
                    stream::EVAL,
                    self.index as u64,
                    streams::CHECK_PREDICTION,
                    tag,
                    b as u64,
                ],
            );
            let predicted = predict(self.classifier, &x, &rng)?;
            clean.extend(predicted.iter().zip(&labels).map(|(p, l)| p == l));
        }
        Ok(clean)
    }

    /// Runs `plan` over the check images in the checks' batches: (correct under attack, correct
    /// clean under the same prediction draws), per image. `tag` keeps each use's random streams
    /// apart.
    pub fn attack(&self, plan: &PlannedAttack, tag: u64) -> Result<(Vec<bool>, Vec<bool>)> {
        let outcomes = self.attack_on(plan, tag, &self.images)?;
        Ok((outcomes.correct, outcomes.clean))
    }

    /// Runs `plan` over the test images `images` in the checks' batches, under the streams of
    /// `tag`.
    pub fn attack_on(&self, plan: &PlannedAttack, tag: u64, images: &[usize]) -> Result<Outcomes> {
        let inputs = self.inputs;
        let index = self.index as u64;
        let mut outcomes = Outcomes::default();
        for (b, part) in images.chunks(self.batch).enumerate() {
            let b = b as u64;
            let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
            let prediction_rng = Rng::derive(
                inputs.seed,
                &[stream::EVAL, index, streams::CHECK_PREDICTION, tag, b],
            );
            let clean_predicted = predict(self.classifier, &x, &prediction_rng)?;
            outcomes
                .clean
                .extend(clean_predicted.iter().zip(&labels).map(|(p, l)| p == l));
            let run = AttackRun {
                classifier: self.classifier,
                eot_samples: inputs.config.eot_samples,
                draws: Rng::derive(
                    inputs.seed,
                    &[stream::EVAL, index, streams::CHECK_DRAWS, tag, b],
                ),
                attack_rng: Rng::derive(
                    inputs.seed,
                    &[stream::ATTACK, index, streams::CHECK_ATTACKS, tag, b],
                ),
                prediction_rng,
            };
            let (c, excursion) = run.run(plan, &x, &labels)?;
            self.excursion.set(self.excursion.get().max(excursion));
            outcomes.correct.extend(c);
        }
        Ok(outcomes)
    }
}

/// A sanity check of an evaluation.
pub trait SanityCheck {
    /// What it checks, as reports print it.
    fn name(&self) -> &'static str;

    /// Runs it.
    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult>;
}

/// A passed or failed check.
pub(crate) fn verdict(name: &str, passed: bool, detail: String) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        passed,
        skipped: false,
        detail,
        seconds: None,
    }
}

/// A check that does not apply to this evaluation (it passes, and says why it did not run).
pub(crate) fn not_applicable(name: &str, why: String) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        passed: true,
        skipped: true,
        detail: format!("not applicable: {why}"),
        seconds: None,
    }
}

/// Every check, in report order. The ball check and the state check come after every check that
/// attacks, so that they cover those attacks too.
pub fn all_checks() -> Vec<Box<dyn SanityCheck>> {
    vec![
        Box::new(EpsZero),
        Box::new(MonotoneInEps),
        Box::new(MoreStepsHelp),
        Box::new(IterativeBeatsSingleStep),
        Box::new(LargeEpsBreaks),
        Box::new(GradientsUsable),
        Box::new(BlackBoxFindsNothingMore),
        Box::new(InsideTheBall),
        Box::new(StateUnchanged),
    ]
}

/// Runs every check of [`all_checks`], each timed (a check's seconds include the attacks it
/// shares with later checks when it is the first to need them).
pub fn run_checks(cx: &CheckContext<'_>) -> Result<Vec<CheckResult>> {
    all_checks()
        .iter()
        .map(|check| {
            let started = std::time::Instant::now();
            let mut result = check.run(cx)?;
            result.seconds = Some(started.elapsed().as_secs_f64());
            Ok(result)
        })
        .collect()
}

/// A plan's label with its radius (`8/255`, or the number of an L2 radius), for details.
pub(crate) fn at(plan: &PlannedAttack) -> String {
    format!(
        "{} at eps {}",
        plan.label,
        crate::run_dir::eps_in_norm(plan.norm, plan.eps)
    )
}

/// The checks' batch size for `count` check images, when the clean pass batches by
/// `batch_size`: about half of it, below `count` where it can be, and never `batch_size` itself
/// (2 when that is 1), so that the first check batch differs from the clean pass's whenever
/// there is more than one check image. The eps-0 check compares clean predictions across the
/// two batchings.
pub(crate) fn check_batch(batch_size: usize, count: usize) -> usize {
    let half = (batch_size / 2 + 1).min(count.saturating_sub(1)).max(1);
    match (half == batch_size, batch_size) {
        (true, 1) if count > 1 => 2,
        (true, b) if b > 1 => b - 1,
        _ => half,
    }
}

#[cfg(test)]
mod tests {
    use super::check_batch;

    #[test]
    fn the_checks_batch_the_check_images_unlike_the_clean_pass() {
        // the quickstart's sizes keep their batch (the checks' streams follow it)
        assert_eq!(check_batch(250, 128), 126);
        for batch_size in 1..=9 {
            for count in 2..=20 {
                for test_images in count..count + 3 {
                    let c = check_batch(batch_size, count);
                    assert!(c >= 1);
                    assert_ne!(
                        test_images.min(batch_size),
                        count.min(c),
                        "batch size {batch_size}, {count} check images of {test_images}"
                    );
                }
            }
        }
    }
}
