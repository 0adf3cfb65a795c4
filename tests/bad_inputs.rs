//! Bad input of every kind, tried against the binary as users run it: each case must exit
//! non-zero with a message naming the key, file or value at fault, and leave every run folder
//! that existed before it (finished, interrupted, copied and edited) byte for byte as it was, with
//! no new run folder and `latest` unmoved. `docs/bad-inputs.md` lists the same cases (checked
//! below), so the table cannot drift from what is tested.

mod common;

use common::process::rossl_in;
use common::{temp_dir, write, TINY};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One bad input: its kind, the arguments of `rossl` (with the placeholders below) and a piece
/// of text its error must contain.
struct Case {
    kind: &'static str,
    args: &'static [&'static str],
    names: &'static str,
}

const fn case(kind: &'static str, args: &'static [&'static str], names: &'static str) -> Case {
    Case { kind, args, names }
}

/// Placeholders in the cases' arguments, replaced by the folders the test makes: a finished run,
/// an interrupted one, copies of the finished one with an edited `config.toml`, a truncated
/// checkpoint, and none.
const PLACEHOLDERS: [&str; 5] = ["FINISHED", "INTERRUPTED", "EDITED", "TRUNCATED", "NO_CKPT"];

#[rustfmt::skip]
const CASES: &[Case] = &[
    // configuration values
    case("value", &["run", "tiny.toml", "--set", "data.batch_size=0"], "data.batch_size"),
    case("value", &["run", "tiny.toml", "--set", "data.prefetch=0"], "data.prefetch"),
    case("value", &["run", "tiny.toml", "--set", "train.log_every=0"], "train.log_every"),
    case("value", &["run", "tiny.toml", "--set", "train.free.replays=0"], "train.free.replays"),
    case("value", &["run", "tiny.toml", "--set", "train.free.eps=-1"], "train.free.eps"),
    case("value", &["run", "tiny.toml", "--set", "train.free.eps=1e30"], "train.free.eps"),
    case("value", &["run", "tiny.toml", "--set", "train.free.step=-1"], "train.free.step"),
    case("value", &["run", "tiny.toml", "--set", "train.pgd.clean_weight=-1"], "train.pgd.clean_weight"),
    case("value", &["run", "tiny.toml", "--set", "train.free.clean_weight=-1"], "train.free.clean_weight"),
    case("value", &["run", "tiny.toml", "--set", "train.pgd.adversarial_weight=0"], "train.pgd.clean_weight"),
    case("value", &["run", "tiny.toml", "--set", "encoder.resnet-small.dual_batch_norm=true"], "encoder.resnet-small.dual_batch_norm"),
    case("value", &["run", "tiny.toml", "--set", "eval.bn_branch=\"adversarial\""], "eval.bn_branch"),
    case("value", &["run", "tiny.toml", "--set", "eval.linear-probe.label_fraction=0"], "eval.linear-probe.label_fraction"),
    case("value", &["run", "tiny.toml", "--set", "eval.linear-probe.resize=true"], "eval.linear-probe.resize"),
    case("value", &["run", "tiny.toml", "--set", "eval.linear-probe.dataset=\"cifar10\""], "eval.linear-probe.channels"),
    case("value", &["run", "tiny.toml", "--set", "eval.finetune.mode=\"fast\""], "eval.finetune.mode"),
    case("value", &["run", "tiny.toml", "--set", "eval.corruptions.families=[\"frost\"]"], "eval.corruptions.families"),
    case("value", &["run", "tiny.toml", "--set", "train.anneal.view_strength_end=1.5"], "train.anneal.view_strength_end"),
    case("value", &["run", "tiny.toml", "--set", "train.anneal.view_strength_end=0"], "train.anneal.stages"),
    case("value", &["run", "tiny.toml", "--set", "train.anneal.stages=4"], "train.anneal.stages"),
    case("value", &["run", "tiny.toml", "--set", "train.anneal.stages=4", "--set", "train.anneal.clean_weight_end=0.5"], "train.anneal.clean_weight_end"),
    case(
        "value",
        &["run", "tiny.toml", "--set", "train.regime=\"pgd\"", "--set", "train.anneal.stages=4", "--set", "train.anneal.adversarial_weight_end=-1"],
        "train.anneal.adversarial_weight_end",
    ),
    case("value", &["run", "tiny.toml", "--set", "optim.lr=0"], "optim.lr"),
    case("value", &["run", "tiny.toml", "--set", "optim.lr=nan"], "optim.lr"),
    case("value", &["run", "tiny.toml", "--set", "optim.lr=\"fast\""], "optim.lr"),
    case("value", &["run", "tiny.toml", "--set", "pool_wait=\"sleep\""], "pool_wait"),
    case("value", &["run", "tiny.toml", "--set", "optim.momentum=1.5"], "optim.momentum"),
    case("value", &["run", "tiny.toml", "--set", "optim.weight_decay=-1"], "optim.weight_decay"),
    case("value", &["run", "tiny.toml", "--set", "optim.min_lr=10"], "optim.min_lr"),
    case("value", &["run", "tiny.toml", "--set", "loss.terms=[]"], "loss.terms"),
    case("value", &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"trades\" }]"], "train.regime = \"pgd\""),
    case(
        "value",
        &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"cross-entropy\" }]", "--set", "loss.cross-entropy.classes=1"],
        "loss.cross-entropy.classes",
    ),
    case(
        "value",
        &["run", "tiny.toml", "--set", "train.pgd.attack_in_eval_mode=true", "--set", "train.pgd.attack_updates_bn_stats=true"],
        "train.pgd.attack_in_eval_mode",
    ),
    case(
        "value",
        &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"cross-entropy\" }]", "--set", "loss.cross-entropy.classes=3"],
        "loss.cross-entropy.classes",
    ),
    case(
        "value",
        &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"deacl\" }]", "--set", "train.regime=\"pgd\""],
        "train.target.from",
    ),
    case(
        "value",
        &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"deacl\" }]", "--set", "train.regime=\"pgd\"", "--set", "train.target.from=\"no-such-run\""],
        "train.target.from",
    ),
    case(
        "value",
        &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"barlow-twins\" }]", "--set", "loss.barlow-twins.scale=0"],
        "loss.barlow-twins.scale",
    ),
    case(
        "value",
        &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"vicreg\" }]", "--set", "loss.vicreg.gamma=0"],
        "loss.vicreg.gamma",
    ),
    // refused at the first training step, after the run folder is made: the failed run removes
    // it and points `latest` back
    case(
        "value",
        &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"barlow-twins\" }]", "--set", "views.multi-crop.views=1"],
        "barlow-twins",
    ),
    case(
        "value",
        &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"vicreg\" }]", "--set", "views.multi-crop.views=1"],
        "views.multi-crop.views",
    ),
    case("value", &["run", "tiny.toml", "--set", "eval.eps=[-1]"], "eval.eps"),
    case("value", &["run", "tiny.toml", "--set", "eval.batch_size=0"], "eval.batch_size"),
    case("value", &["run", "tiny.toml", "--set", "eval.steps=0"], "eval.steps"),
    case("value", &["run", "tiny.toml", "--set", "eval.restarts=0"], "eval.restarts"),
    case("value", &["run", "tiny.toml", "--set", "eval.large_eps=0"], "eval.large_eps"),
    case("value", &["run", "tiny.toml", "--set", "eval.eot_samples=0"], "eval.eot_samples"),
    case("value", &["run", "tiny.toml", "--set", "eval.norm=\"l1\""], "eval.norm"),
    case(
        "value",
        &["run", "tiny.toml", "--set", "eval.norm=\"l2\"", "--set", "eval.preset=\"paper\""],
        "eval.preset",
    ),
    case("value", &["run", "tiny.toml", "--set", "train.epochs=-1"], "train.epochs"),
    case("value", &["run", "tiny.toml", "--set", "seed=-1"], "seed"),
    case("value", &["run", "tiny.toml", "--set", "device=tpu"], "device"),
    case("value", &["run", "tiny.toml", "--set", "train.regime=sometimes"], "train.regime"),
    case("value", &["run", "tiny.toml", "--set", "traim.epochs=3"], "traim"),
    case("value", &["run", "tiny.toml", "--set", "views.name=pad-crop", "--set", "views.pad-crop.views=0"], "views.pad-crop.views"),
    case("value", &["run", "tiny.toml", "--set", "encoder.resnet-small.widths=\"wide\"",], "widths"),
    case("value", &["run", "tiny.toml", "--set", "novalue"], "novalue"),
    case("value", &["run", "tiny.toml", "--set", "eval.eps=[1, 2"], "eval.eps=[1, 2"),
    // names of components
    case("name", &["run", "tiny.toml", "--set", "encoder.name=nosuch"], "nosuch"),
    case("name", &["run", "tiny.toml", "--set", "data.name=nosuch"], "nosuch"),
    case("name", &["run", "tiny.toml", "--set", "views.name=nosuch"], "nosuch"),
    case("name", &["run", "tiny.toml", "--set", "loss.terms=[{ name = \"nosuch\" }]",], "nosuch"),
    case("name", &["run", "tiny.toml", "--set", "eval.evaluators=[\"nosuch\"]"], "nosuch"),
    case("name", &["run", "tiny.toml", "--set", "eval.extra_attacks=[{ name = \"nosuch\" }]",], "nosuch"),
    // what the machine cannot hold
    case("limit", &["run", "tiny.toml", "--set", "threads=100000"], "threads"),
    case("limit", &["run", "tiny.toml", "--set", "data.workers=100000"], "data.workers"),
    case("limit", &["run", "tiny.toml", "--set", "views.multi-crop.views=100000000",], "views.multi-crop"),
    case("limit", &["run", "tiny.toml", "--set", "data.batch_size=1000000000"], "data.batch_size"),
    case("limit", &["run", "tiny.toml", "--set", "eval.batch_size=100000000000"], "eval.batch_size"),
    case("limit", &["eval", "FINISHED", "--set", "threads=100000"], "threads"),
    // files
    case("file", &["run", "missing.toml"], "missing.toml"),
    case("file", &["run", "a-folder"], "a-folder"),
    case("file", &["run", "random.bin"], "random.bin"),
    case("file", &["run", "duplicate-key.toml"], "duplicate-key.toml"),
    case("file", &["run", "unknown-table.toml"], "trian"),
    case("file", &["run", "wrong-type.toml"], "train.epochs"),
    case("file", &["run", "tiny.toml", "missing.toml"], "missing.toml"),
    case("file", &["config", "random.bin"], "random.bin"),
    case("file", &["views", "missing.toml", "--out", "views.png"], "missing.toml"),
    case("data", &["run", "tiny.toml", "--set", "data.name=cifar10", "--set", "data.cifar10.root=no-cifar",], "no-cifar"),
    case("data", &["run", "tiny.toml", "--set", "data.name=fashion-mnist", "--set", "data.fashion-mnist.root=no-fmnist",], "no-fmnist"),
    // run folders
    case("run folder", &["eval", "not-a-run"], "not-a-run"),
    case("run folder", &["eval", "nothing-here"], "nothing-here"),
    case("run folder", &["eval", "tiny.toml"], "tiny.toml"),
    case("run folder", &["eval", "FINISHED", "--set", "optim.lr=0.5"], "optim.lr"),
    case("run folder", &["eval", "FINISHED", "--set", "eval.evaluators=[]"], "eval.evaluators"),
    case("run folder", &["eval", "EDITED"], "optim.lr"),
    case("run folder", &["eval", "TRUNCATED"], "checkpoint.safetensors"),
    case("run folder", &["eval", "NO_CKPT"], "checkpoint.safetensors"),
    case("run folder", &["export", "EDITED"], "optim.lr"),
    case("run folder", &["export", "FINISHED", "--out", "FINISHED/checkpoint.safetensors",], "checkpoint.safetensors"),
    case("run folder", &["export", "FINISHED", "--out", "FINISHED/results.json"], "results.json"),
    case("run folder", &["export", "FINISHED", "--out", "FINISHED/config.toml"], "config.toml"),
    case("run folder", &["export", "FINISHED", "--out", "FINISHED/robustbench.json"], "robustbench.json"),
    case("run folder", &["export", "FINISHED", "--out", "FINISHED"], "run folder"),
    case("run folder", &["export", "FINISHED", "--out", "INTERRUPTED/metrics.jsonl"], "metrics.jsonl"),
    case("run folder", &["views", "tiny.toml", "--out", "FINISHED/summary.json"], "summary.json"),
    case("run folder", &["run", "tiny.toml", "--force"], "finished run"),
    case("run folder", &["run", "tiny.toml", "--set", "optim.lr=0.1", "--resume", "FINISHED",], "optim.lr"),
    case("run folder", &["run", "other-method.toml", "--resume", "FINISHED"], "method.name"),
    // interrupted runs
    case("interrupted", &["run", "tiny.toml", "--set", "train.epochs=3"], "--resume"),
    case("interrupted", &["run", "tiny.toml", "--set", "train.epochs=3", "--set", "optim.lr=0.2", "--resume", "INTERRUPTED",], "optim.lr"),
    case("interrupted", &["run", "tiny.toml", "--resume", "INTERRUPTED"], "train.epochs"),
    // plugins
    case("plugin", &["run", "tiny.toml", "--set", "plugins.load=[\"no-such-plugin.so\"]",], "no-such-plugin.so"),
    case("plugin", &["run", "tiny.toml", "--set", "plugins.load=[\"not-a-plugin.so\"]",], "not-a-plugin.so"),
    // studies
    case("study", &["study", "missing-study.toml"], "missing-study.toml"),
    case("study", &["study", "study.toml", "--jobs", "0"], "--jobs"),
    case("study", &["study", "study.toml", "--out", "/proc/no-such-folder"], "/proc/no-such-folder"),
    case("study", &["study", "no-arms.toml"], "[[arm]]"),
    case("study", &["study", "no-seeds.toml"], "study.seeds"),
    case("study", &["study", "zero-jobs.toml"], "local.jobs"),
    case("study", &["study", "arm-config-missing.toml"], "missing-arm.toml"),
];

/// Every file (contents) and link (target) under `root`, by path relative to it.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read folder") {
            let path = entry.expect("entry").path();
            let relative = path.strip_prefix(root).expect("inside").to_path_buf();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("link");
                out.insert(relative, target.to_string_lossy().as_bytes().to_vec());
            } else if meta.is_dir() {
                out.insert(relative, b"<folder>".to_vec());
                stack.push(path);
            } else {
                out.insert(relative, std::fs::read(&path).expect("read file"));
            }
        }
    }
    out
}

fn rossl(dir: &Path, args: &[&str]) -> common::process::Finished {
    rossl_in(dir, args, Duration::from_secs(120))
}

/// The folder `runs/latest` points at, relative to `dir`.
fn latest(dir: &Path) -> String {
    let target = std::fs::read_link(dir.join("runs/latest")).expect("latest");
    format!("runs/{}", target.display())
}

/// Writes the inputs the cases use and makes the run folders they must not damage; returns the
/// placeholders' folders.
fn prepare(dir: &Path) -> BTreeMap<&'static str, String> {
    let tiny = format!("out = \"runs\"\n{TINY}");
    write(dir, "tiny.toml", &tiny);
    write(dir, "other-method.toml", "[method]\nname = \"other\"\n");
    write(
        dir,
        "duplicate-key.toml",
        "[train]\nepochs = 1\nepochs = 2\n",
    );
    write(dir, "unknown-table.toml", "[trian]\nepochs = 1\n");
    write(dir, "wrong-type.toml", "[train]\nepochs = \"many\"\n");
    write(dir, "not-a-plugin.so", "just text\n");
    let bytes: Vec<u8> = (0..2048u32).map(|i| (i * 131 % 256) as u8).collect();
    std::fs::write(dir.join("random.bin"), bytes).expect("random bytes");
    std::fs::create_dir_all(dir.join("a-folder")).expect("folder");
    std::fs::create_dir_all(dir.join("not-a-run")).expect("folder");
    let arm = "[[arm]]\nlabel = \"a\"\nconfigs = [\"tiny.toml\"]\n";
    write(
        dir,
        "study.toml",
        &format!("[study]\nname = \"s\"\nseeds = [0]\n{arm}"),
    );
    write(dir, "no-arms.toml", "[study]\nname = \"s\"\nseeds = [0]\n");
    write(
        dir,
        "no-seeds.toml",
        &format!("[study]\nname = \"s\"\nseeds = []\n{arm}"),
    );
    write(
        dir,
        "zero-jobs.toml",
        &format!("[study]\nname = \"s\"\nseeds = [0]\n[local]\njobs = 0\n{arm}"),
    );
    write(
        dir,
        "arm-config-missing.toml",
        "[study]\nname = \"s\"\nseeds = [0]\n[[arm]]\nlabel = \"a\"\nconfigs = [\"missing-arm.toml\"]\n",
    );
    let trained = rossl(dir, &["run", "tiny.toml"]);
    assert!(trained.success, "{}", trained.output);
    let finished = latest(dir);
    let stopped = rossl(
        dir,
        &[
            "run",
            "tiny.toml",
            "--set",
            "train.epochs=3",
            "--stop-after",
            "1",
        ],
    );
    assert!(stopped.success, "{}", stopped.output);
    let interrupted = latest(dir);
    assert_ne!(finished, interrupted);
    let copy = |name: &str| {
        let to = dir.join("copies").join(name);
        std::fs::create_dir_all(&to).expect("copy folder");
        for entry in std::fs::read_dir(dir.join(&finished)).expect("run folder") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
        to
    };
    let edited = copy("edited");
    let config = std::fs::read_to_string(edited.join("config.toml")).expect("config");
    let mut in_optim = false;
    let lines: Vec<String> = config
        .lines()
        .map(|line| {
            if line.starts_with('[') {
                in_optim = line == "[optim]";
            }
            if in_optim && line.starts_with("lr = ") {
                "lr = 0.123".to_string()
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(lines.contains(&"lr = 0.123".to_string()), "{config}");
    std::fs::write(edited.join("config.toml"), lines.join("\n")).expect("edit");
    let truncated = copy("truncated");
    let ckpt = std::fs::read(truncated.join("checkpoint.safetensors")).expect("checkpoint");
    std::fs::write(truncated.join("checkpoint.safetensors"), &ckpt[..100]).expect("truncate");
    let no_ckpt = copy("no-checkpoint");
    std::fs::remove_file(no_ckpt.join("checkpoint.safetensors")).expect("remove");
    [
        ("FINISHED", finished),
        ("INTERRUPTED", interrupted),
        ("EDITED", "copies/edited".into()),
        ("TRUNCATED", "copies/truncated".into()),
        ("NO_CKPT", "copies/no-checkpoint".into()),
    ]
    .into_iter()
    .collect()
}

/// A case's arguments as the docs table shows them (quoted where they hold spaces or quotes).
fn shown(args: &[&str]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains([' ', '"', '[', '{']) {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect();
    format!("rossl {}", words.join(" "))
}

#[test]
fn bad_inputs_fail_clearly_and_leave_every_run_folder_as_it_was() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let dir = temp_dir("bad-inputs");
    let folders = prepare(&dir);
    let before = (snapshot(&dir.join("runs")), snapshot(&dir.join("copies")));
    let mut failures = Vec::new();
    for case in CASES {
        let args: Vec<String> = case
            .args
            .iter()
            .map(|a| {
                PLACEHOLDERS.iter().fold(a.to_string(), |a, p| {
                    a.replace(p, folders.get(p).map_or(*p, String::as_str))
                })
            })
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let finished = rossl(&dir, &refs);
        let after = (snapshot(&dir.join("runs")), snapshot(&dir.join("copies")));
        let problem = if finished.success {
            Some("it succeeded".to_string())
        } else if finished.output.contains("panicked") {
            Some("it panicked".to_string())
        } else if !finished.output.contains(case.names) {
            Some(format!("its message does not name `{}`", case.names))
        } else if after != before {
            Some("it changed a run folder (or made one)".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "[{}] {}: {problem}; output:\n{}",
                case.kind,
                shown(case.args),
                finished.output
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_docs_table_lists_every_case() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/bad-inputs.md"))
        .expect("docs/bad-inputs.md");
    let missing: Vec<String> = CASES
        .iter()
        .map(|c| format!("| {} | `{}` | `{}` |", c.kind, shown(c.args), c.names))
        .filter(|row| !doc.contains(row.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "rows missing from docs/bad-inputs.md:\n{}",
        missing.join("\n")
    );
}
