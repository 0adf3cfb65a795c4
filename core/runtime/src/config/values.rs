//! The checks of run-level values that serde cannot express (ranges, consistency), each error
//! naming the key and where its value came from.

use super::schema::RunConfig;
use crate::{Error, Result};
use figment::Figment;
use rossl_api::provenance::source_of;
use rossl_api::registry;
use rossl_api::section::ComponentConfig;

/// Checks the `index`-th extra evaluation attack's name and parameters at radius `eps`, in the
/// threat model `norm`, against the registry (without building it).
fn check_extra_attack(
    extra: &super::ExtraAttack,
    index: usize,
    eps: f64,
    norm: rossl_api::norm::Norm,
) -> Result<()> {
    let origin = format!("`eval.extra_attacks[{index}]`");
    let planned = extra.planned(index, eps, norm)?;
    let section = format!("eval.extra_attacks[{index}].params");
    let config = ComponentConfig::from_table(&section, planned.params, &origin);
    let registration =
        registry::find::<dyn rossl_api::components::Attack>(&planned.attack, &origin)?;
    (registration.check)(&config).map(|_| ()).map_err(|e| {
        // the hint only where the refusal is about `norm` itself
        if norm == rossl_api::norm::Norm::Linf
            || extra.params.contains_key("norm")
            || !e.to_string().contains("norm")
        {
            return e;
        }
        Error::Config(format!(
            "{e} (under `eval.norm = \"{norm}\"` every extra attack is given `norm = \"{norm}\"`: \
             `{}` must be an attack that takes it)",
            extra.name
        ))
    })
}

/// The error for `key`, naming where its value came from.
fn fail(figment: &Figment, key: &str, message: &str) -> Result<()> {
    Err(Error::Config(format!(
        "`{key}`: {message} (in {})",
        source_of(figment, key)
    )))
}

/// The most threads (`threads`, `data.workers`) a run may ask for on this machine: four per
/// core. More only adds waiting (and thousands of threads never reach the first step).
pub(crate) fn max_threads() -> usize {
    4 * cores()
}

/// The cores this process may use (as `crate::device` counts them; read here directly, since the
/// device module depends on this one).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn check_values(figment: &Figment, run: &RunConfig) -> Result<()> {
    check_machine(figment, run)?;
    check_training(figment, run)?;
    check_anneal(figment, run)?;
    check_evaluation(figment, run)
}

/// Values checked against this machine: threads and loader workers.
fn check_machine(figment: &Figment, run: &RunConfig) -> Result<()> {
    let limit = max_threads();
    for (key, value) in [("threads", run.threads), ("data.workers", run.data.workers)] {
        if value > limit {
            return fail(
                figment,
                key,
                &format!(
                    "{value} is more than this machine can use: the limit is {limit} (4 per core, {} cores); 0 uses every core",
                    cores()
                ),
            );
        }
    }
    Ok(())
}

/// Values of the data, training and optimiser tables.
fn check_training(figment: &Figment, run: &RunConfig) -> Result<()> {
    let fail = |key: &str, message: &str| fail(figment, key, message);
    if run.data.batch_size == 0 {
        return fail("data.batch_size", "must be at least 1");
    }
    if run.data.prefetch == 0 {
        return fail("data.prefetch", "must be at least 1");
    }
    if run.train.log_every == 0 {
        return fail("train.log_every", "must be at least 1");
    }
    if run.train.free.replays == 0 {
        return fail("train.free.replays", "must be at least 1");
    }
    if !(run.train.free.eps >= 0.0 && run.train.free.eps.is_finite()) {
        return fail("train.free.eps", "must be a finite number >= 0");
    }
    if run.train.free.eps > 1.0 {
        return fail(
            "train.free.eps",
            &format!(
                "{} is larger than the whole range of a pixel ([0, 1]): the perturbation would be unbounded (8/255 = 0.0314 is usual)",
                run.train.free.eps
            ),
        );
    }
    if !(run.train.free.step >= 0.0 && run.train.free.step.is_finite()) {
        return fail("train.free.step", "must be a finite number >= 0");
    }
    if !(0.0..=1.0).contains(&run.train.target.momentum) {
        return fail("train.target.momentum", "must be in [0, 1]");
    }
    let pgd = &run.train.pgd;
    if pgd.attack_in_eval_mode && pgd.attack_updates_bn_stats {
        return fail(
            "train.pgd.attack_in_eval_mode",
            "and `train.pgd.attack_updates_bn_stats` are both true: an attack in evaluation mode \
             uses the running statistics and cannot update them; choose one",
        );
    }
    check_update_weights(figment, run)?;
    if !(run.optim.lr > 0.0 && run.optim.lr.is_finite()) {
        return fail("optim.lr", "must be a finite number > 0");
    }
    if !(0.0..1.0).contains(&run.optim.momentum) {
        return fail("optim.momentum", "must be in [0, 1)");
    }
    if run.optim.weight_decay < 0.0 {
        return fail("optim.weight_decay", "must be >= 0");
    }
    if run.optim.min_lr < 0.0 || run.optim.min_lr > run.optim.lr {
        return fail("optim.min_lr", "must be in [0, optim.lr]");
    }
    if run.loss.terms.is_empty() {
        return fail("loss.terms", "the objective needs at least one term");
    }
    if let Some(t) = run.loss.terms.iter().find(|t| !t.weight.is_finite()) {
        return fail(
            "loss.terms",
            &format!("the weight of `{}` is not finite", t.name),
        );
    }
    Ok(())
}

/// The clean and adversarial weights of the `pgd` and `free` regimes' updates: finite, not
/// negative, not both 0.
fn check_update_weights(figment: &Figment, run: &RunConfig) -> Result<()> {
    let (pgd, free) = (&run.train.pgd, &run.train.free);
    for (regime, [clean, adversarial]) in [
        ("pgd", [pgd.clean_weight, pgd.adversarial_weight]),
        ("free", [free.clean_weight, free.adversarial_weight]),
    ] {
        for (name, value) in [("clean_weight", clean), ("adversarial_weight", adversarial)] {
            if !(value >= 0.0 && value.is_finite()) {
                return fail(
                    figment,
                    &format!("train.{regime}.{name}"),
                    "must be a finite number >= 0",
                );
            }
        }
        if clean == 0.0 && adversarial == 0.0 {
            return fail(
                figment,
                &format!("train.{regime}.adversarial_weight"),
                &format!(
                    "is 0, and so is `train.{regime}.clean_weight`: the update would have no \
                     loss (set one of them above 0)"
                ),
            );
        }
    }
    Ok(())
}

/// Values of the `train.anneal` table: ends in range, a schedule only with stages, weight
/// schedules only for the `pgd` regime (whose weights they start from).
fn check_anneal(figment: &Figment, run: &RunConfig) -> Result<()> {
    let fail = |key: &str, message: &str| fail(figment, key, message);
    let anneal = &run.train.anneal;
    let strength = anneal.view_strength_end;
    if !(0.0..=1.0).contains(&strength) {
        return fail(
            "train.anneal.view_strength_end",
            &format!("{strength} is not a strength in [0, 1] (1: the views as configured)"),
        );
    }
    let weights = [
        ("train.anneal.clean_weight_end", anneal.clean_weight_end),
        (
            "train.anneal.adversarial_weight_end",
            anneal.adversarial_weight_end,
        ),
    ];
    for (key, value) in weights {
        if value.is_some_and(|v| !(v >= 0.0 && v.is_finite())) {
            return fail(key, "must be a finite number >= 0");
        }
    }
    let set: Vec<&str> = std::iter::once(("train.anneal.view_strength_end", strength != 1.0))
        .chain(weights.iter().map(|(k, v)| (*k, v.is_some())))
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
    if anneal.stages == 0 {
        return match set.first() {
            Some(key) => fail(
                "train.anneal.stages",
                &format!("is 0 (no schedule), but `{key}` is set: give the number of stages of the schedule (DynACL: 20)"),
            ),
            None => Ok(()),
        };
    }
    if set.is_empty() {
        return fail(
            "train.anneal.stages",
            "is set, but nothing is scheduled: set `train.anneal.view_strength_end`, \
             `clean_weight_end` or `adversarial_weight_end`",
        );
    }
    if let Some((key, _)) = weights.iter().find(|(_, v)| v.is_some()) {
        if run.train.regime != super::schema::Regime::Pgd {
            return fail(
                key,
                &format!(
                    "schedules a loss weight of the `pgd` regime (from `train.pgd`), but `train.regime` is `{}`",
                    run.train.regime
                ),
            );
        }
    }
    Ok(())
}

/// Values of the `eval` table, extra attacks included.
fn check_evaluation(figment: &Figment, run: &RunConfig) -> Result<()> {
    let fail = |key: &str, message: &str| fail(figment, key, message);
    run.eval.corruptions.families()?;
    let corruptions = &run.eval.corruptions;
    if !corruptions.is_off()
        && !corruptions.files.as_os_str().is_empty()
        && run.data.test_subset > 0
    {
        return fail(
            "eval.corruptions.files",
            &format!(
                "the published arrays are the CIFAR test set in its published order, and \
                 `data.test_subset = {}` evaluates a drawn subset of it: set \
                 `data.test_subset = 0` (and `eval.corruptions.images` to read fewer corrupted \
                 images), or leave `eval.corruptions.files` unset to corrupt the evaluated images \
                 on the fly",
                run.data.test_subset
            ),
        );
    }
    if let Some(e) = run.eval.eps.iter().find(|e| !(**e >= 0.0 && e.is_finite())) {
        return fail("eval.eps", &format!("{e} is not a finite radius >= 0"));
    }
    if let Some((i, e)) = run
        .eval
        .eps
        .iter()
        .enumerate()
        .find(|(i, e)| run.eval.eps[..*i].contains(e))
    {
        return fail(
            "eval.eps",
            &format!(
                "{e} is listed twice (entry {}): each radius once (a repeat would get a second \
                 worst case, with the first one's breaks carried into it)",
                i + 1
            ),
        );
    }
    if run.eval.batch_size == 0 {
        return fail("eval.batch_size", "must be at least 1");
    }
    for (key, value) in [
        ("eval.steps", run.eval.steps),
        ("eval.paper_steps", run.eval.paper_steps),
        ("eval.apgd_steps", run.eval.apgd_steps),
        ("eval.square_queries", run.eval.square_queries),
    ] {
        if value == 0 {
            return fail(key, "attacks need at least one step (query)");
        }
    }
    if run.eval.restarts == 0 {
        return fail("eval.restarts", "needs at least one run");
    }
    if !(run.eval.large_eps > 0.0 && run.eval.large_eps.is_finite()) {
        return fail("eval.large_eps", "must be a finite radius > 0");
    }
    if run.eval.eot_samples == 0 {
        return fail("eval.eot_samples", "must be at least 1");
    }
    if run.eval.norm == rossl_api::norm::Norm::L2
        && run.eval.preset == rossl_api::components::Preset::Paper
    {
        return fail(
            "eval.preset",
            "the `paper` preset is the reference code's L-infinity PGD: with `eval.norm = \"l2\"` use `strong` or `autoattack`",
        );
    }
    // extra evaluation attacks are checked now, so that a misspelt name or parameter fails before
    // training rather than after it
    for (i, extra) in run.eval.extra_attacks.iter().enumerate() {
        for &eps in &run.eval.eps {
            check_extra_attack(extra, i, eps, run.eval.norm).map_err(|e| {
                Error::Config(format!(
                    "{e} (in {})",
                    source_of(figment, "eval.extra_attacks")
                ))
            })?;
        }
    }
    Ok(())
}
