//! Accuracy does not rise with eps: attacks never fix an image.

use super::{not_applicable, verdict, CheckContext, SanityCheck};
use crate::eval::main_pass::fraction;
use crate::eval::report::CheckResult;
use crate::Result;
use rossl_api::components::Stage;

/// The worst case after the main pass's cascade does not rise with eps, from the clean accuracy
/// at eps 0 (breaks carry from a smaller radius to every larger one, so this part holds by
/// construction and is reported), and no attack that runs on every point raises the accuracy of
/// the check images misclassified clean, which the main pass never attacks: at the largest
/// radius it may make at most one of them correct. Fails for an attack that descends instead of
/// ascending.
pub struct MonotoneInEps;

impl SanityCheck for MonotoneInEps {
    fn name(&self) -> &'static str {
        "accuracy does not rise with eps (from the clean accuracy at eps 0)"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let Some(e) = cx.max_eps_index() else {
            return Ok(not_applicable(self.name(), "no radius is evaluated".into()));
        };
        let curve = worst_case_curve(cx);
        let misclassified = cx.misclassified().len();
        let mut fixes = Vec::new();
        let mut bad = Vec::new();
        for (a, plan) in cx.suites[e].iter().enumerate() {
            if plan.stage != Stage::AllPoints || misclassified == 0 {
                continue;
            }
            let fixed = cx.on_misclassified(e, a)?.fixed();
            if fixed > 1 {
                bad.push(format!(
                    "{} made {fixed} of the {misclassified} check images misclassified clean correct",
                    super::at(plan)
                ));
            }
            fixes.push(format!("{} {fixed}", plan.label));
        }
        let passed = bad.is_empty();
        let detail = if passed {
            format!(
                "worst case {curve}; images made correct among the {misclassified} check images misclassified clean, at eps {}: {}",
                cx.eps_text(cx.max_eps()),
                if fixes.is_empty() {
                    "none attacked".to_string()
                } else {
                    fixes.join(", ")
                }
            )
        } else {
            format!("{} (an attack that descends?)", bad.join("; "))
        };
        Ok(verdict(self.name(), passed, detail))
    }
}

/// The main pass's worst case from eps 0 (the clean accuracy) up, as `eps: accuracy` pairs.
fn worst_case_curve(cx: &CheckContext<'_>) -> String {
    let eps = &cx.inputs.config.eps;
    let mut order: Vec<usize> = (0..eps.len()).collect();
    order.sort_by(|&a, &b| eps[a].total_cmp(&eps[b]));
    let mut curve = vec![format!("0: {:.4}", fraction(&cx.pass.clean))];
    for e in order {
        if !cx.suites[e].is_empty() {
            curve.push(format!(
                "{}: {:.4}",
                cx.eps_text(eps[e]),
                fraction(&cx.pass.worst(e))
            ));
        }
    }
    curve.join(", ")
}
