//! The masking signature: a score-based attack finding what the gradient-based ones missed.

use super::{not_applicable, verdict, CheckContext, SanityCheck};
use crate::eval::report::CheckResult;
use crate::Result;
use rossl_api::components::Stage;

/// The largest share of the points that the white-box attacks left robust that a black-box
/// attack may still break.
pub const MAX_BLACK_BOX_SHARE: f64 = 0.01;

/// A survivors-stage (black-box) attack breaks at most 1% of the points every white-box attack
/// left correctly classified. More means the gradients the white-box attacks follow are masked,
/// and their robust accuracy overstates the truth.
pub struct BlackBoxFindsNothingMore;

impl SanityCheck for BlackBoxFindsNothingMore {
    fn name(&self) -> &'static str {
        "a black-box attack finds (almost) nothing the white-box attacks missed"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let mut lines = Vec::new();
        let mut passed = true;
        for (e, suite) in cx.suites.iter().enumerate() {
            for (a, plan) in suite.iter().enumerate() {
                if plan.stage != Stage::Survivors {
                    continue;
                }
                let outcomes = &cx.pass.attacked[e][a];
                let survivors = outcomes.iter().flatten().count();
                let broken = outcomes.iter().flatten().filter(|c| !**c).count();
                let bad = broken as f64 > MAX_BLACK_BOX_SHARE * survivors as f64;
                passed &= !bad;
                lines.push(format!(
                    "{}: broke {broken} of the {survivors} points the white-box attacks left robust{}",
                    super::at(plan),
                    if bad { " (gradient masking: the white-box robust accuracy is overstated)" } else { "" }
                ));
            }
        }
        if lines.is_empty() {
            return Ok(not_applicable(
                self.name(),
                "the suite has no black-box attack (the strong preset's `square` detects gradient masking)".into(),
            ));
        }
        Ok(verdict(
            self.name(),
            passed,
            format!(
                "{} (at most {:.0}% allowed)",
                lines.join("; "),
                100.0 * MAX_BLACK_BOX_SHARE
            ),
        ))
    }
}
