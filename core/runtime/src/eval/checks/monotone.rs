//! Accuracy does not rise with eps, starting from the clean accuracy.

use super::{not_applicable, verdict, CheckContext, SanityCheck};
use crate::eval::main_pass::fraction;
use crate::eval::report::CheckResult;
use crate::Result;
use rossl_api::components::Stage;

/// For every attack run on all test images, its accuracy at each radius is at most its accuracy
/// at the next smaller one, and at the smallest at most the clean accuracy (one image of slack).
/// Fails for an attack that descends instead of ascending.
pub struct MonotoneInEps;

impl SanityCheck for MonotoneInEps {
    fn name(&self) -> &'static str {
        "accuracy does not rise with eps (from the clean accuracy at eps 0)"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let eps = &cx.inputs.config.eps;
        let n = cx.pass.clean.len();
        let slack = 1.0 / n.max(1) as f64 + 1e-12;
        let clean = fraction(&cx.pass.clean);
        let mut order: Vec<usize> = (0..eps.len()).collect();
        order.sort_by(|&a, &b| eps[a].total_cmp(&eps[b]));
        let Some(first) = cx.suites.first() else {
            return Ok(not_applicable(self.name(), "no radius is evaluated".into()));
        };
        let mut rises = Vec::new();
        let mut curves = Vec::new();
        let mut checked = 0;
        for (a, plan) in first.iter().enumerate() {
            if plan.stage != Stage::AllPoints {
                continue;
            }
            checked += 1;
            let mut previous = (0.0, clean);
            let mut curve = vec![format!("0: {clean:.4}")];
            for &e in &order {
                let outcomes: Vec<bool> =
                    cx.pass.attacked[e][a].iter().flatten().copied().collect();
                let accuracy = fraction(&outcomes);
                if accuracy > previous.1 + slack {
                    rises.push(format!(
                        "{}: {accuracy:.4} at eps {:.4} > {:.4} at eps {:.4}",
                        plan.label, eps[e], previous.1, previous.0
                    ));
                }
                curve.push(format!("{:.4}: {accuracy:.4}", eps[e]));
                previous = (eps[e], accuracy);
            }
            curves.push(format!("{} ({})", plan.label, curve.join(", ")));
        }
        if checked == 0 {
            return Ok(not_applicable(
                self.name(),
                "no attack runs on every test image".into(),
            ));
        }
        let passed = rises.is_empty();
        let detail = if passed {
            format!("{checked} attack(s) on {n} images: {}", curves.join("; "))
        } else {
            format!("{} (an attack that descends?)", rises.join("; "))
        };
        Ok(verdict(self.name(), passed, detail))
    }
}
