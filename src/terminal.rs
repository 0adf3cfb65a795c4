//! Printing a run's training summary and evaluation results to the terminal, for people.

use rossl_api::components::Stage;
use rossl_runtime::eval::{EvaluationReport, Results};
use rossl_runtime::run_dir::RunDir;
use rossl_runtime::train::TrainSummary;

/// Prints the training summary.
pub fn print_summary(run_dir: &RunDir, s: &TrainSummary) {
    println!(
        "trained {} ({} regime): {} pass(es), {} steps, {} forward / {} backward encoder passes, {:.1} s wall clock ({:.1} s waiting for batches) on {}{}",
        if s.method.is_empty() { "run" } else { &s.method },
        s.regime,
        s.epochs,
        s.steps,
        s.forward_passes,
        s.backward_passes,
        s.seconds,
        s.loader_wait_seconds,
        s.device,
        s.final_loss.map(|l| format!(", final loss {l:.4}")).unwrap_or_default()
    );
    println!("run folder: {}", run_dir.path().display());
}

/// The number of failed sanity checks in `results`.
pub fn failed_checks(results: &Results) -> usize {
    results
        .evaluations
        .iter()
        .map(|e| e.failed_checks().count())
        .sum()
}

/// Prints every evaluation: failed checks first, then accuracies.
pub fn print_results(results: &Results) {
    for e in &results.evaluations {
        for c in e.failed_checks() {
            println!("FAILED CHECK [{}] {}: {}", e.evaluator, c.name, c.detail);
        }
    }
    for e in &results.evaluations {
        println!(
            "\n{}: clean accuracy {:.2}% on {} test images ({:.1} s)",
            e.evaluator,
            100.0 * e.clean_accuracy,
            e.test_images,
            e.seconds
        );
        print_fit(e, &results.dataset);
        print_corruptions(e);
        if !e.robust.is_empty() {
            print_attack_rows(e, &|eps| results.eps_text(eps));
        }
        let passed = e.checks.iter().filter(|c| c.passed && !c.skipped).count();
        let skipped = e.checks.iter().filter(|c| c.skipped).count();
        let seconds: Option<f64> = e.checks.iter().map(|c| c.seconds).sum();
        println!(
            "  sanity checks: {passed}/{} passed{}{}",
            e.checks.len(),
            if skipped > 0 {
                format!(", {skipped} not applicable")
            } else {
                String::new()
            },
            seconds.map(|s| format!(" ({s:.1} s)")).unwrap_or_default()
        );
        for c in &e.checks {
            let status = match (c.passed, c.skipped) {
                (_, true) => "n/a",
                (true, false) => "ok",
                (false, false) => "FAILED",
            };
            let took = c
                .seconds
                .map(|s| format!(" ({s:.1} s)"))
                .unwrap_or_default();
            println!("    [{status}] {}{took}: {}", c.name, c.detail);
        }
    }
}

/// What the classifier was fitted on, when it is not every label of the run's dataset
/// (`run_dataset`), and
/// what fitting cost, when it trained the encoder.
fn print_fit(e: &EvaluationReport, run_dataset: &str) {
    if let Some(data) = &e.data {
        if data.label_fraction < 1.0 || data.dataset != run_dataset {
            println!(
                "  fitted on {} labelled images of `{}` (label fraction {}){}",
                data.train_images,
                data.dataset,
                data.label_fraction,
                if data.adaptation.is_empty() {
                    String::new()
                } else {
                    format!("; {}", data.adaptation.join(", "))
                }
            );
        }
    }
    if let Some(fit) = &e.fit {
        println!(
            "  fine-tuning: {} epoch(s), {} steps, {} forward / {} backward encoder passes, {:.1} s",
            fit.epochs, fit.steps, fit.forward_passes, fit.backward_passes, fit.seconds
        );
    }
}

/// Accuracy under common corruptions: the mean, then each family's mean over its severities.
fn print_corruptions(e: &EvaluationReport) {
    let Some(c) = &e.corruptions else {
        return;
    };
    let mut families: Vec<(&str, Vec<f64>)> = Vec::new();
    for r in &c.results {
        match families.iter_mut().find(|(f, _)| *f == r.family) {
            Some((_, v)) => v.push(r.accuracy),
            None => families.push((&r.family, vec![r.accuracy])),
        }
    }
    println!(
        "  common corruptions: mean accuracy {:.2}% over {} family x severity pairs of {} images ({})",
        100.0 * c.mean,
        c.results.len(),
        c.images,
        c.source
    );
    let per_family: Vec<String> = families
        .iter()
        .map(|(f, v)| format!("{f} {:.1}", 100.0 * v.iter().sum::<f64>() / v.len() as f64))
        .collect();
    println!(
        "    per family (mean over severities, %): {}",
        per_family.join(", ")
    );
}

/// The attack rows of one evaluation and its worst case per radius, each radius written by
/// `eps_text` (`4/255`, or the number of an L2 radius).
fn print_attack_rows(e: &EvaluationReport, eps_text: &dyn Fn(f64) -> String) {
    let cumulative = e.robust.iter().all(|r| r.cumulative);
    let standalone = e.robust.iter().any(|r| r.standalone.is_some());
    if cumulative && standalone {
        println!(
            "  robust accuracy after each attack of the sequence, over all {} images (`after`: correct under it and every earlier one;",
            e.test_images
        );
        println!(
            "  with `eval.per_attack` each attack but Square ran on every image correct clean, so `broke / ran on` and `alone` are its own):"
        );
    } else if cumulative {
        println!(
            "  robust accuracy after each attack of the sequence, over all {} images (each attack ran on the points still correct):",
            e.test_images
        );
    }
    let timed = e.robust.iter().all(|r| r.seconds.is_some());
    // the images column is padded only when a column follows it
    let width = if timed || standalone { 14 } else { 0 };
    println!(
        "  {:<22} {:>8} {:>6} {:>9}  {:<width$}{}{}",
        "attack",
        "eps",
        "steps",
        if cumulative { "after" } else { "accuracy" },
        if cumulative {
            "broke / ran on"
        } else {
            "images"
        },
        if timed { "    time" } else { "" },
        if standalone { "   alone" } else { "" }
    );
    for r in &e.robust {
        let images = if cumulative {
            format!("{} / {}", r.broken, r.images)
        } else {
            r.images.to_string()
        };
        let alone = r
            .standalone
            .map(|a| format!("   {:.2}%", 100.0 * a))
            .unwrap_or_default();
        let time = match (timed, r.seconds) {
            (true, Some(s)) => format!("{:>8}", format!("{s:.1} s")),
            _ => String::new(),
        };
        let note = if r.stage == Stage::Survivors && !cumulative {
            " (the points every other attack left correct)"
        } else {
            ""
        };
        println!(
            "  {:<22} {:>8} {:>6} {:>8.2}%  {images:<width$}{time}{alone}{note}",
            r.attack,
            eps_text(r.eps),
            r.steps,
            100.0 * r.accuracy,
        );
    }
    for w in &e.worst_case {
        println!(
            "  {:<22} {:>8} {:>6} {:>8.2}%  {}",
            "worst case",
            eps_text(w.eps),
            "",
            100.0 * w.accuracy,
            e.test_images
        );
    }
}
