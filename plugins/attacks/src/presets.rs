//! The attacks of the built-in evaluation presets, as data: adding an attack to a preset is an
//! edit of this file alone.
//!
//! - `strong`: per radius, PGD (`eval.steps` steps of eps/4 from a random start, `eval.restarts`
//!   runs) on cross-entropy and on the CW margin, APGD-CE and APGD-DLR (`eval.apgd_steps`,
//!   100 by default), FGSM, and the black-box Square attack (`eval.square_queries` queries) on
//!   the points all of those left correctly classified.
//! - `paper`: the reference code's protocol: PGD from a zero start, step 0.01,
//!   `eval.paper_steps` steps, cross-entropy.
//! - `none`: no attack.

use rossl_api::components::{AttackLoss, PresetAttack, PresetSettings, Stage};
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

/// PGD's step: eps/4 (any positive value at eps 0, where nothing moves).
fn quarter(eps: f64) -> f64 {
    if eps > 0.0 {
        eps / 4.0
    } else {
        1.0 / 1020.0
    }
}

fn strong(eps: f64, s: &PresetSettings) -> Vec<PresetAttack> {
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
rossl_api::register_preset! { preset: Paper, attacks: paper }
rossl_api::register_preset! { preset: None, attacks: none }
