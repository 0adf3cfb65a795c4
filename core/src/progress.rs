//! Progress bars for long work, drawn on standard error only when it is a terminal, and a way for
//! log lines to print without tearing them.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::OnceLock;

fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A bar of `total` steps labelled `label`, showing position, rate, ETA and a message. Hidden when
/// standard error is not a terminal.
pub fn bar(total: u64, label: &str) -> ProgressBar {
    let bar = multi().add(ProgressBar::new(total));
    let style =
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

/// Runs `f` with the bars cleared (for printing log lines).
pub fn suspend<F: FnOnce() -> R, R>(f: F) -> R {
    multi().suspend(f)
}
