//! The ABI stamp covers what a plugin links (rossl-api, rossl-nn, rossl-kernels), not the runtime:
//! a change inside the runtime keeps built plugins loadable (their stamp still equals the host's),
//! a change to a public item of rossl-api refuses them, saying what differs.

use rossl_api::stamp::{source_hash, AbiStamp};
use rossl_dynamic_tests::example_plugin;
use rossl_runtime::plugins;
use std::path::{Path, PathBuf};

fn core() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../core")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The crates the stamp covers, under `base`.
fn stamped(base: &Path) -> Vec<PathBuf> {
    ["api", "nn", "kernels"]
        .iter()
        .map(|c| base.join(c))
        .collect()
}

fn append(file: &Path, text: &str) {
    let mut content = std::fs::read_to_string(file).unwrap();
    content.push_str(text);
    std::fs::write(file, content).unwrap();
}

#[test]
fn a_runtime_change_keeps_the_stamp_and_an_api_change_does_not() {
    let built = source_hash(&stamped(&core()));
    assert_eq!(format!("{built:016x}"), AbiStamp::host().source);
    let copy = std::env::temp_dir().join(format!("rossl-stamp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    for krate in ["api", "nn", "kernels", "runtime"] {
        copy_tree(&core().join(krate), &copy.join(krate));
    }
    assert_eq!(source_hash(&stamped(&copy)), built);
    append(
        &copy.join("runtime/src/train/trainer.rs"),
        "\n/// A new runtime function.\npub fn added_in_the_runtime() {}\n",
    );
    assert_eq!(
        source_hash(&stamped(&copy)),
        built,
        "a runtime change must keep built plugins loadable"
    );
    append(
        &copy.join("api/src/components/attack.rs"),
        "\n/// A new public item of the plugin API.\npub const ADDED: u32 = 1;\n",
    );
    assert_ne!(source_hash(&stamped(&copy)), built);
}

#[test]
fn a_plugin_built_against_other_api_sources_is_refused_with_what_differs() {
    let ours = AbiStamp::host().source;
    let field = format!("|source={ours}|");
    let other = format!("|source={}|", "f".repeat(ours.len()));
    let mut bytes = std::fs::read(example_plugin()).unwrap();
    let mut found = 0;
    while let Some(p) = bytes
        .windows(field.len())
        .position(|w| w == field.as_bytes())
    {
        bytes[p..p + field.len()].copy_from_slice(other.as_bytes());
        found += 1;
    }
    assert!(found >= 1, "the plugin carries the host's stamp");
    let dir = std::env::temp_dir().join(format!("rossl-stamp-lib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join("libstale_sources.so");
    std::fs::write(&stale, bytes).unwrap();
    let message = plugins::load(&stale).unwrap_err().to_string();
    assert!(
        message.contains("rossl-api, rossl-nn and rossl-kernels sources: the host has")
            && message.contains("Rebuild"),
        "{message}"
    );
}
