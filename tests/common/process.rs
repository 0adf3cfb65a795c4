//! Running the `rossl` binary as users do: default verbosity, standard output and error sent to a
//! file, a pipe or a terminal, under a watchdog that kills it and fails the test when it does not
//! exit. A hang is a failure, not a slow test: the limits are far above any normal run.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the command's standard output and error go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Both into one file (`cmd > log 2>&1`, as `nohup` and batch jobs do).
    File,
    /// Both into a pipe that is read as it fills (`cmd 2>&1 | tee log`).
    Pipe,
    /// Both onto a pseudo-terminal (an interactive shell): progress bars are drawn.
    Terminal,
}

impl Output {
    /// The three ways.
    pub const ALL: [Output; 3] = [Output::File, Output::Pipe, Output::Terminal];
}

/// What a finished command did.
#[derive(Debug)]
pub struct Finished {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output and error, interleaved as the reader saw them.
    pub output: String,
}

/// The environment variables that make every run of the documented commands test-sized: a layer
/// of the configuration (below `--set`, above files), so commands run exactly as written.
pub const TEST_SIZE_ENV: &[(&str, &str)] = &[
    ("ROSSL_DATA__TRAIN_SUBSET", "96"),
    ("ROSSL_DATA__TEST_SUBSET", "20"),
    ("ROSSL_DATA__BATCH_SIZE", "8"),
    ("ROSSL_VIEWS__MULTI-CROP__VIEWS", "4"),
    ("ROSSL_TRAIN__MAX_BATCHES", "2"),
    ("ROSSL_TRAIN__EPOCHS", "3"),
    ("ROSSL_EVAL__STEPS", "2"),
    ("ROSSL_EVAL__RESTARTS", "1"),
    ("ROSSL_EVAL__APGD_STEPS", "3"),
    ("ROSSL_EVAL__SQUARE_QUERIES", "20"),
    ("ROSSL_EVAL__CHECK_IMAGES", "8"),
    ("ROSSL_EVAL__LINEAR-PROBE__EPOCHS", "2"),
    ("ROSSL_EVAL__ROBUST-LINEAR-PROBE__CLEAN_EPOCHS", "1"),
    ("ROSSL_EVAL__ROBUST-LINEAR-PROBE__ADVERSARIAL_EPOCHS", "1"),
    ("ROSSL_EVAL__FINETUNE__EPOCHS", "1"),
    ("ROSSL_EVAL__FINETUNE__STEPS", "1"),
];

/// Drains `reader` on a thread; the text read comes back when the writer side closes.
fn drain(mut reader: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break, // EOF, or EIO once the terminal's last user has gone
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
        bytes
    })
}

/// A pseudo-terminal of 24 x 120 cells: (master, slave).
fn pseudo_terminal() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new file descriptors into `master` and `slave`; the name
    // pointer may be null, and `size` outlives the call.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Waits for `child` at most `limit`; kills it when the limit passes.
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for rossl") {
            return Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs `program` with `args` in `cwd` with extra `env`, its output going to `output`; panics
/// with the output so far when it does not exit within `limit`. `RUST_LOG` is removed (default
/// verbosity).
pub fn run_watched(
    program: &Path,
    args: &[&str],
    cwd: &Path,
    env: &[(&str, &str)],
    output: Output,
    limit: Duration,
) -> Finished {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let (child, reader, log_file) = match output {
        Output::File => {
            let path = std::env::temp_dir().join(format!(
                "rossl-watched-{}-{:?}.log",
                std::process::id(),
                Instant::now()
            ));
            let file = std::fs::File::create(&path).expect("log file");
            command
                .stdout(file.try_clone().expect("clone log file"))
                .stderr(file);
            (command.spawn(), None, Some(path))
        }
        Output::Pipe => {
            let (read, write) = std::io::pipe().expect("pipe");
            command
                .stdout(write.try_clone().expect("clone pipe"))
                .stderr(write);
            let child = command.spawn();
            drop(command); // our copies of the write end, so the reader sees EOF at exit
            (child, Some(drain(read)), None)
        }
        Output::Terminal => {
            let (master, slave) = pseudo_terminal();
            command
                .stdout(slave.try_clone().expect("clone terminal"))
                .stderr(slave);
            let child = command.spawn();
            drop(command);
            (child, Some(drain(std::fs::File::from(master))), None)
        }
    };
    let mut child = child.unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let status = wait_or_kill(&mut child, limit);
    let text = match (reader, &log_file) {
        (Some(reader), _) => String::from_utf8_lossy(&reader.join().expect("reader")).into_owned(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let _ = std::fs::remove_file(path);
            text
        }
        (None, None) => String::new(),
    };
    let Some(status) = status else {
        panic!(
            "`{} {}` with its output to a {output:?} did not exit within {limit:?} and was killed (a hang). Its output:\n{text}",
            program.display(),
            args.join(" ")
        );
    };
    Finished {
        success: status.success(),
        code: status.code(),
        output: text,
    }
}

/// Runs the `rossl` under test in `dir` with `args`, its output into a file (as batch jobs do),
/// under a watchdog of `limit`.
pub fn rossl_in(dir: &Path, args: &[&str], limit: Duration) -> Finished {
    run_watched(
        Path::new(env!("CARGO_BIN_EXE_rossl")),
        args,
        dir,
        &[],
        Output::File,
        limit,
    )
}
