//! Logging through tracing-subscriber: `RUST_LOG` when set, else a level from `-v`/`-q`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to standard error. `verbosity` is the count of `-v`
/// minus the count of `-q` (0: info for rossl, warnings for dependencies).
pub fn init(verbosity: i8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => {
            let rossl = match verbosity {
                i8::MIN..=-2 => "error",
                -1 => "warn",
                0 => "info",
                1 => "debug",
                _ => "trace",
            };
            let others = if verbosity >= 2 { "debug" } else { "warn" };
            EnvFilter::new(format!("{others},rossl={rossl},rossl_runtime={rossl},rossl_datasets={rossl},rossl_views={rossl},rossl_encoders={rossl},rossl_losses={rossl},rossl_attacks={rossl},rossl_evaluators={rossl}"))
        }
    };
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| rossl_runtime::progress::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
