//! More steps do not help the classifier, and iterative attacks beat a single step.

use super::{not_applicable, verdict, CheckContext, SanityCheck};
use crate::eval::main_pass::fraction;
use crate::eval::report::CheckResult;
use crate::eval::suite::PlannedAttack;
use crate::Result;
use rossl_api::components::{PresetAttack, Stage};

/// The iterative attacks (a `steps` parameter above 1) of the suite at the largest radius, with
/// their index, run on every point.
fn iterative<'a>(cx: &'a CheckContext<'_>) -> Option<(usize, Vec<(usize, &'a PlannedAttack)>)> {
    let e = cx.max_eps_index()?;
    if cx.max_eps() == 0.0 {
        return None;
    }
    let plans = cx.suites[e]
        .iter()
        .enumerate()
        .filter(|(_, p)| p.stage == Stage::AllPoints && p.steps().is_some_and(|s| s > 1))
        .collect();
    Some((e, plans))
}

/// The main pass's accuracy of attack `a` at radius index `e` on the check images.
fn main_accuracy(cx: &CheckContext<'_>, e: usize, a: usize) -> f64 {
    let outcomes: Vec<bool> = cx.main_outcome(e, a).into_iter().flatten().collect();
    fraction(&outcomes)
}

/// Each iterative attack, run with a quarter of its steps, is no more successful than with all
/// of them (one image of slack). Fails for an attack whose extra steps make it weaker.
pub struct MoreStepsHelp;

impl SanityCheck for MoreStepsHelp {
    fn name(&self) -> &'static str {
        "accuracy does not rise with more attack steps"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let Some((e, plans)) = iterative(cx).filter(|(_, p)| !p.is_empty()) else {
            return Ok(not_applicable(
                self.name(),
                "no iterative attack at a radius above 0".into(),
            ));
        };
        let mut lines = Vec::new();
        let mut passed = true;
        for (a, plan) in plans {
            let steps = plan.steps().unwrap_or(1);
            let fewer = (steps / 4).max(1);
            let short = plan.with(
                &[("steps", toml::Value::Integer(fewer as i64))],
                cx.inputs.ctx,
            )?;
            let (correct, _) = cx.attack(&short, 20 + a as u64)?;
            let (long, short) = (main_accuracy(cx, e, a), fraction(&correct));
            let bad = long > short + cx.tolerance();
            passed &= !bad;
            lines.push(format!(
                "{}: {fewer} steps {short:.4}, {steps} steps {long:.4}{}",
                super::at(plan),
                if bad {
                    " (more steps helped the classifier)"
                } else {
                    ""
                }
            ));
        }
        Ok(verdict(
            self.name(),
            passed,
            format!("on {} images: {}", cx.images.len(), lines.join("; ")),
        ))
    }
}

/// Each iterative attack is at least as successful as one signed-gradient step (FGSM) of size
/// eps on the same loss (one image of slack). Fails for an iterative attack that descends, or
/// whose steps are too small to reach the edge of the ball.
pub struct IterativeBeatsSingleStep;

impl SanityCheck for IterativeBeatsSingleStep {
    fn name(&self) -> &'static str {
        "iterative attacks beat a single step on the same loss"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let Some((e, plans)) = iterative(cx).filter(|(_, p)| !p.is_empty()) else {
            return Ok(not_applicable(
                self.name(),
                "no iterative attack at a radius above 0".into(),
            ));
        };
        let eps = cx.max_eps();
        let mut single_step: Vec<(rossl_api::components::AttackLoss, f64)> = Vec::new();
        let mut lines = Vec::new();
        let mut passed = true;
        for (a, plan) in plans {
            let single = match single_step.iter().find(|(l, _)| *l == plan.loss) {
                Some((_, accuracy)) => *accuracy,
                None => {
                    let fgsm = PlannedAttack::build(
                        PresetAttack {
                            label: format!("fgsm/{}", plan.loss.short()),
                            attack: "fgsm".into(),
                            loss: plan.loss,
                            params: [("eps".to_string(), toml::Value::Float(eps))]
                                .into_iter()
                                .collect(),
                            stage: Stage::AllPoints,
                            targets: 0,
                        },
                        "the sanity checks",
                        cx.inputs.ctx,
                    )?;
                    let (correct, _) = cx.attack(&fgsm, 40 + single_step.len() as u64)?;
                    single_step.push((plan.loss, fraction(&correct)));
                    fraction(&correct)
                }
            };
            let iterative = main_accuracy(cx, e, a);
            let bad = iterative > single + cx.tolerance();
            passed &= !bad;
            lines.push(format!(
                "{}: {iterative:.4} vs FGSM on {} {single:.4}{}",
                super::at(plan),
                plan.loss.short(),
                if bad { " (weaker than one step)" } else { "" }
            ));
        }
        Ok(verdict(
            self.name(),
            passed,
            format!("on {} images: {}", cx.images.len(), lines.join("; ")),
        ))
    }
}
