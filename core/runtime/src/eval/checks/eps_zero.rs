//! eps = 0 gives exactly the clean accuracy.

use super::{verdict, CheckContext, SanityCheck};
use crate::eval::report::CheckResult;
use crate::eval::suite::PlannedAttack;
use crate::Result;

/// Clean predictions do not depend on the batch (the checks batch differently from the main
/// pass), and every attack of the suite, built at eps 0 with one iteration, 20 queries and one
/// target class at most (an attack that moves at eps 0 moves at its first), leaves every
/// prediction as it was. Fails for batch norm left in training mode and for an attack that
/// moves at eps 0.
pub struct EpsZero;

impl SanityCheck for EpsZero {
    fn name(&self) -> &'static str {
        "eps = 0 gives exactly the clean accuracy"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let count = cx.images.len();
        let random = cx.classifier.is_random();
        let mut problems = Vec::new();
        let mut attacks = 0;
        let suite = cx.suites.first().map(Vec::as_slice).unwrap_or_default();
        let clean_here = cx.clean_in_check_batches(10)?;
        if !random {
            let differing = differing(&clean_here, cx.main_clean());
            if differing > 0 {
                problems.push(format!(
                    "clean predictions depend on the batch: {differing} of {count} differ between batches of {} and {} (batch norm in training mode?)",
                    cx.inputs.config.batch_size, cx.batch
                ));
            }
        }
        for (a, plan) in suite.iter().enumerate() {
            let zero = at_zero(plan, cx)?;
            let (correct, clean) = cx.attack(&zero, 11 + a as u64)?;
            // a random classifier is compared under the same draws; a deterministic one with the
            // main pass, batched differently
            let reference = if random { clean } else { clean_here.clone() };
            let n = differing(&correct, &reference);
            attacks += 1;
            if n > 0 {
                problems.push(format!(
                    "{} at eps 0 changed {n} of {count} per-example results",
                    plan.label
                ));
            }
        }
        let passed = problems.is_empty();
        // with one image and one per batch, no other batching exists
        let rebatched =
            cx.inputs.test.len().min(cx.inputs.config.batch_size) != count.min(cx.batch);
        let detail = if passed && rebatched {
            format!(
                "on {count} images, batched unlike the clean pass: {attacks} attack(s) at eps 0 changed no prediction, and clean predictions do not depend on the batch"
            )
        } else if passed {
            format!(
                "on {count} image(s), batched as the clean pass (no other batching exists): {attacks} attack(s) at eps 0 changed no prediction"
            )
        } else {
            problems.join("; ")
        };
        Ok(verdict(self.name(), passed, detail))
    }
}

/// `plan` at eps 0, its budget cut to one iteration, 20 queries and one target class.
fn at_zero(plan: &PlannedAttack, cx: &CheckContext<'_>) -> Result<PlannedAttack> {
    let mut changes = vec![("eps", toml::Value::Float(0.0))];
    if plan.params.contains_key("steps") {
        changes.push(("steps", toml::Value::Integer(1)));
    }
    if let Some(queries) = plan.params.get("queries").and_then(toml::Value::as_integer) {
        changes.push(("queries", toml::Value::Integer(queries.min(20))));
    }
    let mut zero = plan.with(&changes, cx.inputs.ctx)?;
    zero.targets = plan.targets.min(1);
    Ok(zero)
}

fn differing(a: &[bool], b: &[bool]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}
