//! The same seed gives the same training, bit for bit: the quickstart at test size (2 threads)
//! must write exactly the metrics pinned in `tests/fixtures/quickstart-metrics/*.jsonl` (every
//! number except times).
//!
//! Each file was written on one kind of host and is named after it ([`host_label`]: the CPU's
//! model name, family and model numbers, and its widest vector instructions). The bits can depend on
//! the CPU model, not only on rossl: on 2026-12-02 two AMD EPYC hosts (one with AVX2, one with
//! AVX-512, rossl's kernels capped to AVX2 on both) gave the first step the same loss but a
//! gradient norm of 249.2495856009282 against 249.24959994163171, and free training amplifies
//! that to several percent within five steps. (Today's files of those two kinds of host are
//! identical; the Intel host's, written on 2026-12-02, is not.)
//!
//! On a host whose file is there, any change of numerics (a kernel's summation order, say) fails
//! here and must be a deliberate decision: regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test same_numbers`, which replaces every file with this host's
//! (the others are then written again on their hosts), and say why in the changelog. A new kind
//! of host adds its own file with `UPDATE_GOLDEN=add` (the others stay). On a host without a file
//! the run is compared with every file: a bit-for-bit match passes, otherwise only what does not
//! depend on the host is checked (every line's kind, step and pass counters, batch, epoch and
//! learning rate exactly; the first step's numbers to a relative 1e-5); the test prints which
//! applied. A file whose name carries no family and model (written before names did) is never a
//! host's own. The name leaves out what else can move the last bits (the L1 geometry the matrix
//! products' blocking reads, the C library's maths): a host that shares a name but not those
//! fails here, and is told so, before anyone rewrites the file.

mod common;
use common::process::{run_watched, Output};
use common::temp_dir;
use std::path::Path;
use std::time::Duration;

/// The folder of pinned metrics, one file per kind of host.
const FIXTURES: &str = "tests/fixtures/quickstart-metrics";

/// The fields of a metrics line that depend on the machine's speed, left out of the comparison.
const TIMES: &[&str] = &["seconds", "images_per_s", "loader_wait_seconds"];

fn without_times(line: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    if let Some(map) = value.as_object_mut() {
        for key in TIMES {
            map.remove(*key);
        }
    }
    value.to_string()
}

#[test]
fn the_quickstart_writes_the_pinned_metrics_bit_for_bit() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = temp_dir("same-numbers");
    let out = dir.display().to_string();
    let finished = run_watched(
        Path::new(env!("CARGO_BIN_EXE_rossl")),
        &[
            "run",
            "configs/quickstart.toml",
            "--out",
            &out,
            "--no-eval",
            "--set",
            "threads=2",
            "--set",
            "compare.baselines=[]",
            // test size, pinned here rather than shared, so that the fixture changes only with
            // the numerics
            "--set",
            "data.train_subset=96",
            "--set",
            "data.batch_size=8",
            "--set",
            "views.multi-crop.views=4",
            "--set",
            "train.max_batches=3",
            "--set",
            "train.epochs=3",
        ],
        repo,
        &[],
        Output::File,
        Duration::from_secs(300),
    );
    assert!(finished.success, "{}", finished.output);
    let metrics = std::fs::read_to_string(dir.join("latest/metrics.jsonl")).unwrap();
    let got: Vec<String> = metrics.lines().map(without_times).collect();
    let folder = repo.join(FIXTURES);
    let pinned = pinned_files(&folder);
    let own = folder.join(format!("{}.jsonl", host_label()));
    match std::env::var("UPDATE_GOLDEN").as_deref() {
        Ok("add") => {
            std::fs::write(&own, got.join("\n") + "\n").unwrap();
            return;
        }
        Ok(_) => {
            for (path, _) in &pinned {
                std::fs::remove_file(path).unwrap();
            }
            std::fs::write(&own, got.join("\n") + "\n").unwrap();
            return;
        }
        Err(_) => {}
    }
    assert!(!pinned.is_empty(), "no pinned metrics in {FIXTURES}");
    if let Some((path, lines)) = pinned.iter().find(|(path, _)| *path == own) {
        assert_same_bits(&got, lines, path);
        println!("bit for bit as {}, this host's own file", path.display());
        return;
    }
    if let Some((path, _)) = pinned.iter().find(|(_, lines)| *lines == got) {
        println!("bit for bit as {}", path.display());
        return;
    }
    println!(
        "no file of {FIXTURES} was written on a host like this one ({}): checking the counters \
         and the first step only (add this host's file with UPDATE_GOLDEN=add for the bit-for-bit \
         check)",
        own.display()
    );
    for (path, lines) in &pinned {
        assert_eq!(
            got.len(),
            lines.len(),
            "lines of {}:\n{metrics}",
            path.display()
        );
        for (i, (g, p)) in got.iter().zip(lines).enumerate() {
            let (g, p) = (json(g), json(p));
            let tolerance = if i == 0 { 1e-5 } else { f64::INFINITY };
            if let Err(why) = agree(&g, &p, tolerance, "") {
                panic!(
                    "metrics line {} differs from {}: {why}",
                    i + 1,
                    path.display()
                );
            }
        }
    }
}

/// Fails, naming the first line and field that differ, unless `got` is `pinned` (this host's
/// own file, `path`) bit for bit.
fn assert_same_bits(got: &[String], pinned: &[String], path: &Path) {
    assert_eq!(
        got.len(),
        pinned.len(),
        "{} lines, {} pinned in this host's own file {}",
        got.len(),
        pinned.len(),
        path.display()
    );
    for (i, (g, p)) in got.iter().zip(pinned).enumerate() {
        if let Err(why) = agree(&json(g), &json(p), 0.0, "") {
            panic!(
                "metrics line {} differs from this host's own file {}: {why}; if the numerics \
                 changed on purpose, regenerate with UPDATE_GOLDEN=1 and say why in the \
                 changelog; if they did not, this host may differ from the file's writer in what \
                 its name leaves out (L1 cache geometry, the C library, the CPU stepping): \
                 compare on that kind of host before rewriting it",
                i + 1,
                path.display()
            );
        }
        assert_eq!(g, p, "metrics line {} of {}", i + 1, path.display());
    }
}

/// Every `*.jsonl` of `folder` with its lines, times removed.
fn pinned_files(folder: &Path) -> Vec<(std::path::PathBuf, Vec<String>)> {
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = text.lines().map(without_times).collect();
            (path, lines)
        })
        .collect();
    files.sort();
    files
}

/// A name for this kind of host: the CPU's model name, its family and model numbers, and the
/// widest vector instructions, e.g. `amd-epyc-f25m1-avx2`.
fn host_label() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .unwrap_or("unknown cpu")
        .trim()
        .to_lowercase();
    let isa = if cpuinfo.contains(" avx512f") {
        "avx512"
    } else if cpuinfo.contains(" avx2") {
        "avx2"
    } else {
        "portable"
    };
    let model: String = model
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let number = |key: &str| {
        cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "x".into())
    };
    format!(
        "{model}-f{}m{}-{isa}",
        number("cpu family"),
        number("model")
    )
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).expect("a JSON line")
}

/// `Ok` when `got` and `pinned` have the same keys, equal strings, integers and learning rate,
/// and other numbers within a relative `tolerance`; otherwise the first field that differs.
fn agree(
    got: &serde_json::Value,
    pinned: &serde_json::Value,
    tolerance: f64,
    at: &str,
) -> Result<(), String> {
    use serde_json::Value;
    match (got, pinned) {
        (Value::Object(g), Value::Object(p)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
            if keys(g) != keys(p) {
                return Err(format!("{at}: keys {:?} against {:?}", keys(g), keys(p)));
            }
            for (key, value) in g {
                agree(value, &p[key], tolerance, &format!("{at}.{key}"))?;
            }
            Ok(())
        }
        (Value::Number(g), Value::Number(p)) if g.is_f64() && !at.ends_with(".lr") => {
            let (g, p) = (g.as_f64().unwrap(), p.as_f64().unwrap_or(f64::NAN));
            if (g - p).abs() <= tolerance * p.abs().max(1e-12) {
                Ok(())
            } else {
                Err(format!("{at}: {g} against {p}"))
            }
        }
        _ if got == pinned => Ok(()),
        _ => Err(format!("{at}: {got} against {pinned}")),
    }
}
