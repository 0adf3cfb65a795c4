//! The plugin libraries a configuration names (`plugins.load`), found without loading them.

use super::layers::{ConfigSources, SetArgument, ENV_PREFIX};
use crate::Result;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use rossl_api::provenance::{describe_source, from_figment};
use std::path::{Path, PathBuf};

/// A library named by `plugins.load`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginLibrary {
    /// Its path (canonical when it exists).
    pub path: PathBuf,
    /// Where it was named: a file, an environment variable or `--set`.
    pub source: String,
}

/// The libraries of `plugins.load`, in order. Every layer adds its own list (a later file does
/// not replace an earlier file's libraries), and a relative path is taken from the folder of the
/// file that names it (from the current folder for the environment and `--set`). A library named
/// twice is listed once.
pub fn plugin_libraries(sources: &ConfigSources) -> Result<Vec<PluginLibrary>> {
    // Every layer must be readable first, so that a missing, unreadable or malformed file is
    // reported as what it is (naming the file), not as a problem with `plugins.load`.
    sources.figment()?;
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
    let mut found: Vec<PluginLibrary> = Vec::new();
    for layer in &layers {
        let source = layer
            .find_metadata("plugins.load")
            .map(|m| describe_source(m, &["plugins".into(), "load".into()]))
            .unwrap_or_else(|| "built-in defaults".into());
        for path in layer_paths(layer)? {
            let path = path.canonicalize().unwrap_or(path);
            if !found.iter().any(|l| l.path == path) {
                found.push(PluginLibrary {
                    path,
                    source: source.clone(),
                });
            }
        }
    }
    Ok(found)
}

/// The library paths one layer lists in `plugins.load`, relative ones resolved.
fn layer_paths(layer: &Figment) -> Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = match layer.extract_inner("plugins.load") {
        Ok(p) => p,
        Err(e) if e.missing() => return Ok(Vec::new()),
        Err(e) => return Err(from_figment(e, "plugins.load")),
    };
    let base = match layer
        .find_metadata("plugins.load")
        .and_then(|m| m.source.as_ref())
    {
        Some(figment::Source::File(file)) => {
            file.parent().map(Path::to_path_buf).unwrap_or_default()
        }
        _ => PathBuf::from("."),
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
