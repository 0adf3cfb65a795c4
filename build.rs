//! With the `dynamic` feature, the `rossl` binary starts on its own: an rpath relative to the
//! executable and the standard library's shared object beside librossl_dylib (see
//! core/dylib/host_rpath.rs).

include!("core/dylib/host_rpath.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=core/dylib/host_rpath.rs");
    if std::env::var_os("CARGO_FEATURE_DYNAMIC").is_some() {
        dynamic_host_rpath();
    }
}
