//! Every perturbation stays in the eps ball and the pixel range.

use super::{verdict, CheckContext, SanityCheck};
use crate::eval::report::CheckResult;
use crate::Result;

/// No attack of the evaluation or of the checks left the ball of its radius or [0, 1] by more
/// than 1e-6 (float rounding).
pub struct InsideTheBall;

impl SanityCheck for InsideTheBall {
    fn name(&self) -> &'static str {
        "perturbations stay in the eps ball and the pixel range [0, 1]"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let excursion = cx.excursion();
        let attacks: usize = cx.suites.iter().map(Vec::len).sum();
        Ok(verdict(
            self.name(),
            excursion <= 1e-6,
            format!(
                "largest excursion over the {attacks} evaluation attacks and the checks' attacks: {excursion:e} (at most 1e-6 allowed)"
            ),
        ))
    }
}
