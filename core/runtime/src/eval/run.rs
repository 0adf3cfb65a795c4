//! Evaluating a run: every configured evaluator on the trained encoder, written to `results.json`.

use super::data::evaluator_sets;
use super::harness::fit_and_measure;
use super::inputs::EvalInputs;
use super::report::{EvaluationReport, Results, TrainResults};
use crate::assembly::Assembly;
use crate::run_dir::RunDir;
use crate::train::{load_split, TrainSummary};
use crate::Result;
use rossl_api::components::{BnBranch, Evaluator, Split};

/// Evaluates `asm.encoder` with every evaluator of the configuration, writes `results.json` into
/// `run_dir` and returns the results. `train` describes the training that produced the encoder.
/// An encoder with dual batch norm is evaluated on `eval.bn_branch`, and left on its clean
/// branch after, whatever happened.
pub fn evaluate_run(asm: &Assembly, run_dir: &RunDir, train: &TrainSummary) -> Result<Results> {
    evaluate_run_into(asm, run_dir, run_dir, train)
}

/// [`evaluate_run`] of the run in `run_dir`, its `results.json`, result card and probe heads
/// written into `dest`: the run folder or one of its evaluation folders
/// ([`RunDir::evaluation_place`]).
pub fn evaluate_run_into(
    asm: &Assembly,
    run_dir: &RunDir,
    dest: &RunDir,
    train: &TrainSummary,
) -> Result<Results> {
    asm.encoder.select_branch(asm.config.run.eval.bn_branch);
    let results = evaluate_selected(asm, run_dir, dest, train);
    asm.encoder.select_branch(BnBranch::Clean);
    results
}

/// [`evaluate_run_into`] on the branch selected.
fn evaluate_selected(
    asm: &Assembly,
    run_dir: &RunDir,
    dest: &RunDir,
    train: &TrainSummary,
) -> Result<Results> {
    let run = &asm.config.run;
    let train_set = load_split(asm, Split::Train)?;
    let test_set = load_split(asm, Split::Test)?;
    let ctx = Assembly::context(&asm.config, &asm.device);
    let copy_encoder = || trainable_copy(asm);
    warn_on_small_l2_radii(&run.eval);
    let mut evaluations: Vec<EvaluationReport> = Vec::new();
    // written just before results.json, once every evaluator finished: an error on the way
    // leaves the folder's heads and results as they were, matching each other
    let mut heads = Vec::new();
    for (index, name) in run.eval.evaluators.iter().enumerate() {
        let evaluator: Box<dyn Evaluator> = asm.config.build("eval", name, &ctx)?;
        let sets = evaluator_sets(asm, name, &train_set, &test_set)?;
        let inputs = EvalInputs {
            encoder: asm.encoder.as_ref(),
            train: &sets.train,
            test: &sets.test,
            device: &asm.device.device,
            seed: run.seed,
            config: &run.eval,
            ctx: &ctx,
            copy_encoder: Some(&copy_encoder),
        };
        tracing::info!(
            evaluator = %name,
            dataset = %sets.record.dataset,
            train_images = sets.train.len(),
            test_images = sets.test.len(),
            "evaluating"
        );
        let evaluated = fit_and_measure(name, evaluator.as_ref(), index, &inputs)?;
        heads.push((name, evaluated.head));
        let mut report = evaluated.report;
        report.data = Some(sets.record);
        tracing::info!(
            "{name}: clean accuracy {:.4}{} ({:.1} s)",
            report.clean_accuracy,
            report
                .worst_case
                .iter()
                .map(|w| format!(
                    ", worst case at eps {}: {:.4}",
                    crate::run_dir::eps_in_norm(run.eval.norm, w.eps),
                    w.accuracy
                ))
                .collect::<String>(),
            report.seconds
        );
        evaluations.push(report);
    }
    let results = Results {
        method: run.method.name.clone(),
        dataset: run.data.name.clone(),
        test_subset: run.data.test_subset,
        encoder: run.encoder.name.clone(),
        views: run.views.name.clone(),
        views_per_image: asm.views.views_per_image(),
        train: TrainResults {
            seconds: train.seconds,
            loader_wait_seconds: train.loader_wait_seconds,
            epochs: train.epochs,
            epochs_budget: train.epochs_budget,
            steps: train.steps,
            forward_passes: train.forward_passes,
            backward_passes: train.backward_passes,
            regime: train.regime,
        },
        evaluations,
        device: asm.device.description.clone(),
        seed: run.seed,
        config_digest: asm.config.digest()?,
        eval_digest: asm.config.eval_digest()?,
        eval_protocol: asm.config.eval_protocol()?,
    };
    std::fs::create_dir_all(dest.path()).map_err(|e| {
        crate::Error::io(
            format!("creating evaluation folder {}", dest.path().display()),
            e,
        )
    })?;
    for (name, head) in &heads {
        dest.write_probe_head(name, head)?;
    }
    dest.write_results(&results)?;
    dest.remove_other_probe_heads(&run.eval.evaluators)?;
    dest.write_card(&super::card::card(asm, run_dir, &results)?)?;
    Ok(results)
}

/// Writes the result card of `results` (an evaluation of the run in `run_dir`, in folder
/// `dest`) when `dest` has none: a folder whose evaluation was reused keeps or regains its card
/// (an evaluation interrupted between its results and its card, a card deleted).
pub fn ensure_card(
    asm: &Assembly,
    run_dir: &RunDir,
    dest: &RunDir,
    results: &Results,
) -> Result<()> {
    if !dest.file(crate::run_dir::files::ROBUSTBENCH).is_file() {
        dest.write_card(&super::card::card(asm, run_dir, results)?)?;
    }
    Ok(())
}

/// A trainable copy of `asm`'s encoder: built from the run's configuration, its weights and
/// buffers copied in, on the batch-norm branch the evaluation uses; in f32, as the whole
/// evaluation computes.
fn trainable_copy(asm: &Assembly) -> rossl_api::Result<Box<dyn rossl_api::components::Encoder>> {
    let copy = asm.build_encoder_in(crate::config::Precision::F32)?;
    let tensors = crate::train::encoder_tensors(asm.encoder.as_ref())
        .into_iter()
        .collect();
    crate::train::restore_encoder(copy.as_ref(), &tensors)?;
    copy.select_branch(asm.config.run.eval.bn_branch);
    Ok(copy)
}

/// Warns when every radius of an L2 evaluation is of L-infinity size (the default radii are
/// 4/255 and 8/255): a likely forgotten `eval.eps`.
fn warn_on_small_l2_radii(eval: &crate::config::EvalConfig) {
    let largest = eval.eps.iter().copied().fold(0.0, f64::max);
    if eval.norm == rossl_api::norm::Norm::L2 && largest > 0.0 && largest < 0.1 {
        tracing::warn!(
            "`eval.norm = \"l2\"` with `eval.eps` = {:?}: L2 radii of that size move an image by \
             almost nothing (L2 evaluations usually use eps 0.5 on CIFAR-10); set `eval.eps`",
            eval.eps
        );
    }
}
