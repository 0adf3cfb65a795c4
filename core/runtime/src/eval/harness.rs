//! Fitting each evaluator's classifier and measuring it clean, under attack and with checks.

use super::checks::{run_checks, CheckContext, Snapshot};
use super::inputs::EvalInputs;
use super::main_pass::{fraction, main_pass, MainPass};
use super::report::{EvaluationReport, RobustResult, WorstCase};
use super::streams;
use super::suite::{attack_suite, PlannedAttack};
use crate::Result;
use candle_core::Tensor;
use rossl_api::components::{Evaluator, FitContext, FrozenEncoder};
use rossl_api::rng::{stream, Rng};
use std::time::Instant;

fn summarise(
    suites: &[Vec<PlannedAttack>],
    pass: &MainPass,
    eps: &[f64],
) -> (Vec<RobustResult>, Vec<WorstCase>) {
    let mut robust = Vec::new();
    let mut worst_case = Vec::new();
    for (e, suite) in suites.iter().enumerate() {
        for (a, plan) in suite.iter().enumerate() {
            // an image counts as correct only when it is correct clean too: an attack that
            // "fixes" a misclassified image does not raise its row
            let run: Vec<bool> = pass.attacked[e][a]
                .iter()
                .zip(&pass.clean)
                .filter_map(|(outcome, &clean)| outcome.map(|correct| clean && correct))
                .collect();
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

/// Fits `evaluator`'s classifier (evaluator number `index` of the configuration, reported as
/// `name`) and measures it: clean accuracy, accuracy under every attack of the suite at every
/// radius, the per-example worst case, and the sanity checks.
pub fn fit_and_measure(
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
        seed: Rng::derive(inputs.seed, &[stream::EVAL, index as u64, streams::FIT]).next_u64(),
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
    /// The classifier's own tensors ([`rossl_api::components::Classifier::tensors`]), as attacked.
    pub head: Vec<(String, Tensor)>,
}
