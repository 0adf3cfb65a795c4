// Build-script helper (included by the build scripts of dynamic hosts): makes a binary that
// links librossl_dylib start on its own, without LD_LIBRARY_PATH. The binary gets an rpath
// relative to itself (`$ORIGIN` and `$ORIGIN/deps`, where cargo puts librossl_dylib.so), and the
// Rust standard library's shared object, which the binary, librossl_dylib and every plugin need,
// is copied from the toolchain into that `deps` folder.

/// Emits the rpath link arguments for the package's binaries and puts `libstd-*.so` beside
/// `librossl_dylib.so`.
fn dynamic_host_rpath() {
    println!("cargo:rustc-link-arg-bins=-Wl,--disable-new-dtags");
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:$ORIGIN/deps");
    let Some(deps) = profile_deps_folder() else {
        println!("cargo:warning=cannot find the target folder: copy libstd-*.so beside the binary by hand");
        return;
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| std::path::PathBuf::from(s.trim()));
    let target = std::env::var("TARGET").unwrap_or_default();
    let Some(lib) = sysroot.map(|s| s.join("lib/rustlib").join(&target).join("lib")) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&lib) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("libstd-") && name.ends_with(".so") {
            let _ = std::fs::create_dir_all(&deps);
            if let Err(e) = std::fs::copy(entry.path(), deps.join(&name)) {
                println!("cargo:warning=copying {name} beside librossl_dylib: {e}");
            }
        }
    }
}

/// `target/<profile>/deps` of this build, from `OUT_DIR` (`target/<profile>/build/<pkg>/out`).
fn profile_deps_folder() -> Option<std::path::PathBuf> {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR")?);
    Some(out.ancestors().nth(3)?.join("deps"))
}
