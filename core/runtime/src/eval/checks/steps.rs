//! More steps do not help the classifier, and iterative attacks beat a single step.

use super::{not_applicable, verdict, CheckContext, SanityCheck};
use crate::eval::report::CheckResult;
use crate::eval::suite::PlannedAttack;
use crate::Result;
use rossl_api::components::{AttackLoss, PresetAttack, Stage};
use rossl_api::norm::Norm;

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

/// The main pass's correct count of attack `a` at radius index `e` on the check images it ran
/// on.
fn main_correct(cx: &CheckContext<'_>, e: usize, a: usize, images: &[usize]) -> usize {
    let outcomes = &cx.pass.attacked[e][a];
    images
        .iter()
        .filter(|&&i| outcomes[i] == Some(true))
        .count()
}

/// Each iterative attack, run with a quarter of its steps, is no more successful than with all
/// of them (one image of slack), on the check images it ran on in the main pass (their full-step
/// results are the main pass's) and on those misclassified clean (their full-step results are
/// shared with [`super::MonotoneInEps`]). Fails for an attack whose extra steps make it weaker.
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
        let misclassified = cx.misclassified();
        let mut lines = Vec::new();
        let mut passed = true;
        for (a, plan) in plans {
            let ran = cx.ran_on(e, a);
            let images: Vec<usize> = ran.iter().chain(&misclassified).copied().collect();
            if images.is_empty() {
                continue;
            }
            let long = main_correct(cx, e, a, &ran)
                + if misclassified.is_empty() {
                    0
                } else {
                    count(&cx.on_misclassified(e, a)?.correct)
                };
            let steps = plan.steps().unwrap_or(1);
            let fewer = (steps / 4).max(1);
            let short_plan = plan.with(
                &[("steps", toml::Value::Integer(fewer as i64))],
                cx.inputs.ctx,
            )?;
            let short = count(&cx.attack_on(&short_plan, 20 + a as u64, &images)?.correct);
            let bad = long > short + 1;
            passed &= !bad;
            lines.push(format!(
                "{} on {} images: {fewer} steps {short} correct, {steps} steps {long}{}",
                super::at(plan),
                images.len(),
                if bad {
                    " (more steps helped the classifier)"
                } else {
                    ""
                }
            ));
        }
        Ok(verdict(self.name(), passed, lines.join("; ")))
    }
}

fn count(values: &[bool]) -> usize {
    values.iter().filter(|&&v| v).count()
}

/// Each iterative attack is at least as successful as one steepest step (FGSM, or FGM under L2)
/// of size eps on the same loss (one image of slack), on the check images it ran on in the main
/// pass. Fails for an iterative attack that descends, or whose steps are too small to reach the
/// edge of the ball.
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
        let mut single_step: Vec<(AttackLoss, Vec<bool>)> = Vec::new();
        let mut lines = Vec::new();
        let mut passed = true;
        for (a, plan) in plans {
            let ran = cx.ran_on(e, a);
            if ran.is_empty() {
                lines.push(format!("{}: ran on no check image", super::at(plan)));
                continue;
            }
            let single = match single_step.iter().find(|(l, _)| *l == plan.loss) {
                Some((_, correct)) => correct.clone(),
                None => {
                    let correct = one_step(cx, plan, 40 + single_step.len() as u64)?;
                    single_step.push((plan.loss, correct.clone()));
                    correct
                }
            };
            let (iterative, one) = (
                main_correct(cx, e, a, &ran),
                ran.iter().filter(|&&i| single[i]).count(),
            );
            let bad = iterative > one + 1;
            passed &= !bad;
            lines.push(format!(
                "{} on {} images: {iterative} correct vs {} on {} {one}{}",
                super::at(plan),
                ran.len(),
                if cx.inputs.config.norm == Norm::L2 {
                    "FGM"
                } else {
                    "FGSM"
                },
                plan.loss.short(),
                if bad { " (weaker than one step)" } else { "" }
            ));
        }
        Ok(verdict(self.name(), passed, lines.join("; ")))
    }
}

/// One steepest step of size eps on `plan`'s loss over the check images: correct per image.
fn one_step(cx: &CheckContext<'_>, plan: &PlannedAttack, tag: u64) -> Result<Vec<bool>> {
    let mut params: toml::Table = [("eps".to_string(), toml::Value::Float(cx.max_eps()))]
        .into_iter()
        .collect();
    if cx.inputs.config.norm != Norm::Linf {
        params.insert(
            "norm".into(),
            toml::Value::String(cx.inputs.config.norm.as_str().into()),
        );
    }
    let fgsm = PlannedAttack::build(
        PresetAttack {
            label: format!("fgsm/{}", plan.loss.short()),
            attack: "fgsm".into(),
            loss: plan.loss,
            params,
            stage: Stage::AllPoints,
            targets: 0,
        },
        "the sanity checks",
        cx.inputs.ctx,
    )?;
    Ok(cx.attack(&fgsm, tag)?.0)
}
