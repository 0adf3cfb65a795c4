//! Fitting each evaluator's classifier and measuring it clean, under attack and with checks.

use super::checks::{run_checks, CheckContext, Snapshot};
use super::inputs::EvalInputs;
use super::main_pass::{fraction, main_pass, MainPass};
use super::report::{EvaluationReport, FitReport, RobustResult, WorstCase};
use super::streams;
use super::suite::{attack_suite, PlannedAttack};
use crate::Result;
use candle_core::Tensor;
use rossl_api::components::Stage;
use rossl_api::components::{Evaluator, FitContext, FrozenEncoder};
use rossl_api::rng::{stream, Rng};
use std::time::Instant;

/// The report's rows: per radius, per attack in the order they ran, the robust accuracy after it
/// (cumulative over the sequence), and the per-radius worst case.
fn summarise(
    suites: &[Vec<PlannedAttack>],
    pass: &MainPass,
    eps: &[f64],
    per_attack: bool,
) -> (Vec<RobustResult>, Vec<WorstCase>) {
    let n = pass.clean.len().max(1) as f64;
    let mut robust = Vec::new();
    let mut worst_case = Vec::new();
    for (e, suite) in suites.iter().enumerate() {
        for (k, &a) in pass.order[e].iter().enumerate() {
            let plan = &suite[a];
            let outcomes = &pass.attacked[e][a];
            let ran = outcomes.iter().flatten().count();
            let broken = outcomes.iter().flatten().filter(|c| !**c).count();
            // standalone: correct clean and under this attack (an attack that "fixes" an image
            // misclassified clean does not raise it)
            let standalone = (per_attack && plan.stage == Stage::AllPoints).then(|| {
                let correct = outcomes
                    .iter()
                    .zip(&pass.clean)
                    .filter(|(o, &c)| c && **o == Some(true))
                    .count();
                correct as f64 / n
            });
            robust.push(RobustResult {
                attack: plan.label.clone(),
                eps: plan.eps,
                steps: plan.attack.spec().steps,
                accuracy: fraction(&pass.after(e, k + 1)),
                images: ran,
                stage: plan.stage,
                cumulative: true,
                broken,
                standalone,
                seconds: Some(pass.seconds[e][a]),
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
        copy_encoder: inputs.copy_encoder,
    };
    // a wrong corruption source fails now, not after the attacks
    super::corruption::check_source(inputs)?;
    let classifier = evaluator.fit(&fit)?;
    let classifier = classifier.as_ref();
    let head_before = Snapshot::of(classifier.tensors())?;
    let suites = config
        .eps
        .iter()
        .map(|&eps| attack_suite(config, eps, inputs.test.classes, inputs.ctx))
        .collect::<Result<Vec<_>>>()?;
    let fitted = started.elapsed().as_secs_f64();
    let pass = main_pass(classifier, &suites, name, index, inputs)?;
    let corruptions = super::corruption::measure(classifier, index, inputs)?;
    let attacked = started.elapsed().as_secs_f64();
    let (robust, worst_case) = summarise(&suites, &pass, &config.eps, config.per_attack);
    let checks = run_checks(&CheckContext::new(
        classifier,
        inputs,
        index,
        &suites,
        &pass,
        [&encoder_before, &head_before],
    ))?;
    let n = inputs.test.len();
    let total = started.elapsed().as_secs_f64();
    tracing::info!(
        "{name}: {:.1} s fitting, {:.1} s attacking the test set, {:.1} s of sanity checks",
        fitted,
        attacked - fitted,
        total - attacked
    );
    let report = EvaluationReport {
        evaluator: name.to_string(),
        clean_accuracy: fraction(&pass.clean),
        robust,
        worst_case,
        checks,
        test_images: n,
        threat_model: threat_model(config, n),
        seconds: total,
        data: None,
        corruptions,
        fit: classifier.fit_cost().map(|cost| FitReport {
            seconds: fitted,
            epochs: cost.epochs,
            steps: cost.steps,
            forward_passes: cost.forward_passes,
            backward_passes: cost.backward_passes,
        }),
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

/// The threat model of an evaluation under `config` on `n` test images, stated.
fn threat_model(config: &crate::config::EvalConfig, n: usize) -> String {
    format!(
        "{}, eps in {:?}, inputs in [0, 1] with no normalisation outside the model, white box end to end through encoder and classifier (and the score-based Square attack where the preset has it), {n} test images, preset `{}`; each attack runs on the points the earlier ones (and smaller radii) left correct{}",
        config.norm.prose(),
        config.eps,
        config.preset,
        if config.per_attack {
            ", and each attack but Square alone on every point correct clean (`eval.per_attack`)"
        } else {
            ""
        }
    )
}

/// An evaluation's report and the classifier tensors it attacked.
pub struct Evaluated {
    /// The report.
    pub report: EvaluationReport,
    /// The classifier's own tensors ([`rossl_api::components::Classifier::tensors`]), as attacked.
    pub head: Vec<(String, Tensor)>,
}
