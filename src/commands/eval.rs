//! `rossl eval`: evaluate a trained run again, possibly with other evaluation settings.

use crate::commands::args::ConfigArgs;
use crate::commands::session::prepare;
use crate::terminal;
use clap::Args;
use rossl_runtime::config::ConfigSources;
use rossl_runtime::eval::evaluate_run;
use rossl_runtime::run_dir::{files, RunDir};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rossl eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run folder.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Extra config files and overrides (evaluation settings; training settings must not change).
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Make a failed sanity check an error exit.
    #[arg(long)]
    pub strict: bool,
}

/// Runs `rossl eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let run_dir = RunDir::open(&args.run_dir)?;
    let own = rossl_runtime::plugins::resolve(&ConfigSources::new(
        vec![run_dir.file(files::CONFIG)],
        vec![],
    ))?;
    let session = prepare(&args.config, None, Some(&args.run_dir))?;
    let asm = &session.assembly;
    if asm.config.digest()? != own.digest()? {
        anyhow::bail!(
            "the overrides change how the encoder of {} was trained ({}); `rossl eval` only takes evaluation settings (the `eval` table, `data.test_subset`, `threads`)",
            run_dir.path().display(),
            asm.config
                .training_difference(&own)?
                .map(|d| d.between("the overrides", "the run"))
                .unwrap_or_else(|| "a trained component comes from another plugin library".into())
        );
    }
    if asm.config.run.eval.evaluators.is_empty() {
        anyhow::bail!(
            "`eval.evaluators` is empty (in {}): there is nothing to evaluate; name at least one evaluator (`rossl plugins` lists them)",
            asm.config.source_of("eval.evaluators")
        );
    }
    crate::commands::runner::restore_trained(asm, &run_dir, "evaluating")?;
    let summary = match run_dir.read_summary()? {
        Some(summary) => summary,
        None => anyhow::bail!("{} has no training summary yet", run_dir.path().display()),
    };
    let results = evaluate_run(asm, &run_dir, &summary)?;
    terminal::print_results(&results);
    println!(
        "\nresults written to {}",
        run_dir.file(files::RESULTS).display()
    );
    let failed = terminal::failed_checks(&results);
    if (args.strict || asm.config.run.eval.strict) && failed > 0 {
        eprintln!("error: {failed} sanity check(s) failed (strict mode)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
