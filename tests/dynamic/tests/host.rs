//! The dynamic host as users run it: it starts with no LD_LIBRARY_PATH (an rpath relative to the
//! executable, the standard library beside librossl_dylib), and a plugin's attack evaluates a run
//! that was trained without the plugin.

use rossl_dynamic_tests::example_plugin;
use std::path::{Path, PathBuf};
use std::process::Command;

fn host() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rossl-dynamic-host"));
    // cargo sets it for test binaries; users do not
    command.env_remove("LD_LIBRARY_PATH").env_remove("RUST_LOG");
    command
}

fn run(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("start the dynamic host");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rossl-host-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny training run on synthetic data.
const TINY: &str = r#"
device = "cpu"
[method]
name = "tiny"
[data]
name = "synthetic"
batch_size = 8
[data.synthetic]
channels = 1
height = 12
width = 12
train_size = 32
test_size = 16
classes = 4
[views.multi-crop]
views = 2
[encoder.resnet-small]
widths = [4, 8]
hidden = 16
z_dim = 8
[train]
epochs = 1
[eval]
evaluators = ["linear-probe"]
preset = "none"
check_images = 8
[eval.linear-probe]
epochs = 2
"#;

#[test]
fn the_dynamic_host_starts_and_loads_a_plugin_without_ld_library_path() {
    let plugin = example_plugin();
    let (ok, text) = run(host().arg("plugins").arg("--load").arg(&plugin));
    assert!(ok, "{text}");
    assert!(
        text.contains("uniformity") && text.contains("random-noise"),
        "{text}"
    );
}

#[test]
fn a_plugin_attack_evaluates_a_run_trained_without_the_plugin() {
    let dir = temp_dir("eval-plugin");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let out = dir.join("runs");
    let (ok, text) = run(host()
        .arg("run")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .arg("-q"));
    assert!(ok, "{text}");
    let latest = out.join("latest");
    let load = format!(
        "plugins.load=[{:?}]",
        example_plugin().display().to_string()
    );
    let (ok, text) = run(host()
        .arg("eval")
        .arg(&latest)
        .args(["--set", &load])
        .args([
            "--set",
            "eval.extra_attacks=[{ name = \"random-noise\", params = { samples = 3 } }]",
        ]));
    assert!(ok, "{text}");
    // another evaluation than the run's own: written beside it, where the command says
    let written = text
        .lines()
        .find_map(|l| l.strip_prefix("results written to "))
        .expect("where the results went");
    assert!(written.contains("/evaluations/"), "{text}");
    let results = std::fs::read_to_string(written).unwrap();
    assert!(results.contains("random-noise/ce (extra 1)"), "{results}");
    // a training change is still refused
    let (ok, text) =
        run(host()
            .arg("eval")
            .arg(&latest)
            .args(["--set", &load, "--set", "train.epochs=2"]));
    assert!(
        !ok && text.contains("only takes evaluation settings"),
        "{text}"
    );
    assert!(Path::new(&latest).is_dir());
}
