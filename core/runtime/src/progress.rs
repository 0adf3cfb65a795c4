//! Progress on long work, and the one writer that log lines go through.
//!
//! On a terminal, progress is an indicatif bar; elsewhere (a file, a pipe, a batch job) it is a
//! plain log line every [`LINE_INTERVAL`], so `nohup` and Slurm logs show progress too.
//!
//! Log lines and bars share standard error. The only place that clears the bars around a write is
//! [`LogWriter`], the writer of the tracing subscriber; nothing else calls
//! `MultiProgress::suspend`. indicatif takes a lock there, so a second, nested suspend on the same
//! thread would wait for ever: [`LogWriter`] also refuses to nest (a write from inside a suspended
//! section goes straight to standard error).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often a progress line is logged when standard error is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(30);

/// Whether bars are drawn: standard error is a terminal.
fn drawn() -> bool {
    static DRAWN: OnceLock<bool> = OnceLock::new();
    *DRAWN.get_or_init(|| std::io::stderr().is_terminal())
}

fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

thread_local! {
    /// Set while this thread is inside [`suspended`].
    static SUSPENDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the bars cleared. Re-entrant: inside a suspended section it just runs `f`.
fn suspended<R>(f: impl FnOnce() -> R) -> R {
    if !drawn() || SUSPENDED.with(Cell::get) {
        return f();
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SUSPENDED.with(|s| s.set(false));
        }
    }
    multi().suspend(|| {
        SUSPENDED.with(|s| s.set(true));
        let _reset = Reset;
        f()
    })
}

/// The writer of log lines: standard error, with the progress bars cleared around each write.
/// Use it as a tracing subscriber's writer (`.with_writer(|| LogWriter)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspended(|| std::io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        suspended(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Progress of `total` steps of work labelled `label`: a bar on a terminal, else a log line every
/// [`LINE_INTERVAL`] and one at the end.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    position: u64,
    message: String,
    started: Instant,
    last_line: Instant,
}

/// Progress of `total` steps labelled `label` (see [`Progress`]).
pub fn bar(total: u64, label: &str) -> Progress {
    let bar = drawn().then(|| {
        let bar = multi().add(ProgressBar::new(total));
        let style =
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar
    });
    let now = Instant::now();
    Progress {
        bar,
        label: label.to_string(),
        total,
        position: 0,
        message: String::new(),
        started: now,
        last_line: now,
    }
}

impl Progress {
    /// Sets the position (when work resumes part-way).
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }

    /// Sets the message shown after the count.
    pub fn set_message(&mut self, message: impl Into<String>) {
        self.message = message.into();
        if let Some(bar) = &self.bar {
            bar.set_message(self.message.clone());
        }
    }

    /// Advances by `n` steps.
    pub fn inc(&mut self, n: u64) {
        self.position += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.last_line.elapsed() >= LINE_INTERVAL => {
                self.last_line = Instant::now();
                tracing::info!("{}", self.line());
            }
            None => {}
        }
    }

    /// The plain-text progress line: `label: 12/36 (33%) message, 41 s, eta 82 s`.
    pub fn line(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let fraction = self.position as f64 / self.total.max(1) as f64;
        let eta = if self.position > 0 && self.position < self.total {
            format!(", eta {:.0} s", elapsed / fraction - elapsed)
        } else {
            String::new()
        };
        let message = if self.message.is_empty() {
            String::new()
        } else {
            format!(" {}", self.message)
        };
        format!(
            "{}: {}/{} ({:.0}%){message}, {elapsed:.0} s{eta}",
            self.label,
            self.position,
            self.total,
            100.0 * fraction
        )
    }

    /// Removes the bar (the caller logs its own summary).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
