//! What every training or evaluation command sets up first: configuration, threads, device,
//! components.

use crate::commands::args::ConfigArgs;
use rossl_runtime::assembly::Assembly;
use rossl_runtime::config::ConfigSources;
use rossl_runtime::device::{configure_threads, select_device};
use rossl_runtime::run_dir::files;
use std::path::Path;

/// A configuration turned into components, ready to train or evaluate.
pub struct Session {
    /// The components.
    pub assembly: Assembly,
    /// The sources the configuration came from.
    pub sources: ConfigSources,
}

/// The sources of a command: with `run_dir`, its `config.toml` comes first; `--out` becomes the
/// last `--set out=...`.
pub fn sources(args: &ConfigArgs, out: Option<&Path>, run_dir: Option<&Path>) -> ConfigSources {
    let mut files = Vec::new();
    if let Some(dir) = run_dir {
        files.push(dir.join(files::CONFIG));
    }
    files.extend(args.files.iter().cloned());
    let mut sets = args.sets.clone();
    if let Some(out) = out {
        sets.push(format!(
            "out={}",
            toml::Value::String(out.display().to_string())
        ));
    }
    ConfigSources::new(files, sets)
}

/// Resolves the configuration, configures threads, chooses the device and builds the components.
pub fn prepare(
    args: &ConfigArgs,
    out: Option<&Path>,
    run_dir: Option<&Path>,
) -> anyhow::Result<Session> {
    let sources = sources(args, out, run_dir);
    build(sources)
}

/// Builds a session from configuration sources.
pub fn build(sources: ConfigSources) -> anyhow::Result<Session> {
    let resolved = rossl_runtime::plugins::resolve(&sources)?;
    let threads = configure_threads(resolved.run.threads);
    rossl_kernels::isa::limit(resolved.run.cpu_isa.limit());
    rossl_kernels::pool::set_wait(resolved.run.pool_wait.kernels());
    let device = select_device(resolved.run.device)?;
    tracing::info!(
        threads,
        isa = %rossl_kernels::isa::active(),
        device = %device.description,
        "set up"
    );
    let assembly = Assembly::build(resolved, device)?;
    Ok(Session { assembly, sources })
}
