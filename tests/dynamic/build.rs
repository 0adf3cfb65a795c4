//! The dynamic host binary of these tests starts on its own, as `rossl` built with `dynamic`
//! does (see core/dylib/host_rpath.rs).

include!("../../core/dylib/host_rpath.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../core/dylib/host_rpath.rs");
    dynamic_host_rpath();
}
