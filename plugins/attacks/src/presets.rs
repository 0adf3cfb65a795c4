//! The attacks of the built-in evaluation presets, as data: adding an attack to a preset is an
//! edit of this file alone.
//!
//! - `strong`: per radius, PGD (`eval.steps` steps of eps/4 from a random start, `eval.restarts`
//!   runs) on cross-entropy and on the CW margin, APGD-CE and APGD-DLR (`eval.apgd_steps`,
//!   100 by default), FGSM, and the black-box Square attack (`eval.square_queries` queries) on
//!   the points all of those left correctly classified.
//! - `autoattack`: AutoAttack "standard" (Croce and Hein 2020, `set_version("standard")`):
//!   APGD-CE (100 iterations), APGD-T (targeted DLR, 100 iterations, the 9 most likely other
//!   classes, or all of them when there are fewer), FAB-T (100 iterations, 9 target classes) and
//!   Square (5000 queries, p_init 0.8, AutoAttack's unrescaled schedule), in that order, each on
//!   the points the earlier ones left correct. Its budgets are fixed: it is the number
//!   RobustBench reports.
//! - `paper`: the reference code's protocol: PGD from a zero start, step 0.01,
//!   `eval.paper_steps` steps, cross-entropy.
//! - `none`: no attack.
//!
//! Under `eval.norm = "l2"` every attack is built in its L2 form (PGD as `pgd`, FGSM as FGM);
//! the `paper` preset is L-infinity only.

use rossl_api::components::{AttackLoss, PresetAttack, PresetSettings, Stage};
use rossl_api::norm::Norm;
use toml::Value::{Boolean, Float, Integer};

fn attack(
    label: &str,
    attack: &str,
    loss: AttackLoss,
    stage: Stage,
    params: &[(&str, toml::Value)],
) -> PresetAttack {
    PresetAttack {
        label: label.to_string(),
        attack: attack.to_string(),
        loss,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        stage,
        targets: 0,
    }
}

/// `attacks` built for the threat model `norm`: under L2 each gets `norm = "l2"`, PGD is the
/// norm-generic `pgd` and FGSM is labelled FGM (L-infinity attacks are left exactly as they
/// were, parameters included).
fn in_norm(attacks: Vec<PresetAttack>, norm: Norm) -> Vec<PresetAttack> {
    if norm == Norm::Linf {
        return attacks;
    }
    attacks
        .into_iter()
        .map(|mut a| {
            a.params
                .insert("norm".into(), toml::Value::String(norm.as_str().into()));
            if a.attack == "pgd-linf" {
                a.attack = "pgd".into();
                a.label = a.label.replace("pgd-linf", "pgd-l2");
            }
            if a.attack == "fgsm" {
                a.label = a.label.replace("fgsm", "fgm");
            }
            if a.attack == "square" {
                a.label = "square-l2".into();
            }
            a
        })
        .collect()
}

/// PGD's step: eps/4 (any positive value at eps 0, where nothing moves).
fn quarter(eps: f64) -> f64 {
    if eps > 0.0 {
        eps / 4.0
    } else {
        1.0 / 1020.0
    }
}

fn strong(eps: f64, s: &PresetSettings) -> Vec<PresetAttack> {
    in_norm(strong_linf(eps, s), s.norm)
}

fn strong_linf(eps: f64, s: &PresetSettings) -> Vec<PresetAttack> {
    let mut attacks = Vec::new();
    for loss in [AttackLoss::CrossEntropy, AttackLoss::Margin] {
        attacks.push(attack(
            &format!("pgd-linf/{}", loss.short()),
            "pgd-linf",
            loss,
            Stage::AllPoints,
            &[
                ("eps", Float(eps)),
                ("step", Float(quarter(eps))),
                ("steps", Integer(s.steps as i64)),
                ("random_start", Boolean(true)),
                ("restarts", Integer(s.restarts as i64)),
            ],
        ));
    }
    if s.apgd {
        let params = [("eps", Float(eps)), ("steps", Integer(s.apgd_steps as i64))];
        attacks.push(attack(
            "apgd-ce",
            "apgd",
            AttackLoss::CrossEntropy,
            Stage::AllPoints,
            &params,
        ));
        if s.classes >= 3 {
            attacks.push(attack(
                "apgd-dlr",
                "apgd",
                AttackLoss::Dlr,
                Stage::AllPoints,
                &params,
            ));
        }
    }
    if s.fgsm {
        attacks.push(attack(
            "fgsm/ce",
            "fgsm",
            AttackLoss::CrossEntropy,
            Stage::AllPoints,
            &[("eps", Float(eps)), ("random_start", Boolean(false))],
        ));
    }
    if s.square {
        attacks.push(attack(
            "square",
            "square",
            AttackLoss::Margin,
            Stage::Survivors,
            &[
                ("eps", Float(eps)),
                ("queries", Integer(s.square_queries as i64)),
            ],
        ));
    }
    attacks
}

/// AutoAttack "standard": fixed budgets, the settings' only input is the class count.
fn autoattack(eps: f64, s: &PresetSettings) -> Vec<PresetAttack> {
    let iterations = [("eps", Float(eps)), ("steps", Integer(100))];
    let mut attacks = vec![attack(
        "apgd-ce",
        "apgd",
        AttackLoss::CrossEntropy,
        Stage::AllPoints,
        &iterations,
    )];
    // the targeted DLR reads the fourth largest logit
    let targets = 9.min(s.classes.saturating_sub(1));
    if s.classes >= 4 {
        let mut apgd_t = attack(
            "apgd-t",
            "apgd",
            AttackLoss::Dlr,
            Stage::AllPoints,
            &iterations,
        );
        apgd_t.targets = targets;
        attacks.push(apgd_t);
    }
    let mut fab_t = attack(
        "fab-t",
        "fab",
        AttackLoss::Margin,
        Stage::AllPoints,
        &iterations,
    );
    fab_t.targets = targets.max(1);
    attacks.push(fab_t);
    attacks.push(attack(
        "square",
        "square",
        AttackLoss::Margin,
        Stage::Survivors,
        &[
            ("eps", Float(eps)),
            ("queries", Integer(5000)),
            ("p_init", Float(0.8)),
            ("rescale_schedule", Boolean(false)),
        ],
    ));
    in_norm(attacks, s.norm)
}

fn paper(eps: f64, s: &PresetSettings) -> Vec<PresetAttack> {
    vec![attack(
        "pgd-linf/ce",
        "pgd-linf",
        AttackLoss::CrossEntropy,
        Stage::AllPoints,
        &[
            ("eps", Float(eps)),
            ("step", Float(0.01)),
            ("steps", Integer(s.paper_steps as i64)),
            ("random_start", Boolean(false)),
        ],
    )]
}

fn none(_eps: f64, _s: &PresetSettings) -> Vec<PresetAttack> {
    Vec::new()
}

rossl_api::register_preset! { preset: Strong, attacks: strong }
rossl_api::register_preset! { preset: Autoattack, attacks: autoattack }
rossl_api::register_preset! { preset: Paper, attacks: paper }
rossl_api::register_preset! { preset: None, attacks: none }
