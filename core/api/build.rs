//! Records what a dynamic plugin must share with its host (the ABI stamp): the sources of the
//! crates a plugin links (rossl-api, rossl-nn, rossl-kernels), candle's version, the rustc
//! version, the target, the profile and the backend features.

use std::path::{Path, PathBuf};
use std::process::Command;

include!("stamp_hash.rs");

/// The crates whose sources the stamp covers: this one and its siblings nn and kernels.
fn stamped_roots() -> Vec<PathBuf> {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let core = here.parent().map(Path::to_path_buf).unwrap_or_default();
    vec![here, core.join("nn"), core.join("kernels")]
}

/// candle-core's version in the workspace's Cargo.lock.
fn candle_version(roots: &[PathBuf]) -> String {
    let lock = roots[0].join("../../Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"candle-core\"" {
            if let Some(version) = lines.next() {
                return version
                    .trim()
                    .trim_start_matches("version = ")
                    .trim_matches('"')
                    .to_string();
            }
        }
    }
    "unknown".into()
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ROSSL_RUSTC_VERSION={version}");
    println!(
        "cargo:rustc-env=ROSSL_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!(
        "cargo:rustc-env=ROSSL_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_default()
    );
    let mut features: Vec<&str> = Vec::new();
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        features.push("cuda");
    }
    if std::env::var_os("CARGO_FEATURE_CUDNN").is_some() {
        features.push("cudnn");
    }
    let features = if features.is_empty() {
        "cpu".to_string()
    } else {
        features.join("+")
    };
    println!("cargo:rustc-env=ROSSL_FEATURES={features}");
    let roots = stamped_roots();
    println!(
        "cargo:rustc-env=ROSSL_SOURCE_HASH={:016x}",
        source_hash(&roots)
    );
    println!(
        "cargo:rustc-env=ROSSL_CANDLE_VERSION={}",
        candle_version(&roots)
    );
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=stamp_hash.rs");
    for root in &roots {
        println!("cargo:rerun-if-changed={}", root.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            root.join("Cargo.toml").display()
        );
    }
    println!("cargo:rerun-if-changed=../../Cargo.lock");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
