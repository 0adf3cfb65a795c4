//! The `rossl` command line as a dynamic host: it links rossl-api and rossl-nn through
//! librossl_dylib, exactly as `rossl` built with `--features dynamic` does, so that tests can
//! run it as users would (with no LD_LIBRARY_PATH).

#[allow(unused_extern_crates)]
extern crate rossl_dylib;

fn main() -> std::process::ExitCode {
    rossl::cli::main()
}
