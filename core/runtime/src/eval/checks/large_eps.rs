//! A very large eps drives accuracy to near 0.

use super::{not_applicable, verdict, CheckContext, SanityCheck};
use crate::eval::main_pass::fraction;
use crate::eval::report::CheckResult;
use crate::Result;
use rossl_api::components::Stage;

/// Every iterative or black-box attack of the suite, built at `eval.large_eps` (its step scaled
/// with the radius), brings the accuracy on the check images to at most
/// `eval.large_eps_max_accuracy`. Fails for an attack that returns its input or cannot move.
pub struct LargeEpsBreaks;

impl SanityCheck for LargeEpsBreaks {
    fn name(&self) -> &'static str {
        "a very large eps drives accuracy to near 0"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let config = cx.inputs.config;
        let large = config.large_eps;
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
            let (correct, _) = cx.attack(&big, 60 + a as u64)?;
            let accuracy = fraction(&correct);
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
                "at eps {large} on {} images (at most {} allowed): {}",
                cx.images.len(),
                config.large_eps_max_accuracy,
                lines.join("; ")
            ),
        ))
    }
}
