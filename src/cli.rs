//! Command-line arguments and dispatch.

use crate::commands;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// rossl: robust self-supervised learning research on candle.
#[derive(Debug, Parser)]
#[command(name = "rossl", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every registered component by kind, with its summary and default parameters.
    Plugins(commands::plugins::PluginsArgs),
    /// Print the merged configuration as TOML (--explain: with the source of every value).
    Config(commands::config::ConfigCommandArgs),
    /// Train a configuration, checkpointing every epoch, then evaluate it.
    Run(commands::run::RunArgs),
    /// Evaluate a trained run (again), e.g. with other attacks: other settings than the run's own
    /// write their `results.json` into `RUN/evaluations/DIGEST/`, beside the run's own.
    Eval(commands::eval::EvalArgs),
    /// Write a run's encoder weights alone (PyTorch state_dict names) to a safetensors file.
    Export(commands::export::ExportArgs),
    /// Train and evaluate several method configs under the same overrides; write a comparison.
    Compare(commands::compare::CompareArgs),
    /// Render finished runs (run, study or comparison folders) as one table (Markdown, JSON) and
    /// plots, as `compare` does.
    Report(commands::report::ReportArgs),
    /// Many runs (arms x sweep points x seeds) at an equal budget, locally or on Slurm, with
    /// seed intervals and paired differences.
    Study(crate::study::StudyArgs),
    /// Time the training step against the PyTorch reference's workloads, or the view pipeline.
    Bench(commands::bench::BenchArgs),
    /// Draw a few training images and their views into a PNG grid.
    Views(commands::views::ViewsArgs),
}

/// Parses the command line, runs the command, and turns errors into a message and exit code 1.
pub fn main() -> ExitCode {
    rossl_runtime::device::tune_allocator();
    let cli = Cli::parse();
    crate::logging::init(cli.verbose as i8 - cli.quiet as i8);
    let result = match cli.command {
        Command::Plugins(args) => commands::plugins::run(&args),
        Command::Config(args) => commands::config::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Compare(args) => commands::compare::run(&args),
        Command::Export(args) => commands::export::run(&args),
        Command::Report(args) => commands::report::run(&args),
        Command::Study(args) => crate::study::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Views(args) => commands::views::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
