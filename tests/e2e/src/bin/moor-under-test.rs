//! The `moor` command line, built inside this package so tests can run it as a child.

fn main() -> std::process::ExitCode {
    use clap::Parser;
    match moor::cli::run(moor::cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
