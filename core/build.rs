//! Records what a dynamic plugin must share with its host (the ABI stamp): the rustc version,
//! the target, the profile and the backend features rossl-core is built with.

use std::process::Command;

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
    println!("cargo:rustc-env=ROSSL_SOURCE_HASH={:016x}", source_hash());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-env-changed=RUSTC");
}

/// A hash of rossl-core's sources: a plugin built against other sources (same version, changed
/// types) must be refused, not loaded to read garbage.
fn source_hash() -> u64 {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
    }
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files.push(root.join("Cargo.toml"));
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for file in files {
        let relative = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .to_string_lossy()
            .into_owned();
        let content = std::fs::read(&file).unwrap_or_default();
        for &b in relative.as_bytes().iter().chain(&content) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
