//! The `moor` command line: argument parsing and output; the work is done by the library.

mod inspect;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Moor keeps a Kubernetes cluster moored to Git, with sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "moor", version, about)]
pub struct Cli {
    /// Where compiled plugins, git mirrors and snapshots are cached.
    #[arg(long, global = true, env = "MOOR_CACHE")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render pipelines and print their objects as YAML (Secret values redacted).
    Build {
        config: PathBuf,
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// Render and validate every pipeline and show what would be applied.
    Plan {
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show what a plugin is: name, version, kind, contract, capabilities, config schema.
    Inspect {
        /// A component file, or the name of a built-in plugin.
        file: String,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl Cli {
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }
}

/// `$XDG_CACHE_HOME/moor`, else `~/.cache/moor`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("moor")
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cache = cli.cache_dir();
    match cli.command {
        Command::Build { config, pipeline } => render::build(&cache, &config, pipeline.as_deref()),
        Command::Plan { config, output } => render::plan(&cache, &config, output),
        Command::Plugin(PluginCommand::Inspect { file, output }) => inspect::inspect(&cache, &file, output),
    }
}
