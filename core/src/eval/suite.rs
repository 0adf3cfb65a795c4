//! The attack suites of the presets.
//!
//! - `strong` (default): per radius, PGD-`steps` with step eps/4 from a random start with
//!   `restarts` restarts against cross-entropy, the same against the CW margin, APGD-CE
//!   (Croce and Hein 2020) and FGSM (Goodfellow et al. 2015), each switchable.
//! - `paper`: the reference protocol: PGD from a zero start, step 0.01, `paper_steps` steps,
//!   cross-entropy.
//! - `none`: no preset attack (clean accuracy, plus any extra attacks).
//!
//! `eval.extra_attacks` adds any registered attack (a plugin's too) to every preset.

use crate::components::{Attack, BuildContext};
pub use crate::config::AttackLoss;
use crate::config::{ComponentConfig, EvalConfig, ExtraAttack};
use crate::registry;
use crate::Result;

/// One attack of a suite.
pub struct PlannedAttack {
    /// A label such as `pgd-linf/ce`.
    pub label: String,
    /// The attack.
    pub attack: Box<dyn Attack>,
    /// Its loss.
    pub loss: AttackLoss,
    /// Its radius.
    pub eps: f64,
}

/// Builds the registered attack `name` with parameters `params`.
pub fn build_attack(
    name: &str,
    params: toml::Table,
    ctx: &BuildContext,
) -> Result<Box<dyn Attack>> {
    let section = format!("eval.attack.{name}");
    let config = ComponentConfig::from_table(&section, params, "the evaluation preset");
    let registration = registry::find::<dyn Attack>(name, "the evaluation preset")?;
    (registration.build)(&config, ctx)
}

fn table(entries: &[(&str, toml::Value)]) -> toml::Table {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The attacks of `config.preset` at radius `eps`.
pub fn attack_suite(
    config: &EvalConfig,
    eps: f64,
    ctx: &BuildContext,
) -> Result<Vec<PlannedAttack>> {
    use toml::Value::{Boolean, Float, Integer};
    let mut plans = Vec::new();
    match config.preset.as_str() {
        "none" => {}
        "paper" => {
            let params = table(&[
                ("eps", Float(eps)),
                ("step", Float(0.01)),
                ("steps", Integer(config.paper_steps as i64)),
                ("random_start", Boolean(false)),
            ]);
            plans.push(PlannedAttack {
                label: "pgd-linf/ce".into(),
                attack: build_attack("pgd-linf", params, ctx)?,
                loss: AttackLoss::CrossEntropy,
                eps,
            });
        }
        _ => {
            for loss in [AttackLoss::CrossEntropy, AttackLoss::Margin] {
                let params = table(&[
                    ("eps", Float(eps)),
                    ("step", Float(eps / 4.0)),
                    ("steps", Integer(config.steps as i64)),
                    ("random_start", Boolean(true)),
                    ("restarts", Integer(config.restarts as i64)),
                ]);
                plans.push(PlannedAttack {
                    label: format!("pgd-linf/{}", loss.short()),
                    attack: build_attack("pgd-linf", params, ctx)?,
                    loss,
                    eps,
                });
            }
            if config.apgd {
                let params = table(&[("eps", Float(eps)), ("steps", Integer(config.steps as i64))]);
                plans.push(PlannedAttack {
                    label: "apgd-ce/ce".into(),
                    attack: build_attack("apgd-ce", params, ctx)?,
                    loss: AttackLoss::CrossEntropy,
                    eps,
                });
            }
            if config.fgsm {
                let params = table(&[("eps", Float(eps)), ("random_start", Boolean(false))]);
                plans.push(PlannedAttack {
                    label: "fgsm/ce".into(),
                    attack: build_attack("fgsm", params, ctx)?,
                    loss: AttackLoss::CrossEntropy,
                    eps,
                });
            }
        }
    }
    for (i, extra) in config.extra_attacks.iter().enumerate() {
        plans.push(plan_extra(extra, i, eps, ctx)?);
    }
    Ok(plans)
}

/// The `index`-th of `eval.extra_attacks` at radius `eps`.
pub fn plan_extra(
    extra: &ExtraAttack,
    index: usize,
    eps: f64,
    ctx: &BuildContext,
) -> Result<PlannedAttack> {
    let origin = format!("`eval.extra_attacks[{index}]`");
    if extra.params.contains_key("eps") {
        return Err(crate::Error::Config(format!(
            "{origin}: `eps` is set by `eval.eps`, remove it from `params`"
        )));
    }
    let mut params = extra.params.clone();
    params.insert("eps".into(), toml::Value::Float(eps));
    let section = format!("eval.extra_attacks[{index}].params");
    let config = ComponentConfig::from_table(&section, params, &origin);
    let registration = registry::find::<dyn Attack>(&extra.name, &origin)?;
    Ok(PlannedAttack {
        // numbered, so that it cannot share a label with a preset attack or another extra
        label: format!(
            "{}/{} (extra {})",
            extra.name,
            extra.loss.short(),
            index + 1
        ),
        attack: (registration.build)(&config, ctx)?,
        loss: extra.loss,
        eps,
    })
}
