//! Configuration errors that name the key and where its value came from.

use crate::suggest::did_you_mean;
use crate::Error;
use figment::error::Kind;
use figment::Metadata;

/// The prefix of the environment variables that set configuration keys (`ROSSL_TRAIN__EPOCHS`).
pub const ENV_PREFIX: &str = "ROSSL_";

/// Describes where a value came from: a file, an environment variable, a command-line argument
/// or the built-in defaults. `keys` is the value's path (for environment variables, which name
/// the variable).
pub fn describe_source(metadata: &Metadata, keys: &[String]) -> String {
    if let Some(figment::Source::File(path)) = &metadata.source {
        return format!("file `{}`", path.display());
    }
    if metadata.name.contains("environment") {
        let variable: Vec<String> = keys.iter().map(|k| k.to_uppercase()).collect();
        return format!(
            "environment variable `{}{}`",
            ENV_PREFIX,
            variable.join("__")
        );
    }
    metadata.name.to_string()
}

/// Where the value at the dotted `key` of `figment` came from ("built-in defaults" when only the
/// defaults set it).
pub fn source_of(figment: &figment::Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(m) => {
            let keys: Vec<String> = key.split('.').map(str::to_string).collect();
            describe_source(m, &keys)
        }
        None => "built-in defaults".to_string(),
    }
}

fn join_path(prefix: &str, path: &[String]) -> String {
    let mut parts: Vec<&str> = prefix.split('.').filter(|s| !s.is_empty()).collect();
    parts.extend(path.iter().map(String::as_str));
    // figment puts the profile first when it knows it
    if parts.first() == Some(&"default") && !prefix.starts_with("default") {
        parts.remove(0);
    }
    parts.join(".")
}

/// Converts a figment error (possibly several) into an [`Error::Config`] whose lines each name
/// the full key (`prefix` + the error's path) and the source of the offending value.
pub fn from_figment(error: figment::Error, prefix: &str) -> Error {
    let mut lines = Vec::new();
    for e in error {
        let key = join_path(prefix, &e.path);
        let source = e
            .metadata
            .as_ref()
            .map(|m| {
                let keys: Vec<String> = key.split('.').map(str::to_string).collect();
                format!(" (in {})", describe_source(m, &keys))
            })
            .unwrap_or_default();
        let at = |k: &str| {
            if k.is_empty() {
                "the configuration".to_string()
            } else {
                format!("`{k}`")
            }
        };
        let line = match &e.kind {
            Kind::UnknownField(field, expected) => {
                // figment's path may or may not end with the unknown field itself
                let (container, full) = match key.rsplit_once('.') {
                    Some((parent, last)) if last == field => (parent.to_string(), key.clone()),
                    _ if key == *field => (String::new(), key.clone()),
                    _ if key.is_empty() => (String::new(), field.clone()),
                    _ => (key.clone(), format!("{key}.{field}")),
                };
                format!(
                    "unknown key `{full}`{source}{}; {} takes: {}",
                    did_you_mean(field, expected.iter().copied()),
                    if container.is_empty() {
                        "the top level".to_string()
                    } else {
                        format!("`[{container}]`")
                    },
                    expected.join(", ")
                )
            }
            Kind::MissingField(field) => {
                format!(
                    "missing key `{}`{source}",
                    join_path(&key, &[field.to_string()])
                )
            }
            Kind::InvalidType(actual, expected) => {
                format!("{}: expected {expected}, found {actual}{source}", at(&key))
            }
            Kind::InvalidValue(actual, expected) => {
                format!(
                    "{}: invalid value {actual}, expected {expected}{source}",
                    at(&key)
                )
            }
            Kind::UnknownVariant(variant, expected) => format!(
                "{}: unknown value `{variant}`{source}{}; expected one of: {}",
                at(&key),
                did_you_mean(variant, expected.iter().copied()),
                expected.join(", ")
            ),
            Kind::Message(message) => format!("{}: {message}{source}", at(&key)),
            other => format!("{}: {other}{source}", at(&key)),
        };
        lines.push(line);
    }
    Error::Config(lines.join("\n"))
}
