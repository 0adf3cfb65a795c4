//! The evaluation's settings (`[eval]`): evaluators, the attack preset and its budgets, extra
//! attacks, the sanity checks' settings.

use super::corruptions::CorruptionsConfig;
use rossl_api::components::{AttackLoss, BnBranch, Preset};
use rossl_api::norm::Norm;
use serde::{Deserialize, Serialize};

/// The evaluation (slot of kind `evaluator`; parameters in `[eval.<name>]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EvalConfig {
    /// The evaluators to run.
    pub evaluators: Vec<String>,
    /// The robust-SSL protocol's modes to run (`slf`, `alf`, `aff`): each mode is an evaluator
    /// ([`ProtocolMode::evaluator`]), run first, before the evaluators of `evaluators` that run
    /// no mode (an evaluator of a mode runs only when the protocol names it). Not written when
    /// empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protocol: Vec<ProtocolMode>,
    /// The attack preset: `strong` (default), `autoattack` (AutoAttack "standard"), `paper` (the
    /// reference protocol) or `none`.
    pub preset: Preset,
    /// The radii attacked.
    pub eps: Vec<f64>,
    /// The threat model: `linf` (default) or `l2`. Every attack of the preset, every sanity
    /// check and every report use it; `eps` is a radius in this norm.
    pub norm: Norm,
    /// Accuracy under common corruptions, measured for every evaluator (`[eval.corruptions]`;
    /// off by default, and then not written).
    #[serde(skip_serializing_if = "CorruptionsConfig::is_off")]
    pub corruptions: CorruptionsConfig,
    /// Also run every all-points attack (every attack but the preset's Square, extra attacks
    /// included) on every clean-correct image and report its standalone accuracy;
    /// survivors-stage attacks (Square) still run on the points the others left. By default each
    /// attack runs only on the points the earlier ones left correct, and reports give the robust
    /// accuracy after each attack of the sequence.
    pub per_attack: bool,
    /// The batch-norm branch evaluated of an encoder with dual batch norm: `clean` (default, as
    /// ACL evaluates) or `adversarial`. Not written at its default.
    #[serde(skip_serializing_if = "is_clean")]
    pub bn_branch: BnBranch,
    /// Evaluate at the end of `rossl run`.
    pub after_training: bool,
    /// Images per evaluation batch.
    pub batch_size: usize,
    /// Draws averaged per gradient when attacking a random classifier (expectation over
    /// transformation).
    pub eot_samples: usize,
    /// Make a failed sanity check an error exit.
    pub strict: bool,
    /// Iterations of the strong preset's PGD.
    pub steps: usize,
    /// Runs of the strong preset's PGD (per example, the best is kept).
    pub restarts: usize,
    /// Iterations of the paper preset's PGD (the reference evaluation's `--iter`).
    pub paper_steps: usize,
    /// Iterations of APGD in the strong preset (100: Croce and Hein's own count).
    pub apgd_steps: usize,
    /// Include APGD-CE and APGD-DLR in the strong preset.
    pub apgd: bool,
    /// Include FGSM (one step of size eps from the clean image, cross-entropy) in the strong
    /// preset.
    pub fgsm: bool,
    /// Include the black-box Square attack (Andriushchenko et al. 2020) in the strong preset, run
    /// on the points that every white-box attack left correctly classified: it needs logits only,
    /// so it finds what masked gradients hide.
    pub square: bool,
    /// Queries per image of the Square attack.
    pub square_queries: usize,
    /// Attacks run at every radius in addition to the preset's (any registered attack,
    /// a plugin's included): their accuracies join the report and the per-example worst case.
    pub extra_attacks: Vec<ExtraAttack>,
    /// Test images the sanity checks use (0: all).
    pub check_images: usize,
    /// The "very large" radius of the sanity check that accuracy falls to near 0 (an
    /// L-infinity radius: under L2 the check uses the L2 ball around that L-infinity ball,
    /// `large_eps` times the square root of the pixel count).
    pub large_eps: f64,
    /// The accuracy at `large_eps` above which that check fails.
    pub large_eps_max_accuracy: f64,
}

/// The three ways robust-SSL papers evaluate a pre-trained encoder.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolMode {
    /// Standard linear fine-tuning: `linear-probe`.
    Slf,
    /// Adversarial linear fine-tuning: `robust-linear-probe`.
    Alf,
    /// Adversarial full fine-tuning: `finetune` (TRADES by default).
    Aff,
}

impl ProtocolMode {
    /// The evaluator that runs this mode.
    pub fn evaluator(self) -> &'static str {
        match self {
            ProtocolMode::Slf => "linear-probe",
            ProtocolMode::Alf => "robust-linear-probe",
            ProtocolMode::Aff => "finetune",
        }
    }

    /// The mode's name in tables (`SLF`, `ALF`, `AFF`).
    pub fn label(self) -> &'static str {
        match self {
            ProtocolMode::Slf => "SLF",
            ProtocolMode::Alf => "ALF",
            ProtocolMode::Aff => "AFF",
        }
    }

    /// The mode an evaluator runs, if it runs one.
    pub fn of_evaluator(name: &str) -> Option<Self> {
        [ProtocolMode::Slf, ProtocolMode::Alf, ProtocolMode::Aff]
            .into_iter()
            .find(|m| m.evaluator() == name)
    }
}

/// Puts the evaluators of `eval.protocol`, when it is set, first in `eval.evaluators`, followed
/// by the evaluators listed there that run no mode of the protocol (`linear-probe`,
/// `robust-linear-probe` and `finetune` run only when the protocol names their mode); a mode
/// named twice is an error naming `eval.protocol`.
pub(super) fn apply_protocol(eval: &mut EvalConfig) -> crate::Result<()> {
    if eval.protocol.is_empty() {
        return Ok(());
    }
    let mut evaluators: Vec<String> = Vec::new();
    for mode in &eval.protocol {
        let name = mode.evaluator().to_string();
        if evaluators.contains(&name) {
            return Err(crate::Error::Config(format!(
                "`eval.protocol` names `{}` twice",
                mode.label().to_lowercase()
            )));
        }
        evaluators.push(name);
    }
    for other in &eval.evaluators {
        if ProtocolMode::of_evaluator(other).is_none() && !evaluators.contains(other) {
            evaluators.push(other.clone());
        }
    }
    eval.evaluators = evaluators;
    Ok(())
}

/// `eval` keys that change how an evaluation is run or reported, never its numbers: an
/// evaluation's digest reads them at their defaults, so that setting one does not make the same
/// evaluation another, and comparisons do not tell rows apart by them.
pub const NOT_PROTOCOL: &[&str] = &["strict", "after_training"];

impl EvalConfig {
    /// The default value of `eval` key `key` (one of [`NOT_PROTOCOL`], say), as a resolved
    /// configuration table holds it; `None` for a key the table does not write at its default.
    pub fn default_value(key: &str) -> Option<toml::Value> {
        match toml::Value::try_from(EvalConfig::default()) {
            Ok(toml::Value::Table(mut table)) => table.remove(key),
            _ => None,
        }
    }
}

fn is_clean(branch: &BnBranch) -> bool {
    *branch == BnBranch::Clean
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            evaluators: vec!["linear-probe".into()],
            protocol: Vec::new(),
            corruptions: CorruptionsConfig::default(),
            preset: Preset::Strong,
            eps: vec![4.0 / 255.0, 8.0 / 255.0],
            norm: Norm::Linf,
            per_attack: false,
            bn_branch: BnBranch::Clean,
            after_training: true,
            batch_size: 256,
            eot_samples: 8,
            strict: false,
            steps: 20,
            restarts: 2,
            paper_steps: 2,
            apgd_steps: 100,
            apgd: true,
            fgsm: true,
            square: true,
            square_queries: 1000,
            extra_attacks: Vec::new(),
            check_images: 256,
            large_eps: 0.5,
            large_eps_max_accuracy: 0.05,
        }
    }
}

/// An attack added to the evaluation preset: in configs,
/// `{ name = "pgd-linf", loss = "margin", params = { steps = 50, step = 0.002 } }`.
/// `eps` is set to each radius of `eval.eps` and cannot be given in `params`; under
/// `eval.norm = "l2"` it gets `norm = "l2"` (so it must be an attack with a `norm` parameter).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtraAttack {
    /// The registered attack.
    pub name: String,
    /// What it maximises: `cross-entropy` (or `ce`, the default) or `margin`.
    #[serde(default)]
    pub loss: AttackLoss,
    /// The attack's parameters other than `eps`.
    #[serde(default)]
    pub params: toml::Table,
}

impl ExtraAttack {
    /// The attack at radius `eps` in the threat model `norm` (`eval.norm`), as a suite entry;
    /// `index` is its place in `eval.extra_attacks` (its label is numbered, so that it cannot
    /// share one with a preset attack or another extra). Under L2 it gets `norm = "l2"` (an
    /// attack without a `norm` parameter is then refused when its parameters are checked); a
    /// `norm` in `params` that is not `eval.norm` is refused: its worst case would mix two
    /// threat models.
    pub fn planned(
        &self,
        index: usize,
        eps: f64,
        norm: Norm,
    ) -> crate::Result<rossl_api::components::PresetAttack> {
        if self.params.contains_key("eps") {
            return Err(crate::Error::Config(format!(
                "`eval.extra_attacks[{index}]`: `eps` is set by `eval.eps`, remove it from `params`"
            )));
        }
        let mut params = self.params.clone();
        match params.get("norm") {
            // an unknown value is left to the attack's own check, which names it
            Some(given)
                if matches!(given.as_str(), Some("linf" | "l2"))
                    && given.as_str() != Some(norm.as_str()) =>
            {
                return Err(crate::Error::Config(format!(
                    "`eval.extra_attacks[{index}]`: `norm = {given}` in `params`, but the \
                     evaluation's threat model is {} (`eval.norm = \"{norm}\"`): every attack \
                     of an evaluation attacks in its threat model; remove `norm` from `params`",
                    norm.prose()
                )));
            }
            Some(_) => {}
            None if norm != Norm::Linf => {
                params.insert("norm".into(), toml::Value::String(norm.as_str().into()));
            }
            None => {}
        }
        params.insert("eps".into(), toml::Value::Float(eps));
        Ok(rossl_api::components::PresetAttack {
            label: format!("{}/{} (extra {})", self.name, self.loss.short(), index + 1),
            attack: self.name.clone(),
            loss: self.loss,
            params,
            stage: rossl_api::components::Stage::AllPoints,
            targets: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{EvalConfig, NOT_PROTOCOL};

    #[test]
    fn every_key_left_out_of_the_protocol_has_a_default_to_read_it_at() {
        // a key without one would stay in the evaluation digest while comparisons ignore it
        for key in NOT_PROTOCOL {
            assert!(EvalConfig::default_value(key).is_some(), "{key}");
        }
        assert_eq!(EvalConfig::default_value("no such key"), None);
    }
}
