//! A very large eps drives accuracy to near 0.

use super::{not_applicable, verdict, CheckContext, SanityCheck};
use crate::eval::report::CheckResult;
use crate::Result;
use rossl_api::components::Stage;
use rossl_api::norm::Norm;

/// Every iterative or black-box attack of the suite, built at `eval.large_eps` (its step scaled
/// with the radius; under L2, `eval.large_eps` times the square root of the pixel count, the L2
/// ball that holds that L-infinity ball), brings the accuracy on the check images to at most
/// `eval.large_eps_max_accuracy` (the images misclassified clean count as broken, unattacked).
/// Fails for an attack that returns its input or cannot move.
pub struct LargeEpsBreaks;

impl SanityCheck for LargeEpsBreaks {
    fn name(&self) -> &'static str {
        "a very large eps drives accuracy to near 0"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let config = cx.inputs.config;
        let large = large_radius(cx);
        // images misclassified clean count as broken: only the others are attacked
        let correct_clean: Vec<usize> = cx
            .images
            .iter()
            .copied()
            .filter(|&i| cx.pass.clean[i])
            .collect();
        let Some(e) = cx.max_eps_index() else {
            return Ok(not_applicable(self.name(), "no radius is evaluated".into()));
        };
        let mut lines = Vec::new();
        let mut passed = true;
        for (a, plan) in cx.suites[e].iter().enumerate() {
            let iterative = plan.steps().is_some_and(|s| s > 1);
            if !iterative && plan.stage != Stage::Survivors {
                continue;
            }
            let mut changes = vec![("eps", toml::Value::Float(large))];
            if let (Some(step), true) = (
                plan.params.get("step").and_then(toml::Value::as_float),
                plan.eps > 0.0,
            ) {
                changes.push(("step", toml::Value::Float(step * large / plan.eps)));
            }
            let big = plan.with(&changes, cx.inputs.ctx)?;
            let correct = cx.attack_on(&big, 60 + a as u64, &correct_clean)?.correct;
            let accuracy =
                correct.iter().filter(|&&c| c).count() as f64 / cx.images.len().max(1) as f64;
            let bad = accuracy > config.large_eps_max_accuracy;
            passed &= !bad;
            lines.push(format!(
                "{}: {accuracy:.4}{}",
                plan.label,
                if bad {
                    " (the attack does not break the classifier)"
                } else {
                    ""
                }
            ));
        }
        if lines.is_empty() {
            return Ok(not_applicable(
                self.name(),
                "the suite has no iterative or black-box attack".into(),
            ));
        }
        Ok(verdict(
            self.name(),
            passed,
            format!(
                "at eps {} ({}) on {} images, {} of them attacked (correct clean; at most {} allowed): {}",
                match config.norm {
                    // a radius derived from the pixel count: four decimals say it
                    Norm::L2 => format!("{large:.4}"),
                    Norm::Linf => cx.eps_text(large),
                },
                match config.norm {
                    Norm::Linf => "`eval.large_eps`".to_string(),
                    Norm::L2 => format!(
                        "L2: `eval.large_eps` {} times the square root of the {} pixels, the ball around its L-infinity ball",
                        config.large_eps,
                        pixels(cx)
                    ),
                },
                cx.images.len(),
                correct_clean.len(),
                config.large_eps_max_accuracy,
                lines.join("; ")
            ),
        ))
    }
}

/// Values per test image.
fn pixels(cx: &CheckContext<'_>) -> usize {
    let test = cx.inputs.test;
    test.channels * test.height * test.width
}

/// The check's radius in the threat model's norm.
fn large_radius(cx: &CheckContext<'_>) -> f64 {
    let large = cx.inputs.config.large_eps;
    match cx.inputs.config.norm {
        Norm::Linf => large,
        Norm::L2 => large * (pixels(cx) as f64).sqrt(),
    }
}
