//! Arguments shared by the commands that read a configuration.

use clap::Args;
use std::path::PathBuf;

/// Config files and overrides, shared by the commands that read a configuration.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// Config files, applied in order (later files win).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Override a key with a TOML value, after files and ROSSL_ environment variables
    /// (repeatable): --set train.epochs=5 --set encoder.name=resnet-small
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}
