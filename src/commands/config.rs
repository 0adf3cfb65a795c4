//! `rossl config`: the merged configuration.

use crate::commands::args::ConfigArgs;
use clap::Args;
use rossl_runtime::config::{ConfigSources, ResolvedConfig};
use std::process::ExitCode;

/// Arguments of `rossl config`.
#[derive(Debug, Args)]
pub struct ConfigCommandArgs {
    /// Config files and overrides.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Add a comment to every value saying where it came from.
    #[arg(long)]
    pub explain: bool,
}

/// Stacks and checks the configuration named by `args`.
pub fn resolve(args: &ConfigArgs) -> anyhow::Result<ResolvedConfig> {
    let sources = ConfigSources::new(args.files.clone(), args.sets.clone());
    Ok(rossl_runtime::plugins::resolve(&sources)?)
}

/// Runs `rossl config`.
pub fn run(args: &ConfigCommandArgs) -> anyhow::Result<ExitCode> {
    let resolved = resolve(&args.config)?;
    print!("{}", resolved.to_toml(args.explain)?);
    Ok(ExitCode::SUCCESS)
}
