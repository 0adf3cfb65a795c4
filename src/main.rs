//! The `rossl` command line.

fn main() -> std::process::ExitCode {
    rossl::cli::main()
}
