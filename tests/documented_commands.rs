//! Every shell command in README.md and docs/**/*.md runs here, as written, in the order its page
//! gives, each under a watchdog: a documented command that fails or hangs fails this test.
//!
//! How they run:
//! - in a fresh folder per page, holding links to the repository's `configs/`, `docs/` and
//!   `tests/`, with the `rossl` under test first on `PATH`; `cargo run --release --` and
//!   `target/release/rossl` mean that same binary;
//! - at test size: the environment variables of [`TEST_SIZE_ENV`] are a configuration layer
//!   (below `--set`, above files), so every run trains and evaluates for seconds;
//! - with the paths of data that cannot be downloaded here replaced by files the test writes in
//!   the real format ([`SUBSTITUTIONS`]);
//! - except the commands of [`NOT_RUN`], each with the reason it cannot run in a test (and where
//!   it is exercised instead). A command that matches no rule fails the test: a new documented
//!   command is either run or given a reason; those of [`REDUCED`] run in a smaller form, with
//!   the reason; a command of [`ONCE`] that ran already, word for word, is not run again.

mod common;
use common::process::{run_watched, Output, TEST_SIZE_ENV};
use common::temp_dir;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Commands (by prefix) that are not run, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "git clone",
        "fetches this repository: the test runs inside it",
    ),
    (
        "cargo build --release",
        "builds the binary this test runs (cargo builds it before the tests)",
    ),
    ("cargo test", "the test suite itself"),
    (
        ".ci/cuda-build",
        "downloads the CUDA toolkit from PyPI (gigabytes); run by hand, see docs/cuda.md",
    ),
    (
        "bash gpu-bundle/gpu-check",
        "needs an NVIDIA GPU; .ci/gpu-check runs it on a GPU machine",
    ),
    (
        "python3 tests/reference/torch_reference.py",
        "needs PyTorch, which rossl does not depend on (docs/performance.md gives its figures)",
    ),
    (
        "target/release/rossl plugins --load",
        "needs the release build of the dynamic host (minutes); tests/dynamic/tests/host.rs runs \
         the same command on the test build's dynamic host, with no LD_LIBRARY_PATH",
    ),
];

/// Commands (by prefix) that run in a reduced form, the arguments added, and why.
const REDUCED: &[(&str, &str, &str)] = &[
    (
        "rossl eval runs/latest --set 'eval.preset=\"autoattack\"'",
        " --set data.test_subset=4",
        "AutoAttack's budgets are fixed (100 iterations per attack and target class, 5000 Square \
         queries): on 100 images it took 226 s on a 2-core AMD EPYC; the test runs the preset on \
         4 images, and tests/eval_rows.rs and tests/autoattack_reference.rs check its attacks",
    ),
    (
        "rossl study configs/studies/",
        " --dry-run",
        "the shipped studies train 27, 12, 24 and 9 runs (minutes each at test size): the test checks \
         that they read, expand and plan; tests/study.rs and the labs run studies end to end, \
         locally and on Slurm, with every budget mode",
    ),
    (
        "rossl run configs/methods/cf-amc-ssl.toml --set data.cifar10.root=",
        " --set encoder.name=resnet-small",
        "with the paper's ResNet-18 this one command took 203 s of the test's 10 minutes on a \
         2-core Zen 1 EPYC, most of it the strong evaluation: the test keeps the paper's config, \
         the CIFAR-10 reader and the evaluation, with the small ResNet; `rossl bench --workload \
         resnet18` (docs/performance.md) runs ResNet-18's training step, and tests/encoders.rs \
         checks its parameters against PyTorch's names and shapes",
    ),
];

/// Commands (by prefix) whose outcome does not depend on the page they are on: one that ran
/// already, word for word, is not run again.
const ONCE: &[&str] = &["rossl bench ", "rossl study "];

/// Paths in documented commands that stand for data this machine cannot download, and the
/// folder (under the page's working folder) where the test writes such data instead.
const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("/data/cifar-10-batches-bin", "cifar-10-batches-bin"),
    ("/data/mnist", "mnist"),
    ("/data/CIFAR-10-C", "CIFAR-10-C"),
    ("/data/stl10_binary", "stl10_binary"),
];

/// The limit of one documented command: a hang, not a slow command, trips it.
const LIMIT: Duration = Duration::from_secs(600);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pages whose commands run: README.md and every Markdown file under docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let mut folders = vec![repo().join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// The commands of the ```sh blocks of `text`, continuation lines joined, comments and blank
/// lines left out: (line number, command).
fn shell_commands(text: &str) -> Vec<(usize, String)> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_block = !in_block && matches!(trimmed, "```sh" | "```bash" | "```shell");
            continue;
        }
        if !in_block || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (start, mut command) = pending.take().unwrap_or((i + 1, String::new()));
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                command.push_str(head);
                pending = Some((start, command));
            }
            None => {
                command.push_str(trimmed);
                commands.push((start, command));
            }
        }
    }
    commands
}

/// The reason `command` is not run, if it is not.
fn not_run(command: &str) -> Option<&'static str> {
    NOT_RUN
        .iter()
        .find(|(prefix, _)| command.starts_with(prefix))
        .map(|(_, why)| *why)
}

/// `command` without its trailing comment, the rossl under test for every spelling of rossl.
fn normalized(command: &str) -> String {
    let command = match command.split_once(" #") {
        Some((head, _)) => head,
        None => command,
    };
    command
        .trim()
        .replace("cargo run --release -- ", "rossl ")
        .replace("target/release/rossl ", "rossl ")
}

/// `command` as the test runs it: [`normalized`], the [`REDUCED`] arguments added, the data
/// substitutions applied.
fn as_run(command: &str, workdir: &Path) -> String {
    let mut command = normalized(command);
    if let Some((_, extra, _)) = REDUCED.iter().find(|(p, _, _)| command.starts_with(p)) {
        if !command.contains(extra.trim()) {
            command.push_str(extra);
        }
    }
    for (from, to) in SUBSTITUTIONS {
        command = command.replace(from, &workdir.join(to).display().to_string());
    }
    command
}

/// CIFAR-10 in its binary layout (`data_batch_1..5.bin`, `test_batch.bin`): 40 training images
/// per file and 100 test images, four of each class per file.
fn write_cifar10(folder: &Path) {
    std::fs::create_dir_all(folder).unwrap();
    let record = |label: u8, seed: usize| -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..3072).map(|p| ((p * 7 + seed * 13 + usize::from(label) * 29) % 256) as u8));
        r
    };
    let file = |name: &str, count: usize| {
        let bytes: Vec<u8> = (0..count).flat_map(|i| record((i % 10) as u8, i)).collect();
        std::fs::write(folder.join(name), bytes).unwrap();
    };
    for i in 1..=5 {
        file(&format!("data_batch_{i}.bin"), 40);
    }
    file("test_batch.bin", 100);
}

/// CIFAR-10-C's arrays cut to the first 100 images of severity 1 (`fog.npy`, `contrast.npy`,
/// `labels.npy`; uint8 `.npy` files as published, HWC).
fn write_cifar10_c(folder: &Path) {
    std::fs::create_dir_all(folder).unwrap();
    for (family, step) in [("fog", 3usize), ("contrast", 5)] {
        let pixels: Vec<u8> = (0..100 * 3072).map(|p| ((p * step) % 256) as u8).collect();
        std::fs::write(
            folder.join(format!("{family}.npy")),
            common::npy_u8(&[100, 32, 32, 3], &pixels),
        )
        .unwrap();
    }
    let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    std::fs::write(folder.join("labels.npy"), common::npy_u8(&[100], &labels)).unwrap();
}

/// STL-10's binary files: 20 training and 10 test images (3x96x96, column-major planes, as
/// published), labels 1 to 10.
fn write_stl10(folder: &Path) {
    std::fs::create_dir_all(folder).unwrap();
    let images = |n: usize| -> Vec<u8> { (0..n * 27648).map(|p| ((p * 11) % 256) as u8).collect() };
    let labels = |n: usize| -> Vec<u8> { (0..n).map(|i| (i % 10 + 1) as u8).collect() };
    for (split, n) in [("train", 20), ("test", 10)] {
        std::fs::write(folder.join(format!("{split}_X.bin")), images(n)).unwrap();
        std::fs::write(folder.join(format!("{split}_y.bin")), labels(n)).unwrap();
    }
}

/// A fresh working folder for `page`, with links to the repository's folders, a `bin/rossl`
/// link to the binary under test, and the substituted data.
fn workdir(page: &Path) -> PathBuf {
    let name = page
        .strip_prefix(repo())
        .unwrap()
        .display()
        .to_string()
        .replace(['/', '.'], "-");
    let dir = temp_dir(&format!("docs-{name}"));
    for folder in ["configs", "docs", "tests"] {
        std::os::unix::fs::symlink(repo().join(folder), dir.join(folder)).unwrap();
    }
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rossl"), dir.join("bin/rossl")).unwrap();
    write_cifar10(&dir.join("cifar-10-batches-bin"));
    std::fs::create_dir_all(dir.join("mnist")).unwrap();
    common::write_mnist_files(&dir.join("mnist"), 40, 20);
    write_cifar10_c(&dir.join("CIFAR-10-C"));
    write_stl10(&dir.join("stl10_binary"));
    dir
}

#[test]
fn every_documented_shell_command_runs() {
    let mut ran = 0;
    let mut skipped = Vec::new();
    let mut done: Vec<(String, String)> = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let commands = shell_commands(&text);
        if commands.is_empty() {
            continue;
        }
        let dir = workdir(&page);
        let path = format!(
            "{}:{}",
            dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut env: Vec<(&str, &str)> = TEST_SIZE_ENV.to_vec();
        env.push(("PATH", &path));
        let shown = page.strip_prefix(repo()).unwrap().display().to_string();
        for (line, command) in commands {
            if let Some(why) = not_run(&command) {
                skipped.push(format!("{shown}:{line} `{command}`: {why}"));
                continue;
            }
            assert!(
                command.starts_with("rossl ")
                    || command.starts_with("cargo run --release -- ")
                    || command.contains(" rossl ")
                    || command.starts_with("target/release/rossl "),
                "{shown}:{line}: `{command}` matches no rule of this test: run it as a rossl command, or give it a reason in NOT_RUN"
            );
            let key = normalized(&command);
            if ONCE.iter().any(|p| key.starts_with(p)) {
                if let Some(first) = done.iter().find(|(k, _)| *k == key) {
                    skipped.push(format!("{shown}:{line} `{command}`: ran at {}", first.1));
                    continue;
                }
                done.push((key.clone(), format!("{shown}:{line}")));
            }
            if let Some((_, _, why)) = REDUCED.iter().find(|(p, _, _)| key.starts_with(p)) {
                skipped.push(format!("{shown}:{line} `{command}`: reduced: {why}"));
            }
            let run = as_run(&command, &dir);
            let started = std::time::Instant::now();
            let finished = run_watched(
                Path::new("sh"),
                &["-c", &run],
                &dir,
                &env,
                Output::File,
                LIMIT,
            );
            assert!(
                finished.success,
                "{shown}:{line}: `{command}` (run as `{run}`) exited with {:?}:\n{}",
                finished.code, finished.output
            );
            eprintln!(
                "{shown}:{line}: {:.1} s `{command}`",
                started.elapsed().as_secs_f64()
            );
            ran += 1;
        }
    }
    eprintln!(
        "ran {ran} documented commands; not run or reduced:\n{}",
        skipped.join("\n")
    );
    assert!(ran >= 10, "only {ran} documented commands ran");
}

#[test]
fn shell_blocks_are_read_with_their_continuations_and_without_comments() {
    let text = "intro\n```sh\n# a comment\nrossl run a.toml \\\n  --set x=1\n\nrossl eval b\n```\n```toml\nrossl = 1\n```\n";
    assert_eq!(
        shell_commands(text),
        vec![
            (4, "rossl run a.toml --set x=1".to_string()),
            (7, "rossl eval b".to_string())
        ]
    );
}
