//! The `moor` command line: argument parsing and output; the work is done by the library.

mod cluster;
mod inspect;
mod new;
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
    /// Reconcile every pipeline once, in `depends_on` order: apply, prune, wait for health.
    Apply {
        config: PathBuf,
        /// Only this pipeline (removed pipelines are then left alone).
        #[arg(long)]
        pipeline: Option<String>,
        /// Server-side dry-run only: report what would change.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Show how the cluster differs from what the pipelines render (secrets redacted).
    Diff {
        config: PathBuf,
        #[arg(long)]
        pipeline: Option<String>,
        /// Color the diff: auto (on a terminal), always, never.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
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
    /// Start a new plugin crate from a template.
    New {
        /// Name of the plugin and of its crate directory.
        name: String,
        #[arg(long, value_enum)]
        kind: Kind,
        /// Where to create the crate.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// A local `plugins/sdk` of a moor checkout, instead of the SDK from git.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Run a plugin once on a tree of manifests, as a pipeline would, and print the result.
    Test {
        /// A component file, or the name of a built-in plugin.
        plugin: String,
        /// A directory of manifests (renderers and validators).
        #[arg(long)]
        input: Option<PathBuf>,
        /// The step's `with` table, as JSON.
        #[arg(long, default_value = "{}")]
        with: String,
        /// For a renderer that transforms objects: render the input with `yaml` first.
        #[arg(long)]
        after_yaml: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

/// A plugin kind, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Renderer,
    Validator,
    Notifier,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
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

/// Loads a config (and checks that `only` names one of its pipelines) and the host.
fn load(
    cache: &std::path::Path,
    file: &std::path::Path,
    only: Option<&str>,
) -> anyhow::Result<(crate::reconcile::Moor, std::sync::Arc<crate::config::Config>)> {
    let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
    let config = crate::config::Config::load(file, &builtin)?;
    if let Some(name) = only {
        anyhow::ensure!(config.pipeline(name).is_some(), "{}: no pipeline is named `{name}`", file.display());
    }
    Ok((crate::reconcile::Moor::new(cache)?, std::sync::Arc::new(config)))
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
        Command::Apply { config, pipeline, dry_run, output } => {
            cluster::apply(&cache, &config, pipeline.as_deref(), dry_run, output)
        }
        Command::Diff { config, pipeline, color } => cluster::diff(&cache, &config, pipeline.as_deref(), color),
        Command::Plugin(PluginCommand::Inspect { file, output }) => inspect::inspect(&cache, &file, output),
        Command::Plugin(PluginCommand::New { name, kind, dir, sdk_path }) => {
            new::new(&name, kind, &dir, sdk_path.as_deref())
        }
        Command::Plugin(PluginCommand::Test { plugin, input, with, after_yaml, output }) => {
            inspect::test(&cache, &plugin, input.as_deref(), &with, after_yaml, output)
        }
    }
}
