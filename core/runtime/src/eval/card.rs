//! The result card of an evaluation (`robustbench.json`), made from its results.

use super::report::Results;
use crate::assembly::Assembly;
use crate::run_dir::{eps_label, CardEntry, RunDir, SslFields};
use crate::Result;
use rossl_api::components::Preset;
use rossl_api::norm::Norm;

/// A percentage with two decimals, as RobustBench's files hold accuracies.
fn percent(fraction: f64) -> String {
    format!("{:.2}", 100.0 * fraction)
}

/// The encoder passes per prediction of evaluator `name`: the views it averages when its
/// classifier is randomised over views (its `views` parameter), else 1.
fn forward_passes_per_prediction(asm: &Assembly, name: &str) -> usize {
    asm.config
        .components
        .iter()
        .find(|c| c.section == format!("eval.{name}"))
        .and_then(|c| c.params.get("views"))
        .and_then(toml::Value::as_integer)
        .map_or(1, |v| v.max(1) as usize)
}

/// A radius as RobustBench writes it: `8/255` under L-infinity, the number (`0.5`) under L2.
fn card_eps(eps: f64, norm: Norm) -> String {
    match norm {
        Norm::Linf => eps_label(eps),
        Norm::L2 => format!("{eps}"),
    }
}

/// The card of `results`, one entry per evaluator and radius.
pub fn card(asm: &Assembly, run_dir: &RunDir, results: &Results) -> Result<Vec<CardEntry>> {
    let run = &asm.config.run;
    let folder = run_dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let encoder = asm
        .config
        .components
        .iter()
        .find(|c| c.section == format!("encoder.{}", run.encoder.name))
        .map(|c| {
            format!(
                "{} {}",
                run.encoder.name,
                crate::config::inline_table(&c.params)
            )
        })
        .unwrap_or_else(|| run.encoder.name.clone());
    // AutoAttack "standard" alone: extra attacks would make the worst case another number
    let autoattack = run.eval.preset == Preset::Autoattack && run.eval.extra_attacks.is_empty();
    let mut entries = Vec::new();
    for evaluation in &results.evaluations {
        let summary = rossl_api::registry::find::<dyn rossl_api::components::Evaluator>(
            &evaluation.evaluator,
            "the evaluation's results",
        )
        .map(|r| r.summary.to_string())
        .unwrap_or_default();
        let data = evaluation.data.as_ref();
        let dataset = data.map_or(results.dataset.as_str(), |d| d.dataset.as_str());
        let passes = forward_passes_per_prediction(asm, &evaluation.evaluator);
        // AutoAttack "standard" is defined for deterministic classifiers: under EOT over views
        // the attacks are not its attacks (its `rand` version covers randomised defences)
        let standard = autoattack && passes == 1;
        for worst in &evaluation.worst_case {
            entries.push(CardEntry {
                name: format!("{} (rossl run {folder})", results.method),
                link: String::new(),
                authors: String::new(),
                venue: String::new(),
                reported: String::new(),
                additional_data: dataset != results.dataset,
                number_forward_passes: passes,
                dataset: dataset.to_string(),
                architecture: encoder.clone(),
                threat_model: match run.eval.norm {
                    Norm::Linf => "Linf".into(),
                    Norm::L2 => "L2".into(),
                },
                eps: card_eps(worst.eps, run.eval.norm),
                clean_acc: percent(evaluation.clean_accuracy),
                autoattack_acc: standard.then(|| percent(worst.accuracy)),
                robust_acc: percent(worst.accuracy),
                attack_preset: run.eval.preset.to_string(),
                test_images: evaluation.test_images,
                ssl: SslFields {
                    pretraining_method: results.method.clone(),
                    regime: results.train.regime.to_string(),
                    views_per_image: results.views_per_image,
                    forward_passes: results.train.forward_passes,
                    backward_passes: results.train.backward_passes,
                    train_seconds: results.train.seconds,
                    evaluator: evaluation.evaluator.clone(),
                    evaluator_summary: summary.clone(),
                    label_fraction: data.map_or(1.0, |d| d.label_fraction),
                    pretraining_dataset: if dataset == results.dataset {
                        String::new()
                    } else {
                        results.dataset.clone()
                    },
                    adaptation: data.map(|d| d.adaptation.clone()).unwrap_or_default(),
                    breaks_carried_from: evaluation
                        .worst_case
                        .iter()
                        .filter(|smaller| smaller.eps < worst.eps)
                        .map(|smaller| card_eps(smaller.eps, run.eval.norm))
                        .collect(),
                    seed: results.seed,
                    config_digest: results.config_digest.clone(),
                },
            });
        }
    }
    Ok(entries)
}
