//! `rossl eval`: evaluate a trained run again, possibly with other evaluation settings. The run's
//! own results stay as they are: an evaluation under other settings goes to its own folder,
//! `evaluations/<eval digest>/`, and one that already finished is shown, not computed again.

use crate::commands::args::ConfigArgs;
use crate::commands::session::prepare;
use crate::terminal;
use clap::Args;
use rossl_runtime::config::ConfigSources;
use rossl_runtime::eval::evaluate_run_into;
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
    let place = crate::commands::runner::evaluation_place(asm, &run_dir)?;
    let written = place.dir.file(files::RESULTS);
    let results = match place.finished {
        Some(results) => {
            terminal::print_results(&results);
            println!(
                "\nalready evaluated with these settings: {} (nothing computed again; to compute it again, move that file away)",
                written.display()
            );
            results
        }
        None => {
            let summary = match run_dir.read_summary()? {
                Some(summary) => summary,
                None => anyhow::bail!("{} has no training summary yet", run_dir.path().display()),
            };
            let results = evaluate_run_into(asm, &run_dir, &place.dir, &summary)?;
            terminal::print_results(&results);
            println!("\nresults written to {}", written.display());
            if place.is_additional() {
                println!(
                    "(beside the run's own evaluation, whose settings are those of its {}: these are not)",
                    files::CONFIG
                );
            }
            results
        }
    };
    let failed = terminal::failed_checks(&results);
    if (args.strict || asm.config.run.eval.strict) && failed > 0 {
        eprintln!("error: {failed} sanity check(s) failed (strict mode)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
