//! From stacked layers to a checked configuration with its chosen components.

use super::evaluator_data::EvaluatorData;
use super::explain;
use super::fields::struct_fields;
use super::layers::ConfigSources;
use super::schema::{DataConfig, EvalConfig, LossConfig, Regime, RunConfig, SlotConfig};
use crate::{Error, Result};
use figment::Figment;
use rossl_api::components::{BuildContext, RUNTIME_KEYS};
use rossl_api::provenance::{describe_source, from_figment, source_of};
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
    /// The plugin library (file name) each trained component comes from, by section, for the
    /// trained components that come from one (filled by `rossl_runtime::plugins::resolve`).
    pub trained_from: std::collections::BTreeMap<String, String>,
    /// The checked parameters of every evaluator's transfer dataset (`eval.<e>.dataset`), by
    /// dataset name: part of the evaluation's digest and protocol.
    pub transfer_datasets: toml::Table,
}

impl ResolvedConfig {
    /// Stacks `sources` and checks the result. The plugin libraries it names (`plugins.load`)
    /// must already be loaded for their components to be found: `rossl_runtime::plugins::resolve`
    /// loads them first.
    pub fn load(sources: &ConfigSources) -> Result<Self> {
        let figment = sources.figment()?;
        let libraries = super::libraries::plugin_libraries(sources)?;
        let mut resolved = Self::from_figment(figment, sources.clone())?;
        resolved.run.plugins.load = libraries.into_iter().map(|l| l.path).collect();
        Ok(resolved)
    }

    /// Checks a stacked configuration: the typed keys, every slot's keys against the registry, the
    /// chosen names, each chosen component's parameters, and the run-level values.
    pub fn from_figment(figment: Figment, sources: ConfigSources) -> Result<Self> {
        let mut run: RunConfig = figment.extract().map_err(|e| from_figment(e, ""))?;
        super::evaluation::apply_protocol(&mut run.eval)?;
        let slots = slots(&run);
        for slot in &slots {
            check_slot_keys(&figment, slot)?;
        }
        let mut components = Vec::new();
        let mut transfer_datasets = toml::Table::new();
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
                let config = component_section(&figment, slot.table, name);
                let mut params = check_component(slot.kind, name, &config, &figment, chosen_at)?;
                if slot.kind == Kind::Evaluator {
                    let data = EvaluatorData::read(&figment, name)?;
                    params.extend(data.to_table()?);
                    if !data.dataset.is_empty() {
                        let section = format!("data.{}", data.dataset);
                        let config = ComponentConfig::new(&figment, &section);
                        let chosen_at = format!("eval.{name}.dataset");
                        let dataset_params = check_component(
                            Kind::Dataset,
                            &data.dataset,
                            &config,
                            &figment,
                            &chosen_at,
                        )?;
                        transfer_datasets
                            .insert(data.dataset.clone(), toml::Value::Table(dataset_params));
                    }
                }
                components.push(ChosenComponent {
                    kind: slot.kind,
                    name: name.clone(),
                    section,
                    params,
                });
            }
        }
        super::values::check_values(&figment, &run)?;
        Ok(ResolvedConfig {
            figment,
            run,
            components,
            sources,
            trained_from: Default::default(),
            transfer_datasets,
        })
    }

    /// The stacked layers (for provenance).
    pub fn figment(&self) -> &Figment {
        &self.figment
    }

    /// The section of component `name` in slot `table`.
    pub fn section(&self, table: &str, name: &str) -> ComponentConfig {
        component_section(&self.figment, table, name)
    }

    /// Evaluator `name`'s label share and transfer dataset (`[eval.<name>]`'s runtime keys).
    pub fn evaluator_data(&self, name: &str) -> Result<EvaluatorData> {
        EvaluatorData::read(&self.figment, name)
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

    /// The full configuration: the run's keys and the parameters of every chosen component (and
    /// of the evaluators' transfer datasets), with defaults filled in. Sections of components
    /// that are not chosen are left out.
    pub fn resolved_table(&self) -> Result<toml::Table> {
        let mut table = registry::to_table(&self.run)?;
        for c in &self.components {
            insert(&mut table, &c.section, toml::Value::Table(c.params.clone()));
        }
        // the evaluators' transfer datasets, so that the file re-evaluates as it ran (they do not
        // take part in the training digest: `keep_training_keys` drops them)
        for (name, params) in &self.transfer_datasets {
            if *name != self.run.data.name {
                insert(&mut table, &format!("data.{name}"), params.clone());
            }
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
    /// without the keys of [`super::training::NOT_TRAINING`] (`out`, `threads`, the `eval`
    /// table, ...) and the test subset. Run folders are named after it, so that a finished run is
    /// found again (and only re-evaluated when the evaluation settings change).
    ///
    /// Loading a plugin library does not change it (`plugins` is left out): an attack or an
    /// evaluator from a library can evaluate runs trained without it. Only when a trained
    /// component comes from a library does the library's name take part (`trained_from`).
    pub fn digest(&self) -> Result<String> {
        let mut table = self.resolved_table()?;
        super::training::keep_training_keys(&mut table);
        if !self.trained_from.is_empty() {
            let origins: toml::Table = self
                .trained_from
                .iter()
                .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
                .collect();
            table.insert("trained_from".into(), toml::Value::Table(origins));
        }
        let text = explain::render(&table, &|_| None);
        Ok(format!("{:016x}", fnv1a(text.as_bytes())))
    }

    /// The sections of the components that shape the trained encoder: the dataset, the views,
    /// the encoder, the loss terms, and the training attack when the regime uses one.
    pub fn trained_components(&self) -> impl Iterator<Item = &ChosenComponent> {
        self.components.iter().filter(|c| c.kind != Kind::Evaluator)
    }

    /// A digest of the evaluation settings (the `eval` table, the test subset and the parameters
    /// of the evaluators' transfer datasets). The keys of
    /// [`super::NOT_PROTOCOL`] (`strict`, `after_training`) are read at their
    /// defaults: they change how an evaluation is run, not its numbers, so setting one finds the
    /// same evaluation (and the digests of configurations that leave them alone are those of
    /// earlier builds).
    pub fn eval_digest(&self) -> Result<String> {
        self.eval_digest_reading(true)
    }

    /// The evaluation digest as builds before 2026-12-07 computed it, `eval.strict` and
    /// `eval.after_training` as set: results recorded under it have the settings of
    /// [`ResolvedConfig::eval_digest`] (the same when both keys are at their defaults).
    pub fn eval_digest_of_earlier_builds(&self) -> Result<String> {
        self.eval_digest_reading(false)
    }

    /// The evaluation digest, with the keys of [`super::NOT_PROTOCOL`] at their defaults when
    /// `at_defaults`, else as set.
    fn eval_digest_reading(&self, at_defaults: bool) -> Result<String> {
        let table = self.resolved_table()?;
        let mut kept = toml::Table::new();
        for key in ["eval", "seed"] {
            if let Some(v) = table.get(key) {
                kept.insert(key.to_string(), v.clone());
            }
        }
        if let (true, Some(toml::Value::Table(eval))) = (at_defaults, kept.get_mut("eval")) {
            for key in super::evaluation::NOT_PROTOCOL {
                if let (Some(value), Some(default)) = (
                    eval.get_mut(*key),
                    super::evaluation::EvalConfig::default_value(key),
                ) {
                    *value = default;
                }
            }
        }
        kept.insert(
            "test_subset".into(),
            toml::Value::Integer(self.run.data.test_subset as i64),
        );
        // written only when an evaluator transfers, so that other digests stay as they were
        if !self.transfer_datasets.is_empty() {
            kept.insert(
                "transfer".into(),
                toml::Value::Table(self.transfer_datasets.clone()),
            );
        }
        let text = explain::render(&kept, &|_| None);
        Ok(format!("{:016x}", fnv1a(text.as_bytes())))
    }

    /// The evaluation protocol, flattened to `key = value` lines: every `eval` setting that
    /// changes what the numbers mean (attacks, radii, checks, evaluator parameters; not `strict`
    /// or `after_training`), the dataset, the test subset and the parameters of the evaluators'
    /// transfer datasets (`transfer.<dataset>.<key>`). Rows of a comparison must share it.
    pub fn eval_protocol(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let table = self.resolved_table()?;
        let mut flat = std::collections::BTreeMap::new();
        if let Some(toml::Value::Table(eval)) = table.get("eval") {
            super::training::flatten_into("eval", eval, &mut flat);
        }
        for key in super::evaluation::NOT_PROTOCOL {
            flat.remove(&format!("eval.{key}"));
        }
        super::training::flatten_into("transfer", &self.transfer_datasets, &mut flat);
        flat.insert("data.name".into(), self.run.data.name.clone());
        flat.insert(
            "data.test_subset".into(),
            self.run.data.test_subset.to_string(),
        );
        Ok(flat)
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

/// The section of component `name` in slot `table`; an evaluator's (`eval`) without the keys
/// the runtime reads itself ([`RUNTIME_KEYS`]).
fn component_section(figment: &Figment, table: &str, name: &str) -> ComponentConfig {
    let section = ComponentConfig::new(figment, &format!("{table}.{name}"));
    if table == "eval" {
        section.without(&RUNTIME_KEYS)
    } else {
        section
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
            let config = component_section(figment, slot.table, key);
            if slot.kind == Kind::Evaluator {
                EvaluatorData::read(figment, key)?;
            }
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
        Kind::Evaluator => {
            let registration = registry::find::<dyn Evaluator>(name, &source)?;
            let defaults = (registration.defaults)()?;
            if let Some(key) = RUNTIME_KEYS.iter().find(|k| defaults.contains_key(**k)) {
                return Err(Error::Config(format!(
                    "the evaluator `{name}` ({}:{}) has a parameter `{key}`, a key the runtime \
                     reads for every evaluator (`RUNTIME_KEYS`): rename the parameter",
                    registration.location.file, registration.location.line
                )));
            }
            check::<dyn Evaluator>(name, config, &source)
        }
    }
}
