//! Fitting each evaluator's classifier and measuring it clean, under attack and with checks.

use super::checks::{run_checks, CheckContext, Snapshot};
use super::pass::{fraction, predict, select_rows, AttackRun, EvalInputs, MainPass};
use super::report::{EvaluationReport, RobustResult, WorstCase};
use super::suite::{attack_suite, PlannedAttack};
use crate::Result;
use candle_core::Tensor;
use rossl_api::components::{Classifier, Evaluator, FitContext, FrozenEncoder, Stage};
use rossl_api::data::image_batch;
use rossl_api::rng::{stream, Rng};
use std::time::Instant;

fn main_pass(
    classifier: &dyn Classifier,
    suites: &[Vec<PlannedAttack>],
    name: &str,
    index: usize,
    inputs: &EvalInputs<'_>,
) -> Result<MainPass> {
    let config = inputs.config;
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
    let batches: Vec<&[usize]> = indices.chunks(config.batch_size.max(1)).collect();
    let attacks_per_batch: usize = suites.iter().map(Vec::len).sum();
    let mut bar = crate::progress::bar((batches.len() * (1 + attacks_per_batch)) as u64, name);
    for (b, part) in batches.iter().enumerate() {
        let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
        let prediction_rng = Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 1, b as u64]);
        let clean: Vec<bool> = predict(classifier, &x, &prediction_rng)?
            .iter()
            .zip(&labels)
            .map(|(p, l)| p == l)
            .collect();
        pass.clean.extend(&clean);
        bar.inc(1);
        for (e, suite) in suites.iter().enumerate() {
            // white-box attacks on every point first, then survivors-stage attacks on the points
            // all earlier attacks left correct
            let mut order: Vec<usize> = (0..suite.len()).collect();
            order.sort_by_key(|&a| suite[a].stage == Stage::Survivors);
            let mut still = clean.clone();
            let mut outcomes: Vec<Vec<Option<bool>>> = vec![Vec::new(); suite.len()];
            for a in order {
                let plan = &suite[a];
                let rows: Vec<usize> = match plan.stage {
                    Stage::AllPoints => (0..labels.len()).collect(),
                    Stage::Survivors => (0..labels.len()).filter(|&r| still[r]).collect(),
                };
                let mut outcome = vec![None; labels.len()];
                if !rows.is_empty() {
                    let (xs, ys) = if rows.len() == labels.len() {
                        (x.clone(), labels.clone())
                    } else {
                        select_rows(&x, &labels, &rows)?
                    };
                    let run = AttackRun {
                        classifier,
                        eot_samples: config.eot_samples,
                        draws: Rng::derive(
                            inputs.seed,
                            &[stream::EVAL, index as u64, 2, e as u64, a as u64, b as u64],
                        ),
                        attack_rng: Rng::derive(
                            inputs.seed,
                            &[stream::ATTACK, index as u64, e as u64, a as u64, b as u64],
                        ),
                        prediction_rng: prediction_rng.clone(),
                    };
                    let (correct, excursion) = run.run(plan, &xs, &ys)?;
                    pass.violation = pass.violation.max(excursion);
                    for (&r, c) in rows.iter().zip(correct) {
                        outcome[r] = Some(c);
                        still[r] &= c;
                    }
                }
                outcomes[a] = outcome;
                bar.set_message(format!("{} eps {:.4}", plan.label, plan.eps));
                bar.inc(1);
            }
            for (a, outcome) in outcomes.into_iter().enumerate() {
                pass.attacked[e][a].extend(outcome);
            }
        }
    }
    bar.finish();
    Ok(pass)
}

fn summarise(
    suites: &[Vec<PlannedAttack>],
    pass: &MainPass,
    eps: &[f64],
) -> (Vec<RobustResult>, Vec<WorstCase>) {
    let mut robust = Vec::new();
    let mut worst_case = Vec::new();
    for (e, suite) in suites.iter().enumerate() {
        for (a, plan) in suite.iter().enumerate() {
            let run: Vec<bool> = pass.attacked[e][a].iter().flatten().copied().collect();
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

/// Fits `evaluator`'s classifier and measures it: clean accuracy, accuracy under every attack of
/// the suite at every radius, the per-example worst case, and the sanity checks.
pub fn evaluate(
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
        seed: Rng::derive(inputs.seed, &[stream::EVAL, index as u64, 0]).next_u64(),
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
    /// The classifier's own tensors ([`Classifier::tensors`]), as attacked.
    pub head: Vec<(String, Tensor)>,
}
