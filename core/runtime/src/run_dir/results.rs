//! `results.json`: the shapes of a run's evaluation results, their reader and their writer.

use super::{files, RunDir};
use crate::Result;
use rossl_api::norm::Norm;
use serde::{Deserialize, Serialize};

/// Accuracy under one attack.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RobustResult {
    /// The attack and its loss, e.g. `pgd-linf/ce`.
    pub attack: String,
    /// Its radius.
    pub eps: f64,
    /// Its iterations.
    pub steps: usize,
    /// With `cumulative` (every evaluation since the survivor cascade): the robust accuracy, in
    /// [0, 1], over all test images, after this attack and every attack before it in the
    /// sequence at this radius (as AutoAttack prints it); the last row of a radius is its worst
    /// case. Without (older runs): the attack's own accuracy over the images it ran on.
    pub accuracy: f64,
    /// The images it ran on: the points still correct when its turn came (or, with
    /// `eval.per_attack`, every point correct clean for an all-points attack).
    #[serde(default)]
    pub images: usize,
    /// Which points it ran on.
    #[serde(default)]
    pub stage: rossl_api::components::Stage,
    /// Whether `accuracy` is cumulative over the sequence (false in files written before it
    /// was).
    #[serde(default)]
    pub cumulative: bool,
    /// The images it broke (of `images`).
    #[serde(default)]
    pub broken: usize,
    /// Its standalone robust accuracy over all test images (correct clean and under this attack
    /// alone), when `eval.per_attack` asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone: Option<f64>,
    /// Wall-clock seconds it ran, over every batch (absent in files written before it was
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// The per-example worst case over every attack at one radius: the robust accuracy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorstCase {
    /// The radius.
    pub eps: f64,
    /// Fraction of test images classified correctly clean and under every attack.
    pub accuracy: f64,
}

/// One sanity check.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// Whether it held (a check that did not apply passes, with `skipped` set).
    pub passed: bool,
    /// Whether it did not apply to this evaluation (its detail says why).
    #[serde(default)]
    pub skipped: bool,
    /// The numbers behind it.
    pub detail: String,
    /// Wall-clock seconds it took (absent in files written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// One evaluator's results.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvaluationReport {
    /// The evaluator's name.
    pub evaluator: String,
    /// Clean test accuracy, in [0, 1].
    pub clean_accuracy: f64,
    /// Accuracy under each attack.
    pub robust: Vec<RobustResult>,
    /// Per-example worst case per radius.
    pub worst_case: Vec<WorstCase>,
    /// Sanity checks.
    pub checks: Vec<CheckResult>,
    /// Test images evaluated.
    pub test_images: usize,
    /// The threat model, stated.
    pub threat_model: String,
    /// Seconds spent (fitting and attacking).
    pub seconds: f64,
    /// What the classifier was fitted and tested on (absent in files written before it was
    /// recorded: the run's dataset, every training label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<EvaluationData>,
    /// What fitting cost, for evaluators that train the encoder (a fine-tuned copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<FitReport>,
    /// Accuracy under common corruptions (`eval.corruptions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corruptions: Option<CorruptionReport>,
}

/// Accuracy under common corruptions, per family and severity, and their mean (RobustBench's
/// corruption accuracy: the plain mean over every family and severity measured).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CorruptionReport {
    /// Where the corrupted images came from.
    pub source: String,
    /// Images per family and severity.
    pub images: usize,
    /// Accuracy per family and severity, in [0, 1].
    pub results: Vec<CorruptionAccuracy>,
    /// The mean of `results`' accuracies.
    pub mean: f64,
}

/// The accuracy under one corruption family at one severity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CorruptionAccuracy {
    /// The family's file stem (`gaussian_noise`, ...).
    pub family: String,
    /// The severity, 1 to 5.
    pub severity: u8,
    /// Clean accuracy of the classifier on the corrupted images.
    pub accuracy: f64,
}

/// What an evaluator's classifier was fitted and tested on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvaluationData {
    /// The dataset: the run's, or the transfer dataset of `eval.<evaluator>.dataset`.
    pub dataset: String,
    /// How a transfer dataset's images were adapted to the encoder's input, in words (empty:
    /// not at all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adaptation: Vec<String>,
    /// The share of the training labels fitted on (`eval.<evaluator>.label_fraction`).
    pub label_fraction: f64,
    /// The labelled training images fitted on.
    pub train_images: usize,
}

/// What fitting a classifier that trains the encoder cost, as training's cost is reported.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FitReport {
    /// Wall-clock seconds of the fit.
    pub seconds: f64,
    /// Passes over the training images.
    pub epochs: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Encoder forward passes (attack iterations included).
    pub forward_passes: u64,
    /// Encoder backward passes.
    pub backward_passes: u64,
}

impl EvaluationReport {
    /// The checks that failed.
    pub fn failed_checks(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The worst-case accuracy at `eps`, if it was measured.
    pub fn worst_at(&self, eps: f64) -> Option<f64> {
        self.worst_case
            .iter()
            .find(|w| (w.eps - eps).abs() < 1e-9)
            .map(|w| w.accuracy)
    }
}

/// What training cost.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct TrainResults {
    /// Wall-clock seconds of training, from the first batch request to the last step.
    pub seconds: f64,
    /// The part of `seconds` spent waiting for batches.
    #[serde(default)]
    pub loader_wait_seconds: f64,
    /// Passes over the data.
    pub epochs: usize,
    /// The budget in standard epochs.
    pub epochs_budget: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Encoder forward passes.
    pub forward_passes: u64,
    /// Encoder backward passes.
    pub backward_passes: u64,
    /// The regime.
    pub regime: crate::config::Regime,
}

/// A run's `results.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// The method's name.
    pub method: String,
    /// The dataset's name.
    pub dataset: String,
    /// The class-balanced subset of the test split the evaluation used (0: the whole split;
    /// each evaluation's `test_images` says how many images that was).
    #[serde(default)]
    pub test_subset: usize,
    /// The encoder's name.
    pub encoder: String,
    /// The view strategy's name.
    pub views: String,
    /// Views per image in training.
    pub views_per_image: usize,
    /// Training cost.
    pub train: TrainResults,
    /// One entry per evaluator.
    pub evaluations: Vec<EvaluationReport>,
    /// The device.
    pub device: String,
    /// The seed.
    pub seed: u64,
    /// The digest of the resolved training configuration.
    pub config_digest: String,
    /// The digest of the evaluation settings.
    pub eval_digest: String,
    /// The evaluation protocol (`key = value`), which rows of a comparison must share.
    #[serde(default)]
    pub eval_protocol: std::collections::BTreeMap<String, String>,
}

impl Results {
    /// Whether the evaluation measured L2 radii (`eval.norm = "l2"` in its protocol), not
    /// L-infinity.
    pub fn is_l2(&self) -> bool {
        self.eval_protocol
            .get("eval.norm")
            .is_some_and(|v| v.trim_matches('"') == "l2")
    }

    /// Radius `eps` as reports write it in the evaluation's norm: [`eps_label`] (`8/255`) for
    /// L-infinity, the number (`0.5`) for L2.
    pub fn eps_text(&self, eps: f64) -> String {
        let norm = if self.is_l2() { Norm::L2 } else { Norm::Linf };
        eps_in_norm(norm, eps)
    }
}

/// Radius `eps` of the `norm` ball as reports write it: [`eps_label`] (`8/255`) for
/// L-infinity, the number (`0.5`) for L2.
pub fn eps_in_norm(norm: Norm, eps: f64) -> String {
    match norm {
        Norm::Linf => eps_label(eps),
        Norm::L2 => format!("{eps}"),
    }
}

impl RunDir {
    /// The evaluation results, if the run was evaluated (`None` when there is no
    /// `results.json`); an error naming the file and the field when it does not parse.
    pub fn read_results(&self) -> Result<Option<Results>> {
        self.read_json(files::RESULTS)
    }

    /// Writes the evaluation results (atomically).
    pub fn write_results(&self, results: &Results) -> Result<()> {
        self.write_json(files::RESULTS, results)
    }
}

/// `k/255` when `eps` is (nearly) a multiple of 1/255, as papers and RobustBench write radii,
/// else the number in full (the shortest text that reads back as it); `0` for 0.
pub fn eps_label(eps: f64) -> String {
    let k = eps * 255.0;
    if eps == 0.0 {
        "0".into()
    } else if (k - k.round()).abs() < 1e-6 {
        format!("{}/255", k.round() as i64)
    } else {
        format!("{eps}")
    }
}

#[cfg(test)]
mod tests {
    use super::eps_label;

    #[test]
    fn radii_are_labelled_in_255ths_or_in_full() {
        assert_eq!(eps_label(8.0 / 255.0), "8/255");
        assert_eq!(eps_label(0.0), "0");
        assert_eq!(eps_label(0.1), "0.1");
        // two radii that four decimals would both write 0.0031
        assert_eq!(eps_label(0.00314), "0.00314");
        assert_eq!(eps_label(0.0031), "0.0031");
    }
}
