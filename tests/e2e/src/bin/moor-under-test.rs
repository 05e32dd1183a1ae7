//! The `moor` command line, built inside this package so tests can run it as a child.

fn main() -> std::process::ExitCode {
    moor::cli::main()
}
