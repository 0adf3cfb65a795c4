//! A component's own section of the configuration.

use crate::params::Params;
use crate::provenance::{describe_source, from_figment};
use crate::{Error, Result};
use figment::providers::Serialized;
use figment::{Figment, Metadata, Profile, Provider};
use std::path::{Path, PathBuf};

/// The section of the configuration that holds one component's parameters (e.g.
/// `encoder.resnet-small`), with the provenance of every value.
#[derive(Clone, Debug)]
pub struct ComponentConfig {
    root: Figment,
    path: String,
    reserved: &'static [&'static str],
}

/// In-memory parameters, named "NAME" in error messages.
struct Inline {
    name: String,
    path: String,
    table: toml::Table,
}

impl Provider for Inline {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, figment::value::Dict>> {
        Serialized::default(&self.path, &self.table).data()
    }
}

impl ComponentConfig {
    /// The section at `path` (dotted) of a stacked configuration.
    pub fn new(root: &Figment, path: &str) -> Self {
        ComponentConfig {
            root: root.clone(),
            path: path.to_string(),
            reserved: &[],
        }
    }

    /// A section from in-memory parameters (for presets and tests); errors name `origin`.
    pub fn from_table(path: &str, table: toml::Table, origin: &str) -> Self {
        let root = Figment::from(Inline {
            name: origin.to_string(),
            path: path.to_string(),
            table,
        });
        ComponentConfig {
            root,
            path: path.to_string(),
            reserved: &[],
        }
    }

    /// A section from TOML text (for tests and examples).
    pub fn from_toml(path: &str, text: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            Error::Config(format!("parameters for `{path}` are not valid TOML: {e}"))
        })?;
        Ok(Self::from_table(path, table, "inline parameters"))
    }

    /// An empty section: every parameter takes its default.
    pub fn defaults(path: &str) -> Self {
        Self::from_table(path, toml::Table::new(), "defaults")
    }

    /// The same section, with `keys` left out of [`ComponentConfig::params`]: keys that the
    /// runtime reads itself (an evaluator's [`crate::components::RUNTIME_KEYS`]).
    pub fn without(mut self, keys: &'static [&'static str]) -> Self {
        self.reserved = keys;
        self
    }

    /// The dotted path of the section.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Reads, validates and path-resolves the typed parameters. Unknown keys, wrong types and
    /// invalid values are errors naming `section.key` and the value's source.
    pub fn params<P: Params>(&self) -> Result<P> {
        let focused = self.root.focus(&self.path);
        let mut params: P = if self.reserved.is_empty() {
            focused.extract().map_err(|e| from_figment(e, &self.path))?
        } else {
            let mut dict: figment::value::Dict =
                focused.extract().map_err(|e| from_figment(e, &self.path))?;
            dict.retain(|key, _| !self.reserved.contains(&key.as_str()));
            figment::value::Value::from(dict)
                .deserialize()
                .map_err(|e| self.reserved_error(e))?
        };
        if let Err(e) = params.validate() {
            return Err(Error::Config(format!(
                "`{}.{}`: {} (in {})",
                self.path,
                e.key,
                e.message,
                self.source_of(&e.key)
            )));
        }
        let bases: Vec<(&'static str, PathBuf)> = params
            .paths_mut()
            .into_iter()
            .map(|(key, _)| (key, self.base_dir_of(key)))
            .collect();
        for ((_, path), (_, base)) in params.paths_mut().into_iter().zip(bases) {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = base.join(&*path);
            }
        }
        Ok(params)
    }

    /// An error of the parameters read without the reserved keys: with the source of the value
    /// (which that path loses) and, for an unknown key, the reserved keys named too.
    fn reserved_error(&self, error: figment::Error) -> Error {
        let unknown = error
            .clone()
            .into_iter()
            .any(|e| matches!(e.kind, figment::error::Kind::UnknownField(..)));
        let with_sources: Vec<figment::Error> = error
            .into_iter()
            .map(|mut e| {
                if e.metadata.is_none() {
                    let key = match (&e.kind, e.path.first()) {
                        (figment::error::Kind::UnknownField(field, _), _) => Some(field.clone()),
                        (_, Some(first)) => Some(first.clone()),
                        _ => None,
                    };
                    let full = key.map_or(self.path.clone(), |k| format!("{}.{k}", self.path));
                    e.metadata = self.root.find_metadata(&full).cloned();
                }
                e
            })
            .collect();
        let mut errors = with_sources.into_iter();
        let Some(mut first) = errors.next() else {
            return Error::Config(format!("`{}`: invalid parameters", self.path));
        };
        for e in errors {
            first = first.chain(e);
        }
        let message = from_figment(first, &self.path).to_string();
        if unknown {
            Error::Config(format!(
                "{message} (and the keys every evaluator takes: {})",
                self.reserved.join(", ")
            ))
        } else {
            Error::Config(message)
        }
    }

    /// Where the value of `key` in this section came from, or "the component's defaults".
    pub fn source_of(&self, key: &str) -> String {
        // figment finds tables, not array elements: `augment[2].p` was set wherever `augment` was
        let key = key.split('[').next().unwrap_or(key);
        let full = format!("{}.{}", self.path, key);
        match self.root.find_metadata(&full) {
            Some(metadata) => {
                let keys: Vec<String> = full.split('.').map(str::to_string).collect();
                describe_source(metadata, &keys)
            }
            None => "the component's defaults".to_string(),
        }
    }

    /// The folder relative paths in `key` are resolved against: that of the file that set it,
    /// or the current folder.
    pub fn base_dir_of(&self, key: &str) -> PathBuf {
        let full = format!("{}.{}", self.path, key);
        match self
            .root
            .find_metadata(&full)
            .and_then(|m| m.source.as_ref())
        {
            Some(figment::Source::File(file)) => file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            _ => PathBuf::from("."),
        }
    }
}
