//! `rossl plugins`: the registered components.

use clap::Args;
use rossl_api::registry::{self, Kind};
use std::process::ExitCode;

/// Arguments of `rossl plugins`.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Only this kind: dataset, encoder, views, loss, attack or evaluator.
    #[arg(long)]
    pub kind: Option<String>,
    /// Print a JSON array of {kind, name, summary, defaults, location}.
    #[arg(long)]
    pub json: bool,
    /// Load a plugin library first (repeatable; needs a binary built with `--features dynamic`).
    #[arg(long, value_name = "PATH")]
    pub load: Vec<std::path::PathBuf>,
}

/// One component, as listed.
#[derive(Debug, serde::Serialize)]
pub struct Listing {
    /// Its kind.
    pub kind: Kind,
    /// Its registered name.
    pub name: String,
    /// One line saying what it is.
    pub summary: String,
    /// Its default parameters.
    pub defaults: toml::Table,
    /// Where it was registered.
    pub location: String,
}

/// Every registered component (of `kind`, if given), sorted by kind then name.
pub fn listings(kind: Option<Kind>) -> anyhow::Result<Vec<Listing>> {
    registry::check_duplicates()?;
    let kinds: Vec<Kind> = kind.map(|k| vec![k]).unwrap_or_else(|| Kind::ALL.to_vec());
    let mut out = Vec::new();
    for kind in kinds {
        for entry in kind.entries() {
            out.push(Listing {
                kind,
                name: entry.name.to_string(),
                summary: entry.summary.to_string(),
                defaults: (entry.defaults)()?,
                location: entry.location.to_string(),
            });
        }
    }
    Ok(out)
}

/// Runs `rossl plugins`.
pub fn run(args: &PluginsArgs) -> anyhow::Result<ExitCode> {
    rossl_runtime::plugins::load_all(&args.load)?;
    let kind = args.kind.as_deref().map(str::parse::<Kind>).transpose()?;
    let all = listings(kind)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut current = None;
    for item in &all {
        if current != Some(item.kind) {
            println!("{}{}", if current.is_some() { "\n" } else { "" }, item.kind);
            current = Some(item.kind);
        }
        println!("  {:<22} {}", item.name, item.summary);
        if !item.defaults.is_empty() {
            let defaults = rossl_runtime::config::inline_table(&item.defaults);
            println!("  {:<22} defaults: {}", "", defaults);
        }
    }
    if all.is_empty() {
        println!("no components registered");
    }
    Ok(ExitCode::SUCCESS)
}
