//! The layers of a configuration and how they stack.

use super::schema::RunConfig;
use crate::{Error, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use rossl_api::provenance::from_figment;
use std::path::PathBuf;

/// The prefix of environment variables that set configuration keys.
pub use rossl_api::provenance::ENV_PREFIX;

/// Everything a configuration is assembled from, in order of increasing precedence after the
/// built-in defaults.
#[derive(Clone, Debug, Default)]
pub struct ConfigSources {
    /// Config files, applied in this order.
    pub files: Vec<PathBuf>,
    /// `key=value` assignments from `--set`, applied in this order after the environment.
    pub sets: Vec<String>,
    /// Whether `ROSSL_` environment variables are read (the command line always reads them).
    pub use_env: bool,
}

impl ConfigSources {
    /// Sources from files and `--set` arguments, reading the environment.
    pub fn new(files: Vec<PathBuf>, sets: Vec<String>) -> Self {
        ConfigSources {
            files,
            sets,
            use_env: true,
        }
    }

    /// Stacks the layers into a figment. Files that do not exist and malformed `--set`
    /// arguments are errors here; type and key errors come when the result is extracted.
    pub fn figment(&self) -> Result<Figment> {
        let mut figment = Figment::from(Defaults);
        for file in &self.files {
            if !file.is_file() {
                return Err(Error::Config(if file.exists() {
                    format!("config file `{}` is not a file (a folder?)", file.display())
                } else {
                    format!("config file `{}` not found", file.display())
                }));
            }
            check_toml_syntax(file)?;
            figment = figment.merge(Toml::file_exact(file));
        }
        if self.use_env {
            figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        }
        for set in &self.sets {
            figment = figment.merge(SetArgument::parse(set)?);
        }
        // Surface provider errors (unreadable files, bad environment values) now.
        if let Err(e) = figment.find_value("") {
            if !e.missing() {
                return Err(from_figment(e, ""));
            }
        }
        Ok(figment)
    }
}

fn check_toml_syntax(file: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::io(format!("reading config file `{}`", file.display()), e))?;
    toml::from_str::<toml::Table>(&text)
        .map(|_| ())
        .map_err(|e| {
            Error::Config(format!(
                "config file `{}` is not valid TOML: {e}",
                file.display()
            ))
        })
}

/// The built-in defaults, as a provider named "built-in defaults".
struct Defaults;

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named("built-in defaults")
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Serialized::defaults(RunConfig::default()).data()
    }
}

/// One `--set key=value` argument, as a provider that names itself in errors.
#[derive(Debug, Clone)]
pub struct SetArgument {
    argument: String,
    key: String,
    value: toml::Value,
}

impl SetArgument {
    /// Parses `key=value`; the value uses TOML syntax (`5`, `0.1`, `"text"`, `[1, 2]`,
    /// `{ a = 1 }`), and a bare word that is not valid TOML is taken as a string.
    pub fn parse(argument: &str) -> Result<Self> {
        let (key, raw) = argument.split_once('=').ok_or_else(|| {
            Error::Config(format!(
                "command line `--set {argument}`: expected KEY=VALUE, e.g. --set train.epochs=5"
            ))
        })?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(Error::Config(format!(
                "command line `--set {argument}`: `{key}` is not a key (dotted names, e.g. optim.lr)"
            )));
        }
        let raw = raw.trim();
        let value = match toml::from_str::<toml::Table>(&format!("value = {raw}")) {
            Ok(mut table) => table
                .remove("value")
                .unwrap_or(toml::Value::String(String::new())),
            Err(error) => {
                let bare = !raw.is_empty()
                    && raw
                        .chars()
                        .all(|c| c.is_alphanumeric() || "-_./:+".contains(c));
                if bare {
                    toml::Value::String(raw.to_string())
                } else {
                    return Err(Error::Config(format!(
                        "command line `--set {argument}`: the value is not valid TOML ({})",
                        error.message()
                    )));
                }
            }
        };
        Ok(SetArgument {
            argument: argument.to_string(),
            key: key.to_string(),
            value,
        })
    }
}

impl Provider for SetArgument {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("command line `--set {}`", self.argument))
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Serialized::default(&self.key, &self.value).data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_use_toml_syntax_with_bare_word_fallback() {
        assert_eq!(
            SetArgument::parse("a.b=5").unwrap().value,
            toml::Value::Integer(5)
        );
        assert_eq!(
            SetArgument::parse("a=0.5").unwrap().value,
            toml::Value::Float(0.5)
        );
        assert_eq!(
            SetArgument::parse("a=resnet-small").unwrap().value,
            toml::Value::String("resnet-small".into())
        );
        assert_eq!(
            SetArgument::parse("a=\"x y\"").unwrap().value,
            toml::Value::String("x y".into())
        );
        assert!(SetArgument::parse("a=[1, 2").is_err());
        assert!(SetArgument::parse("novalue").is_err());
        assert!(SetArgument::parse("a..b=1").is_err());
    }
}
