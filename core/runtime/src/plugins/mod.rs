//! Dynamic plugins: components in shared libraries loaded at start-up.
//!
//! A plugin is a Rust `dylib` that links `rossl-dylib` (rossl-api, rossl-nn, candle and inventory
//! as one shared library) and calls `rossl_api::declare_plugin!()` once. Its `register!`
//! calls then land in the host's registry when the library is loaded, and the host and the plugin
//! share one candle, so gradients through plugin code are right. (A plugin with its own copy of
//! candle gives silently wrong gradients: each copy numbers tensors on its own.)
//!
//! Loading, in order: the path must exist; the file must be an ELF shared library with a
//! `.rossl_abi` section holding the ABI stamp (read from the file, before any of the library's
//! code runs); the stamp must equal the host's, field by field; only then is the library opened,
//! its `extern "C"` stamp function read back, and the registry re-checked for duplicates.
//! Libraries are never unloaded. Only a host whose rossl-api lives in the shared library (built
//! with the `dynamic` feature) loads plugins.

mod elf;

pub use rossl_api::stamp::{AbiStamp, PLUGIN_API_VERSION, STAMP, STAMP_SECTION};

use crate::config::{plugin_libraries, ConfigSources, ResolvedConfig};
use crate::{Error, Result};
use rossl_api::registry::Kind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static LOADED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The components each loaded library registered: (kind, name, library).
static PROVIDED: Mutex<Vec<(Kind, &'static str, PathBuf)>> = Mutex::new(Vec::new());

/// Every registered (kind, name).
fn registered() -> Vec<(Kind, &'static str)> {
    Kind::ALL
        .into_iter()
        .flat_map(|kind| kind.names().into_iter().map(move |name| (kind, name)))
        .collect()
}

/// The loaded library that registered component `name` of `kind`, if one did.
pub fn library_of(kind: Kind, name: &str) -> Option<PathBuf> {
    PROVIDED.lock().ok().and_then(|p| {
        p.iter()
            .find(|(k, n, _)| *k == kind && *n == name)
            .map(|(_, _, path)| path.clone())
    })
}

/// The libraries loaded so far, in order.
pub fn loaded() -> Vec<PathBuf> {
    LOADED.lock().map(|l| l.clone()).unwrap_or_default()
}

/// The file that holds this process's rossl-api (the executable for a static build,
/// `librossl_dylib.so` for a dynamic one), if the platform says.
pub fn core_location() -> Option<PathBuf> {
    #[cfg(unix)]
    {
        // SAFETY: `Dl_info` is plain data; all-zero is a valid value for it.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let address = rossl_api::stamp::source_hash as *const libc::c_void;
        // SAFETY: dladdr only reads the loader's tables for an address of this very library.
        let found = unsafe { libc::dladdr(address, &mut info) };
        if found != 0 && !info.dli_fname.is_null() {
            // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
            let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
            return Some(PathBuf::from(name.to_string_lossy().into_owned()));
        }
        None
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `true` when this host shares its rossl-api with plugins (it was built with the `dynamic`
/// feature and runs against `librossl_dylib`).
pub fn host_is_dynamic() -> bool {
    core_location().is_some_and(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("rossl_dylib"))
    })
}

/// Reads the ABI stamp of the library at `path` without loading it.
pub fn read_stamp(path: &Path) -> Result<AbiStamp> {
    if !path.exists() {
        return Err(Error::data(path, "plugin library not found"));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::data(path, format!("cannot read the plugin library: {e}")))?;
    let section = elf::section(&bytes, STAMP_SECTION).map_err(|why| Error::data(path, why))?;
    let Some(section) = section else {
        return Err(Error::data(
            path,
            format!(
                "not a rossl plugin: the library has no `{STAMP_SECTION}` ABI stamp (a plugin calls \
                 `rossl_api::declare_plugin!()` once and links rossl-dylib; see docs/writing-a-plugin.md)"
            ),
        ));
    };
    let text = std::str::from_utf8(section)
        .map_err(|_| Error::data(path, "corrupt ABI stamp (not UTF-8)"))?
        .trim_end_matches('\0');
    AbiStamp::parse(text).map_err(|why| Error::data(path, format!("corrupt ABI stamp: {why}")))
}

/// Loads the plugin library at `path` (see the module documentation for the checks). Loading the
/// same path twice is a no-op.
pub fn load(path: &Path) -> Result<()> {
    let canonical = path
        .canonicalize()
        .map_err(|_| Error::data(path, "plugin library not found"))?;
    if loaded().contains(&canonical) {
        return Ok(());
    }
    check_loadable(&canonical)?;
    let before = registered();
    open(&canonical)?;
    record(&canonical, &before);
    tracing::info!(path = %canonical.display(), "loaded plugin library");
    rossl_api::registry::check_duplicates()
}

/// Checks, before any of its code runs, that the library at `canonical` was built for this host
/// (its stamp section equals the host's stamp) and that this host can load plugins.
fn check_loadable(canonical: &Path) -> Result<()> {
    let theirs = read_stamp(canonical)?;
    let ours = AbiStamp::host();
    let differences = ours.differences(&theirs);
    if !differences.is_empty() {
        return Err(Error::data(
            canonical,
            format!(
                "the plugin was built for another rossl: {}. Rebuild it against this rossl with the \
                 same toolchain and profile (`cargo build{} -p <plugin crate>` in this workspace).",
                differences.join("; "),
                if ours.profile == "release" { " --release" } else { "" }
            ),
        ));
    }
    if !host_is_dynamic() {
        return Err(Error::data(
            canonical,
            format!(
                "this rossl binary was built without dynamic plugin support ({}): rebuild it with \
                 `cargo build --release --features dynamic` (see docs/writing-a-plugin.md)",
                core_location()
                    .map(|p| format!("its core lives in {}", p.display()))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// Opens the library at `canonical` (running its registrations), checks that its stamp function
/// agrees with its stamp section, and keeps it loaded for good.
fn open(canonical: &Path) -> Result<()> {
    // SAFETY: loading a library runs its initialisers; `check_loadable` established that it was
    // built against this very rossl-api and rossl-nn, and the user named the path.
    let library = unsafe { libloading::Library::new(canonical) }
        .map_err(|e| {
            Error::data(
                canonical,
                format!(
                    "cannot load the library ({e}); an undefined symbol means it was built against \
                     another build of librossl_dylib: build the host and the plugin in one command, \
                     e.g. `cargo build --release -p rossl -p <plugin crate> --features rossl/dynamic`"
                ),
            )
        })?;
    // SAFETY: the stamp function's signature is fixed by `declare_plugin!`.
    let function = unsafe {
        library.get::<unsafe extern "C" fn(*mut usize) -> *const u8>(b"rossl_plugin_abi_stamp\0")
    }
    .map_err(|_| {
        Error::data(
            canonical,
            "the library has no `rossl_plugin_abi_stamp` function",
        )
    })?;
    let mut len = 0usize;
    // SAFETY: the function returns a pointer to a static byte string of `len` bytes.
    let reported = unsafe {
        let ptr = function(&mut len);
        std::slice::from_raw_parts(ptr, len)
    };
    if reported != STAMP.as_bytes() {
        return Err(Error::data(
            canonical,
            "the plugin's stamp function disagrees with its stamp section",
        ));
    }
    std::mem::forget(library); // never unloaded: registrations point into it
    Ok(())
}

/// Records the library at `canonical` as loaded, with the components it registered (those not in
/// `before`).
fn record(canonical: &Path, before: &[(Kind, &'static str)]) {
    if let Ok(mut l) = LOADED.lock() {
        l.push(canonical.to_path_buf());
    }
    if let Ok(mut provided) = PROVIDED.lock() {
        for (kind, name) in registered() {
            if !before.contains(&(kind, name)) {
                provided.push((kind, name, canonical.to_path_buf()));
            }
        }
    }
}

/// Loads every library of `paths` in order.
pub fn load_all(paths: &[PathBuf]) -> Result<()> {
    paths.iter().try_for_each(|p| load(p))
}

/// Loads the plugin libraries that `sources` name (`plugins.load`), then resolves the
/// configuration: the way every command reads one, so that the libraries' components are
/// registered before the configuration is checked against the registry.
pub fn resolve(sources: &ConfigSources) -> Result<ResolvedConfig> {
    for library in plugin_libraries(sources)? {
        load(&library.path)
            .map_err(|e| Error::Config(format!("`plugins.load` (in {}): {e}", library.source)))?;
    }
    let mut resolved = ResolvedConfig::load(sources)?;
    let origins: Vec<(String, String)> = resolved
        .trained_components()
        .filter_map(|c| {
            let library = library_of(c.kind, &c.name)?;
            let file = library.file_name()?.to_string_lossy().into_owned();
            Some((c.section.clone(), file))
        })
        .collect();
    resolved.trained_from.extend(origins);
    Ok(resolved)
}
