//! Host side of the dynamic plugin tests: this crate links rossl-api, rossl-nn and rossl-kernels
//! through `rossl-dylib`, as a rossl binary built with the `dynamic` feature does (its own
//! rossl-runtime stays static), and the built-in plugins it needs for a training run.

extern crate rossl_datasets;
#[allow(unused_extern_crates)]
extern crate rossl_dylib;
extern crate rossl_encoders;
extern crate rossl_views;

/// The example plugin library built next to the tests.
pub fn example_plugin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps folder");
    deps.join(format!(
        "{}rossl_example_dynamic{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}
