//! The attack suite of an evaluation at one radius: the preset's attacks (defined as data by the
//! crate that registers them, rossl-attacks for the built-in presets) and `eval.extra_attacks`.

use crate::config::{ComponentConfig, EvalConfig};
use crate::Result;
use rossl_api::components::{
    preset_definition, Attack, AttackLoss, BuildContext, PresetAttack, PresetSettings, Stage,
};
use rossl_api::norm::Norm;
use rossl_api::registry;

/// One attack of a suite, built, with what it was built from (so that checks can build it again
/// at another radius or with fewer steps).
pub struct PlannedAttack {
    /// A label such as `pgd-linf/ce`.
    pub label: String,
    /// The registered attack's name.
    pub name: String,
    /// Its parameters, `eps` included.
    pub params: toml::Table,
    /// The attack.
    pub attack: Box<dyn Attack>,
    /// Its loss.
    pub loss: AttackLoss,
    /// Its radius.
    pub eps: f64,
    /// The points it runs on.
    pub stage: Stage,
    /// Where its parameters came from (for errors).
    pub origin: String,
    /// 0: untargeted; else the number of target classes it runs for
    /// ([`rossl_api::components::PresetAttack::targets`]).
    pub targets: usize,
    /// Its threat model (its `norm` parameter; L-infinity when it has none).
    pub norm: Norm,
}

impl PlannedAttack {
    /// Builds `planned` (parameters from `origin`).
    pub fn build(planned: PresetAttack, origin: &str, ctx: &BuildContext) -> Result<Self> {
        let eps = planned
            .params
            .get("eps")
            .and_then(toml::Value::as_float)
            .unwrap_or(0.0);
        let norm = match planned.params.get("norm").and_then(toml::Value::as_str) {
            Some("l2") => Norm::L2,
            _ => Norm::Linf,
        };
        let section = format!("eval.attack.{}", planned.attack);
        let config = ComponentConfig::from_table(&section, planned.params, origin);
        let registration = registry::find::<dyn Attack>(&planned.attack, origin)?;
        // every parameter, defaults included, so that checks can read and change them
        let params = (registration.check)(&config)?;
        let attack = (registration.build)(&config, ctx)?;
        Ok(PlannedAttack {
            label: planned.label,
            name: planned.attack,
            params,
            attack,
            loss: planned.loss,
            eps,
            stage: planned.stage,
            origin: origin.to_string(),
            targets: planned.targets,
            norm,
        })
    }

    /// The same attack with some parameters changed (`eps`, `steps`, ...).
    pub fn with(&self, changes: &[(&str, toml::Value)], ctx: &BuildContext) -> Result<Self> {
        let mut params = self.params.clone();
        for (key, value) in changes {
            params.insert(key.to_string(), value.clone());
        }
        Self::build(
            PresetAttack {
                label: self.label.clone(),
                attack: self.name.clone(),
                loss: self.loss,
                params,
                stage: self.stage,
                targets: self.targets,
            },
            &self.origin,
            ctx,
        )
    }

    /// The same attack at radius `eps`.
    pub fn at_eps(&self, eps: f64, ctx: &BuildContext) -> Result<Self> {
        self.with(&[("eps", toml::Value::Float(eps))], ctx)
    }

    /// Its iteration count, when it has a `steps` parameter.
    pub fn steps(&self) -> Option<usize> {
        self.params
            .get("steps")
            .and_then(toml::Value::as_integer)
            .map(|s| s as usize)
    }
}

/// Builds the registered attack `name` with parameters `params` (from `origin`).
pub fn build_attack(
    name: &str,
    params: toml::Table,
    origin: &str,
    ctx: &BuildContext,
) -> Result<Box<dyn Attack>> {
    registry::build_from_table::<dyn Attack>(name, params, origin, ctx)
}

/// What the presets read of the evaluation settings, for a test set of `classes` classes.
pub fn preset_settings(config: &EvalConfig, classes: usize) -> PresetSettings {
    PresetSettings {
        steps: config.steps,
        restarts: config.restarts,
        apgd_steps: config.apgd_steps,
        paper_steps: config.paper_steps,
        square_queries: config.square_queries,
        apgd: config.apgd,
        fgsm: config.fgsm,
        square: config.square,
        classes,
        norm: config.norm,
    }
}

/// The attacks of `config.preset` and `config.extra_attacks` at radius `eps`, for a test set of
/// `classes` classes.
pub fn attack_suite(
    config: &EvalConfig,
    eps: f64,
    classes: usize,
    ctx: &BuildContext,
) -> Result<Vec<PlannedAttack>> {
    let definition = preset_definition(config.preset)?;
    let origin = format!("the evaluation preset `{}`", config.preset);
    let mut plans = (definition.attacks)(eps, &preset_settings(config, classes))
        .into_iter()
        .map(|planned| PlannedAttack::build(planned, &origin, ctx))
        .collect::<Result<Vec<_>>>()?;
    for (i, extra) in config.extra_attacks.iter().enumerate() {
        plans.push(PlannedAttack::build(
            extra.planned(i, eps, config.norm)?,
            &format!("`eval.extra_attacks[{i}]`"),
            ctx,
        )?);
    }
    Ok(plans)
}
