//! From stacked layers to a checked configuration with its chosen components.

use super::explain;
use super::fields::struct_fields;
use super::layers::ConfigSources;
use super::schema::{DataConfig, EvalConfig, LossConfig, Regime, RunConfig, SlotConfig};
use crate::{Error, Result};
use figment::Figment;
use rossl_api::components::BuildContext;
use rossl_api::provenance::{describe_source, from_figment};
use rossl_api::registry::{self, ComponentKind, Kind, Registration};
use rossl_api::section::ComponentConfig;

/// A component that the configuration chooses.
#[derive(Clone, Debug)]
pub struct ChosenComponent {
    /// Its kind.
    pub kind: Kind,
    /// Its registered name.
    pub name: String,
    /// The dotted path of its parameter section (e.g. `encoder.resnet-small`).
    pub section: String,
    /// Its parameters with defaults filled in.
    pub params: toml::Table,
}

/// A slot table and the names it chooses.
struct Slot {
    table: &'static str,
    kind: Kind,
    fields: &'static [&'static str],
    /// (name, key that chose it)
    choices: Vec<(String, String)>,
}

fn slots(run: &RunConfig) -> Vec<Slot> {
    let mut slots = vec![
        Slot {
            table: "data",
            kind: Kind::Dataset,
            fields: struct_fields::<DataConfig>(),
            choices: vec![(run.data.name.clone(), "data.name".into())],
        },
        Slot {
            table: "views",
            kind: Kind::Views,
            fields: struct_fields::<SlotConfig>(),
            choices: vec![(run.views.name.clone(), "views.name".into())],
        },
        Slot {
            table: "encoder",
            kind: Kind::Encoder,
            fields: struct_fields::<SlotConfig>(),
            choices: vec![(run.encoder.name.clone(), "encoder.name".into())],
        },
        Slot {
            table: "loss",
            kind: Kind::Loss,
            fields: struct_fields::<LossConfig>(),
            choices: run
                .loss
                .terms
                .iter()
                .map(|t| (t.name.clone(), "loss.terms".to_string()))
                .collect(),
        },
        Slot {
            table: "eval",
            kind: Kind::Evaluator,
            fields: struct_fields::<EvalConfig>(),
            choices: run
                .eval
                .evaluators
                .iter()
                .map(|e| (e.clone(), "eval.evaluators".to_string()))
                .collect(),
        },
    ];
    // The training attack is chosen only by the regime that uses it, but its table is checked
    // whatever the regime.
    slots.push(Slot {
        table: "train.attack",
        kind: Kind::Attack,
        fields: struct_fields::<SlotConfig>(),
        choices: if run.train.regime == Regime::Pgd {
            vec![(run.train.attack.name.clone(), "train.attack.name".into())]
        } else {
            Vec::new()
        },
    });
    slots
}

/// A configuration whose keys, values and component names have all been checked.
#[derive(Clone, Debug)]
pub struct ResolvedConfig {
    figment: Figment,
    /// The typed run configuration.
    pub run: RunConfig,
    /// The components it chooses, in slot order.
    pub components: Vec<ChosenComponent>,
    /// The layers it was assembled from.
    pub sources: ConfigSources,
}

impl ResolvedConfig {
    /// Stacks `sources`, loads the plugin libraries it names (`plugins.load`), and checks the
    /// result.
    pub fn load(sources: &ConfigSources) -> Result<Self> {
        let figment = sources.figment()?;
        let libraries = load_plugins(sources)?;
        let mut resolved = Self::from_figment(figment, sources.clone())?;
        resolved.run.plugins.load = libraries;
        Ok(resolved)
    }

    /// Checks a stacked configuration: the typed keys, every slot's keys against the registry, the
    /// chosen names, each chosen component's parameters, and the run-level values.
    pub fn from_figment(figment: Figment, sources: ConfigSources) -> Result<Self> {
        let run: RunConfig = figment.extract().map_err(|e| from_figment(e, ""))?;
        let slots = slots(&run);
        for slot in &slots {
            check_slot_keys(&figment, slot)?;
        }
        let mut components = Vec::new();
        for slot in &slots {
            for (name, chosen_at) in &slot.choices {
                let section = format!("{}.{}", slot.table, name);
                if components
                    .iter()
                    .any(|c: &ChosenComponent| c.section == section)
                {
                    return Err(Error::Config(format!(
                        "`{chosen_at}` names `{name}` twice (in {})",
                        source_of(&figment, chosen_at)
                    )));
                }
                let config = ComponentConfig::new(&figment, &section);
                let params = check_component(slot.kind, name, &config, &figment, chosen_at)?;
                components.push(ChosenComponent {
                    kind: slot.kind,
                    name: name.clone(),
                    section,
                    params,
                });
            }
        }
        check_values(&figment, &run)?;
        Ok(ResolvedConfig {
            figment,
            run,
            components,
            sources,
        })
    }

    /// The stacked layers (for provenance).
    pub fn figment(&self) -> &Figment {
        &self.figment
    }

    /// The section of component `name` in slot `table`.
    pub fn section(&self, table: &str, name: &str) -> ComponentConfig {
        ComponentConfig::new(&self.figment, &format!("{table}.{name}"))
    }

    /// Builds component `name` of kind `T` from its section in slot `table`.
    pub fn build<T: ?Sized + ComponentKind>(
        &self,
        table: &str,
        name: &str,
        ctx: &BuildContext,
    ) -> Result<Box<T>>
    where
        Registration<T>: inventory::Collect,
    {
        let chosen_at = format!("{table}.name");
        let registration = registry::find::<T>(name, &source_of(&self.figment, &chosen_at))?;
        (registration.build)(&self.section(table, name), ctx)
    }

    /// Where the value at `key` came from.
    pub fn source_of(&self, key: &str) -> String {
        source_of(&self.figment, key)
    }

    /// The full configuration: the run's keys and the parameters of every chosen component, with
    /// defaults filled in. Sections of components that are not chosen are left out.
    pub fn resolved_table(&self) -> Result<toml::Table> {
        let mut table = registry::to_table(&self.run)?;
        for c in &self.components {
            insert(&mut table, &c.section, toml::Value::Table(c.params.clone()));
        }
        Ok(table)
    }

    /// The resolved configuration as TOML; with `explain`, each value carries a comment saying
    /// where it came from. The text is itself a config file that reproduces the run.
    pub fn to_toml(&self, explain: bool) -> Result<String> {
        let table = self.resolved_table()?;
        let text = if explain {
            explain::render(&table, &|path| Some(self.explain_source(path)))
        } else {
            explain::render(&table, &|_| None)
        };
        Ok(text.trim_start().to_string())
    }

    fn explain_source(&self, path: &str) -> String {
        match self.figment.find_metadata(path) {
            Some(m) => {
                let keys: Vec<String> = path.split('.').map(str::to_string).collect();
                describe_source(m, &keys)
            }
            None => "component default".to_string(),
        }
    }

    /// A short, stable digest of what determines the trained encoder: the resolved configuration
    /// without `out`, `threads` and the `eval` table. Run folders are named after it, so that a
    /// finished run is found again (and only re-evaluated when the evaluation settings change).
    pub fn digest(&self) -> Result<String> {
        self.digest_without(&["out", "threads", "eval", "compare"])
    }

    /// A digest of the evaluation settings (the `eval` table and the test subset).
    pub fn eval_digest(&self) -> Result<String> {
        let table = self.resolved_table()?;
        let mut kept = toml::Table::new();
        for key in ["eval", "seed"] {
            if let Some(v) = table.get(key) {
                kept.insert(key.to_string(), v.clone());
            }
        }
        kept.insert(
            "test_subset".into(),
            toml::Value::Integer(self.run.data.test_subset as i64),
        );
        let text = explain::render(&kept, &|_| None);
        Ok(format!("{:016x}", fnv1a(text.as_bytes())))
    }

    /// The evaluation protocol, flattened to `key = value` lines: every `eval` setting that
    /// changes what the numbers mean (attacks, radii, checks, evaluator parameters; not `strict`
    /// or `after_training`), the dataset and the test subset. Rows of a comparison must share it.
    pub fn eval_protocol(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let table = self.resolved_table()?;
        let mut flat = std::collections::BTreeMap::new();
        if let Some(toml::Value::Table(eval)) = table.get("eval") {
            flatten("eval", eval, &mut flat);
        }
        flat.remove("eval.strict");
        flat.remove("eval.after_training");
        flat.insert("data.name".into(), self.run.data.name.clone());
        flat.insert(
            "data.test_subset".into(),
            self.run.data.test_subset.to_string(),
        );
        Ok(flat)
    }

    fn digest_without(&self, keys: &[&str]) -> Result<String> {
        let mut table = self.resolved_table()?;
        for key in keys {
            table.remove(*key);
        }
        let text = explain::render(&table, &|_| None);
        Ok(format!("{:016x}", fnv1a(text.as_bytes())))
    }
}

/// Loads the libraries of `plugins.load` and returns their absolute paths. Every layer adds its
/// own list (a later file does not replace an earlier file's libraries), and a relative path is
/// taken from the folder of the file that names it (from the current folder for the environment
/// and `--set`). A library named twice is loaded once.
fn load_plugins(sources: &ConfigSources) -> Result<Vec<std::path::PathBuf>> {
    use super::layers::{SetArgument, ENV_PREFIX};
    use figment::providers::{Env, Format, Toml};
    let mut layers: Vec<Figment> = sources
        .files
        .iter()
        .map(|file| Figment::from(Toml::file_exact(file)))
        .collect();
    if sources.use_env {
        layers.push(Figment::from(Env::prefixed(ENV_PREFIX).split("__")));
    }
    for set in &sources.sets {
        layers.push(Figment::from(SetArgument::parse(set)?));
    }
    let mut loaded: Vec<std::path::PathBuf> = Vec::new();
    for layer in &layers {
        for path in layer_plugin_paths(layer)? {
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if loaded.contains(&canonical) {
                continue;
            }
            crate::plugins::load(&path).map_err(|e| {
                Error::Config(format!(
                    "`plugins.load` (in {}): {e}",
                    source_of(layer, "plugins.load")
                ))
            })?;
            loaded.push(canonical);
        }
    }
    Ok(loaded)
}

/// The library paths one layer lists in `plugins.load`, relative ones resolved.
fn layer_plugin_paths(layer: &Figment) -> Result<Vec<std::path::PathBuf>> {
    let paths: Vec<std::path::PathBuf> = match layer.extract_inner("plugins.load") {
        Ok(p) => p,
        Err(e) if e.missing() => return Ok(Vec::new()),
        Err(e) => return Err(from_figment(e, "plugins.load")),
    };
    let base = match layer
        .find_metadata("plugins.load")
        .and_then(|m| m.source.as_ref())
    {
        Some(figment::Source::File(file)) => file
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
        _ => std::path::PathBuf::from("."),
    };
    Ok(paths
        .into_iter()
        .map(|path| {
            if path.is_relative() {
                base.join(path)
            } else {
                path
            }
        })
        .collect())
}

/// Flattens `table` under `prefix` into dotted keys and inline TOML values.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    for (key, value) in table {
        let dotted = format!("{prefix}.{key}");
        match value {
            toml::Value::Table(t) => flatten(&dotted, t, out),
            other => {
                out.insert(dotted, explain::inline(other));
            }
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn insert(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = match entry {
            toml::Value::Table(t) => t,
            _ => unreachable!("just made a table"),
        };
    }
    current.insert(last.to_string(), value);
}

/// Where the value at `key` came from ("built-in defaults" when only the defaults set it).
fn source_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(m) => {
            let keys: Vec<String> = key.split('.').map(str::to_string).collect();
            describe_source(m, &keys)
        }
        None => "built-in defaults".to_string(),
    }
}

fn check_slot_keys(figment: &Figment, slot: &Slot) -> Result<()> {
    let Ok(value) = figment.find_value(slot.table) else {
        return Ok(());
    };
    let Some(dict) = value.as_dict() else {
        return Err(Error::Config(format!(
            "`{}` must be a table (in {})",
            slot.table,
            source_of(figment, slot.table)
        )));
    };
    let names = slot.kind.names();
    for (key, value) in dict {
        if slot.fields.contains(&key.as_str()) {
            continue;
        }
        let full = format!("{}.{}", slot.table, key);
        if names.contains(&key.as_str()) {
            if value.as_dict().is_none() {
                return Err(Error::Config(format!(
                    "`{full}` must be a table of the {} `{key}`'s parameters (in {})",
                    slot.kind,
                    source_of(figment, &full)
                )));
            }
            // a section of a component that is not chosen is checked too: a misspelt key in
            // it would otherwise lie in wait until a later layer switches to that component
            let config = ComponentConfig::new(figment, &full);
            check_component(slot.kind, key, &config, figment, &full)?;
            continue;
        }
        let candidates = slot.fields.iter().copied().chain(names.iter().copied());
        return Err(Error::Config(format!(
            "unknown key `{full}` (in {}){}; `[{}]` takes {} and one section per {} ({})",
            source_of(figment, &full),
            rossl_api::suggest::did_you_mean(key, candidates),
            slot.table,
            slot.fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", "),
            slot.kind,
            if names.is_empty() {
                "none registered".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    Ok(())
}

fn check_component(
    kind: Kind,
    name: &str,
    config: &ComponentConfig,
    figment: &Figment,
    chosen_at: &str,
) -> Result<toml::Table> {
    fn check<T: ?Sized + ComponentKind>(
        name: &str,
        config: &ComponentConfig,
        source: &str,
    ) -> Result<toml::Table>
    where
        Registration<T>: inventory::Collect,
    {
        let registration = registry::find::<T>(name, source)?;
        (registration.check)(config)
    }
    use rossl_api::components::*;
    let source = format!("`{chosen_at}` in {}", source_of(figment, chosen_at));
    match kind {
        Kind::Dataset => check::<dyn Dataset>(name, config, &source),
        Kind::Encoder => check::<dyn Encoder>(name, config, &source),
        Kind::Views => check::<dyn ViewStrategy>(name, config, &source),
        Kind::Loss => check::<dyn SslLoss>(name, config, &source),
        Kind::Attack => check::<dyn Attack>(name, config, &source),
        Kind::Evaluator => check::<dyn Evaluator>(name, config, &source),
    }
}

/// Checks the `index`-th extra evaluation attack's name and parameters at radius `eps` against the
/// registry (without building it).
fn check_extra_attack(extra: &super::ExtraAttack, index: usize, eps: f64) -> Result<()> {
    let origin = format!("`eval.extra_attacks[{index}]`");
    let planned = extra.planned(index, eps)?;
    let section = format!("eval.extra_attacks[{index}].params");
    let config = ComponentConfig::from_table(&section, planned.params, &origin);
    let registration =
        registry::find::<dyn rossl_api::components::Attack>(&planned.attack, &origin)?;
    (registration.check)(&config).map(|_| ())
}

fn check_values(figment: &Figment, run: &RunConfig) -> Result<()> {
    let fail = |key: &str, message: &str| {
        Err(Error::Config(format!(
            "`{key}`: {message} (in {})",
            source_of(figment, key)
        )))
    };
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
    if !(run.train.free.step >= 0.0 && run.train.free.step.is_finite()) {
        return fail("train.free.step", "must be a finite number >= 0");
    }
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
    if let Some(e) = run.eval.eps.iter().find(|e| !(**e >= 0.0 && e.is_finite())) {
        return fail("eval.eps", &format!("{e} is not a finite radius >= 0"));
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
    // extra evaluation attacks are checked now, so that a misspelt name or parameter fails before
    // training rather than after it
    for (i, extra) in run.eval.extra_attacks.iter().enumerate() {
        for &eps in &run.eval.eps {
            check_extra_attack(extra, i, eps).map_err(|e| {
                Error::Config(format!(
                    "{e} (in {})",
                    source_of(figment, "eval.extra_attacks")
                ))
            })?;
        }
    }
    Ok(())
}
