//! The `moor` binary: parses the command line, sets up logging, runs the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = moor::cli::Cli::parse();
    // The controller logs what it does; one-shot commands only warnings.
    let default = if matches!(cli.command, moor::cli::Command::Run { .. }) { "moor=info,warn" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MOOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
    moor::init_tls();
    match moor::cli::run(cli) {
        Ok(code) => code,
        // A closed stdout (`moor build | head`) is not an error worth reporting.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
