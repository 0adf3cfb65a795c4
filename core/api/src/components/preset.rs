//! Evaluation presets: named lists of attacks, registered as data by the crate that owns the
//! attacks (rossl-attacks), so that adding an attack to a preset edits no runtime file.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What an evaluation attack maximises, per example.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum AttackLoss {
    /// Cross-entropy of the true class.
    #[default]
    #[serde(alias = "ce")]
    CrossEntropy,
    /// The CW margin: largest other logit minus the true one.
    Margin,
    /// The difference of logits ratio of Croce and Hein (2020):
    /// `-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`, invariant to the logits' scale and shift
    /// (needs at least three classes).
    Dlr,
}

impl AttackLoss {
    /// Short name for labels.
    pub fn short(self) -> &'static str {
        match self {
            AttackLoss::CrossEntropy => "ce",
            AttackLoss::Margin => "margin",
            AttackLoss::Dlr => "dlr",
        }
    }
}

/// The attack presets of `eval.preset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// A strong suite: PGD on cross-entropy and the margin, APGD-CE and APGD-DLR, FGSM, and the
    /// black-box Square attack on the points the white-box attacks left robust.
    #[default]
    Strong,
    /// The reference code's protocol (PGD from a zero start, step 0.01, cross-entropy).
    Paper,
    /// AutoAttack "standard" (Croce and Hein 2020): APGD-CE, APGD-T (9 target classes), FAB-T
    /// (9 target classes) and Square (5000 queries), each on the points the earlier ones left
    /// correct: the number RobustBench and the robust-SSL literature report.
    Autoattack,
    /// No preset attack: clean accuracy and the extra attacks only.
    None,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 4] = [
        Preset::Strong,
        Preset::Autoattack,
        Preset::Paper,
        Preset::None,
    ];

    /// Its name in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Strong => "strong",
            Preset::Paper => "paper",
            Preset::Autoattack => "autoattack",
            Preset::None => "none",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The evaluation settings a preset reads (from `[eval]`).
#[derive(Clone, Debug, PartialEq)]
pub struct PresetSettings {
    /// Iterations of the strong preset's PGD (`eval.steps`).
    pub steps: usize,
    /// Runs of the strong preset's PGD (`eval.restarts`).
    pub restarts: usize,
    /// Iterations of APGD (`eval.apgd_steps`).
    pub apgd_steps: usize,
    /// Iterations of the paper preset's PGD (`eval.paper_steps`).
    pub paper_steps: usize,
    /// Queries of the Square attack per image (`eval.square_queries`).
    pub square_queries: usize,
    /// Include APGD-CE and APGD-DLR (`eval.apgd`).
    pub apgd: bool,
    /// Include FGSM (`eval.fgsm`).
    pub fgsm: bool,
    /// Include the Square attack (`eval.square`).
    pub square: bool,
    /// Classes of the test labels (APGD-DLR needs at least three).
    pub classes: usize,
    /// The threat model (`eval.norm`): every attack of the preset is built for it.
    pub norm: crate::norm::Norm,
}

/// Which points an attack of a suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Every test image.
    #[default]
    AllPoints,
    /// Only the points that every earlier attack at the same radius left correctly classified
    /// (how a black-box attack joins a suite: it looks for what the white-box attacks missed).
    Survivors,
}

/// One attack of a preset at one radius: a registered attack with its parameters (`eps`
/// included), the loss it maximises and the row label of reports.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetAttack {
    /// Row label, e.g. `pgd-linf/ce` or `apgd-dlr`.
    pub label: String,
    /// The registered attack.
    pub attack: String,
    /// What it maximises.
    pub loss: AttackLoss,
    /// Its parameters, `eps` included.
    pub params: toml::Table,
    /// The points it runs on.
    pub stage: Stage,
    /// 0: untargeted. `k > 0`: a targeted attack, run once for each of the `k` classes other than
    /// the true one with the largest clean logits (in that order, each run on the points still
    /// correct), its loss aimed at that class (as AutoAttack's APGD-T and FAB-T).
    pub targets: usize,
}

/// The attacks of one preset at radius `eps`.
pub type PresetFn = fn(eps: f64, settings: &PresetSettings) -> Vec<PresetAttack>;

/// A preset's definition, registered with [`register_preset!`](crate::register_preset).
pub struct PresetRegistration {
    /// The preset it defines.
    pub preset: Preset,
    /// Its attacks at a radius.
    pub attacks: PresetFn,
    /// Where it was registered.
    pub location: crate::location::Location,
}

inventory::collect!(PresetRegistration);

/// The registered definition of `preset`; an error when no linked crate defines it, or when two
/// do.
pub fn preset_definition(preset: Preset) -> crate::Result<&'static PresetRegistration> {
    let mut found = inventory::iter::<PresetRegistration>().filter(|r| r.preset == preset);
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (Some(a), Some(b)) => Err(crate::Error::DuplicateComponent(format!(
            "preset `{preset}` is defined twice: at {} and at {}",
            a.location, b.location
        ))),
        (None, _) => Err(crate::Error::Config(format!(
            "no linked crate defines the evaluation preset `{preset}` (rossl-attacks defines the built-in presets)"
        ))),
    }
}

/// Registers the attacks of a preset:
///
/// ```ignore
/// rossl_api::register_preset! { preset: Strong, attacks: strong_attacks }
/// ```
#[macro_export]
macro_rules! register_preset {
    (preset: $preset:ident, attacks: $attacks:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::components::PresetRegistration {
                preset: $crate::components::Preset::$preset,
                attacks: $attacks,
                location: $crate::location::Location {
                    file: file!(),
                    line: line!(),
                    module: module_path!(),
                },
            }
        }
    };
}
