//! The command line end to end: listings, configs, errors, views, run, eval and compare.

mod common;
use common::{temp_dir, write, TINY};
use std::process::Command;

fn rossl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rossl"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run rossl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugins_lists_components_as_text_and_json() {
    let (ok, text, _) = rossl(&["plugins", "--kind", "loss"]);
    assert!(
        ok && text.contains("tcr") && text.contains("defaults: { eps = 0.2 }"),
        "{text}"
    );
    let (ok, json, _) = rossl(&["plugins", "--json"]);
    assert!(ok);
    let items: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert!(items
        .iter()
        .any(|i| i["kind"] == "encoder" && i["name"] == "resnet18-cifar"));
    let (ok, _, err) = rossl(&["plugins", "--kind", "losses"]);
    assert!(
        !ok && err.contains("unknown component kind `losses`")
            && err.contains("did you mean `loss`"),
        "{err}"
    );
}

#[test]
fn config_prints_the_merged_configuration_and_errors_exit_non_zero() {
    let dir = temp_dir("cli-config");
    let file = write(&dir, "a.toml", "[train]\nepochs = 7\n");
    let path = file.display().to_string();
    let (ok, text, _) = rossl(&["config", &path, "--set", "seed=4", "--explain"]);
    assert!(ok);
    assert!(
        text.lines()
            .any(|l| l.starts_with("epochs = 7") && l.contains("a.toml")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("seed = 4") && l.contains("--set seed=4")),
        "{text}"
    );
    let (ok, _, err) = rossl(&["config", &path, "--set", "train.epoch=3"]);
    assert!(
        !ok && err.contains("train.epoch") && err.contains("did you mean `epochs`"),
        "{err}"
    );
}

#[test]
fn views_writes_a_png_grid() {
    let dir = temp_dir("cli-views");
    let png = dir.join("grid.png");
    let (ok, _, err) = rossl(&[
        "views",
        "--set",
        "data.name=synthetic",
        "--out",
        &png.display().to_string(),
        "--images",
        "2",
        "--views",
        "3",
        "--zoom",
        "1",
        "--split",
        "test",
        "-q",
    ]);
    assert!(ok, "{err}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // width = 4 cells of 32 pixels + 5 gaps of 4; height = 2 cells + 3 gaps
    let width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    assert_eq!((width, height), (4 * 32 + 5 * 4, 2 * 32 + 3 * 4));
}

#[test]
fn run_eval_and_compare_write_their_files() {
    let dir = temp_dir("cli-compare");
    let a = write(
        &dir,
        "a.toml",
        &format!("{TINY}\n[compare]\nlabel = \"A\"\n"),
    );
    let b = write(
        &dir,
        "b.toml",
        &TINY
            .replace("name = \"tiny\"", "name = \"tiny-free\"")
            .replace("epochs = 2", "epochs = 3\nregime = \"free\""),
    );
    let out = dir.join("runs").display().to_string();
    let (ok, text, err) = rossl(&[
        "compare",
        &a.display().to_string(),
        &b.display().to_string(),
        "--out",
        &out,
        "-q",
    ]);
    assert!(ok, "{err}");
    assert!(
        text.contains("| A |") && text.contains("free (m=3)"),
        "{text}"
    );
    for f in [
        "comparison.md",
        "comparison.json",
        "robust_accuracy.svg",
        "loss_curves.svg",
        "accuracy_vs_time.svg",
    ] {
        assert!(dir.join("runs").join(f).is_file(), "{f}");
    }
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("runs/comparison.json")).unwrap())
            .unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries
        .iter()
        .all(|e| e["evaluations"][0]["clean_accuracy"].is_number()
            && e["train"]["forward_passes"].is_number()));
    // a second compare reuses the finished runs
    let (ok, _, err) = rossl(&[
        "compare",
        &a.display().to_string(),
        &b.display().to_string(),
        "--out",
        &out,
    ]);
    assert!(ok && err.contains("reusing"), "{err}");
    // eval with other evaluation settings evaluates into an evaluation folder of the run;
    // training settings are refused
    let run_dir = entries[0]["run_dir"].as_str().unwrap().to_string();
    let (ok, text, err) = rossl(&["eval", &run_dir, "--set", "eval.preset=\"paper\"", "-q"]);
    assert!(ok && text.contains("results written"), "{err}");
    let written = text
        .lines()
        .find_map(|l| l.strip_prefix("results written to "))
        .expect("where the results went");
    assert!(written.contains("/evaluations/"), "{text}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(written).unwrap()).unwrap();
    assert_eq!(
        results["evaluations"][0]["robust"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (ok, _, err) = rossl(&["eval", &run_dir, "--set", "train.epochs=9"]);
    assert!(
        !ok && err.contains("only takes evaluation settings"),
        "{err}"
    );
}

#[test]
fn a_run_stopped_early_resumes_from_the_command_line() {
    let dir = temp_dir("cli-resume");
    let file = write(&dir, "a.toml", TINY);
    let out = dir.join("runs").display().to_string();
    let file_arg = file.display().to_string();
    let (ok, text, err) = rossl(&["run", &file_arg, "--out", &out, "--stop-after", "1", "-q"]);
    assert!(ok, "{err}");
    let hint = "continue with: rossl run --resume ";
    let at = text.find(hint).expect(&text);
    assert!(text.contains("stopped after 1 of 2 passes"), "{text}");
    let run_dir = text[at + hint.len()..]
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    let run_path = std::path::Path::new(&run_dir);
    assert!(!run_path.join("results.json").exists());
    // the resolved config records where each value came from
    let config = std::fs::read_to_string(run_path.join("config.toml")).unwrap();
    assert!(config.contains("a.toml"), "{config}");
    // the same command without --resume refuses to start over silently
    let (ok, _, err) = rossl(&["run", &file_arg, "--out", &out, "-q"]);
    assert!(!ok && err.contains("--resume"), "{err}");
    let (ok, _, err) = rossl(&["run", "--resume", &run_dir, "-q"]);
    assert!(ok, "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_path.join("summary.json")).unwrap())
            .unwrap();
    // 48 images in batches of 8: 6 steps per pass, 2 passes
    assert_eq!(summary["steps"], 12, "{summary}");
    assert_eq!(summary["complete"], true, "{summary}");
    assert!(run_path.join("results.json").is_file());
}

#[test]
fn export_writes_the_encoder_alone_under_its_pytorch_names() {
    use rossl::rossl_runtime::assembly::Assembly;
    use rossl::rossl_runtime::config::DeviceSpec;
    use rossl::rossl_runtime::device::select_device;
    let dir = temp_dir("cli-export");
    let file = write(&dir, "a.toml", TINY);
    let out = dir.join("runs").display().to_string();
    let (ok, _, err) = rossl(&["run", &file.display().to_string(), "--out", &out, "-q"]);
    assert!(ok, "{err}");
    let latest = dir.join("runs/latest");
    let exported = dir.join("weights.safetensors");
    let (ok, text, err) = rossl(&[
        "export",
        &latest.display().to_string(),
        "--out",
        &exported.display().to_string(),
        "--samples",
        "5",
    ]);
    assert!(
        ok && text.contains("probe-linear-probe.safetensors"),
        "{text}{err}"
    );
    let tensors = candle_core::safetensors::load(&exported, &candle_core::Device::Cpu).unwrap();
    // the same names and shapes as the encoder's parameters and buffers, and nothing else (no
    // optimiser state, no training perturbation)
    let resolved = common::resolve(&[file], &[]).unwrap();
    let asm = Assembly::build(resolved, select_device(DeviceSpec::Cpu).unwrap()).unwrap();
    let expected = rossl::rossl_runtime::train::encoder_tensors(asm.encoder.as_ref());
    assert_eq!(tensors.len(), expected.len());
    for (name, tensor) in &expected {
        let got = tensors.get(name).unwrap_or_else(|| panic!("no `{name}`"));
        assert_eq!(got.dims(), tensor.dims(), "{name}");
    }
    assert!(tensors.contains_key("backbone.layer1.0.conv1.weight"));
    assert_eq!(
        tensors["backbone.bn1.num_batches_tracked"].dtype(),
        candle_core::DType::I64
    );
    let samples = candle_core::safetensors::load(
        dir.join("weights-samples.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(samples["images"].dims(), &[5, 1, 12, 12]);
    assert_eq!(samples["features"].dims()[0], 5);
}

#[test]
fn compare_refuses_rows_evaluated_differently_unless_told() {
    let dir = temp_dir("cli-mixed");
    let a = write(&dir, "a.toml", TINY);
    let b = write(
        &dir,
        "b.toml",
        &TINY
            .replace("name = \"tiny\"", "name = \"tiny-b\"")
            .replace("steps = 3\n", "steps = 4\n"),
    );
    let out = dir.join("runs").display().to_string();
    let args = |extra: &'static str| {
        let mut v = vec![
            "compare".to_string(),
            a.display().to_string(),
            b.display().to_string(),
            "--out".into(),
            out.clone(),
            "-q".into(),
        ];
        if !extra.is_empty() {
            v.push(extra.into());
        }
        v
    };
    let refused = args("");
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    let (ok, _, err) = rossl(&refused);
    assert!(
        !ok && err.contains("`eval.steps`: tiny: 3; tiny-b: 4") && err.contains("--allow-mixed"),
        "{err}"
    );
    let allowed = args("--allow-mixed");
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    let (ok, text, err) = rossl(&allowed);
    assert!(ok, "{err}");
    assert!(
        text.contains("| tiny-b † |") && text.contains("Mixed evaluation settings"),
        "{text}"
    );
}
