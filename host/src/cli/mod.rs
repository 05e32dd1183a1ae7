//! The `moor` command line: argument parsing and output; the work is done by the library.

mod cluster;
mod config_sync;
mod controller;
mod inspect;
mod new;
mod render;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::plugins::PluginKind;

/// Moor keeps a Kubernetes cluster moored to Git, with sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "moor", version, about)]
pub struct Cli {
    /// Where compiled plugins, git mirrors and snapshots are cached.
    #[arg(long, global = true, env = "MOOR_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// Log lines as text or JSON (default: JSON in a cluster, text elsewhere). Which lines:
    /// `MOOR_LOG` (`moor=debug,warn`; default `warn`, `moor=info,warn` for `moor run`).
    #[arg(long, global = true, value_enum, env = "MOOR_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
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
        #[command(flatten)]
        cluster: ClusterArgs,
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
        /// Go past the prune guards' `max_fraction` and `max_count` for this run (a pipeline's
        /// own, and `[moor] prune_guard` for pipelines removed from the config).
        #[arg(long)]
        allow_mass_prune: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Delete what pipelines of this config's instance applied, and their inventories
    /// (like `kapp delete`). Asks first on a terminal.
    Delete {
        config: PathBuf,
        /// Only this pipeline (of the config, or one that left it but still has an inventory).
        #[arg(long)]
        pipeline: Option<String>,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask; needed when stdin is not a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Show how the cluster differs from what the pipelines render (secrets redacted).
    Diff {
        config: PathBuf,
        #[arg(long)]
        pipeline: Option<String>,
        /// Color the diff: auto (on a terminal), always, never.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Controller mode: keep every pipeline reconciled, on its interval and on new
    /// revisions, drift, webhooks and manual requests; serve the status page and metrics.
    Run {
        config: PathBuf,
        /// Address of the status page, API, webhook receiver and /metrics.
        #[arg(long, default_value = "127.0.0.1:8080", env = "MOOR_LISTEN")]
        listen: std::net::SocketAddr,
        /// Take part in leader election on a Lease: only the holder runs pipelines.
        #[arg(long)]
        leader_elect: bool,
        /// Split the pipelines with the other replicas run with `--shard`: each member
        /// holds a Lease, and each pipeline runs on exactly one member at a time.
        #[arg(long, conflicts_with = "leader_elect")]
        shard: bool,
        /// This instance's name in the Lease (default: host name and process id).
        #[arg(long, env = "MOOR_IDENTITY")]
        identity: Option<String>,
        /// On SIGTERM, how long runs in progress may take before they are stopped.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        shutdown_grace: std::time::Duration,
        /// How long the Lease lasts without renewal; a standby takes over after it.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        lease_duration: std::time::Duration,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Wait until dependencies hold (services, jobs, pods, daemonsets, containers, sockets,
    /// custom resources), template config files, then run COMMAND in moor's place: the
    /// container entrypoint of kubernetes-entrypoint, with its `DEPENDENCY_*` variables.
    Wait(Box<wait::WaitArgs>),
    /// Keep a ConfigMap or Secret unpacked in a directory, atomically, and reload the
    /// application after each change: by HTTP (sidecar) or SIGHUP (`-- COMMAND`, subprocess).
    ConfigSync(Box<config_sync::ConfigSyncArgs>),
    /// Ask a running controller to reconcile a pipeline now (or queue one run).
    Reconcile {
        pipeline: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Suspend a pipeline on a running controller.
    Suspend {
        pipeline: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Resume a suspended pipeline on a running controller.
    Resume {
        pipeline: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Print a shell completion script: `source <(moor completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print moor's version, the plugin contract's and each built-in plugin's.
    Version {
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

/// Which cluster, as kubectl's flags say it.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig file (default: `KUBECONFIG`, then `~/.kube/config`, then the
    /// in-cluster config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current one); its namespace is the default one.
    #[arg(long)]
    context: Option<String>,
}

impl ClusterArgs {
    fn kubeconfig(&self) -> crate::apply::Kubeconfig {
        crate::apply::Kubeconfig { file: self.kubeconfig.clone(), context: self.context.clone() }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where a running controller is, and the token its API needs.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "MOOR_SERVER")]
    server: String,
    /// The `[moor] api_token` of the controller.
    #[arg(long, env = "MOOR_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
    /// Publish a plugin file to an OCI registry (as Kubewarden policies are published);
    /// prints the reference pinned by digest, for `[[plugin]] oci = "…"`.
    Push {
        /// The plugin file (a component or a KRM function module).
        file: PathBuf,
        /// Where to push it: `registry[:port]/path:tag`.
        reference: String,
        /// Talk plain HTTP to the registry (a registry on loopback or in a lab).
        #[arg(long)]
        insecure: bool,
    },
    /// Start a new plugin project from a template: the plugin, its SDK and the contract,
    /// `build.sh`, `test.sh` (which runs `moor plugin test`) and a README.
    New {
        /// Name of the plugin and of its directory.
        name: String,
        #[arg(long, value_enum)]
        kind: Kind,
        /// The language: Python, JavaScript and Go plugins are renderers or validators.
        #[arg(long = "lang", value_enum, default_value_t = Language::Rust)]
        language: Language,
        /// Where to create the project.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run a plugin once on a tree of manifests, as a pipeline would, and print the result.
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// A component or KRM function file, or the name of a built-in plugin.
    pub plugin: String,
    /// A directory of manifests (renderers and validators).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// The step's `with` table, as JSON.
    #[arg(long, default_value = "{}")]
    pub with: String,
    /// For a renderer that transforms objects: render the input with `yaml` first.
    #[arg(long)]
    pub after_yaml: bool,
    /// For a KRM function, which serves as either: run it as a `validator` (default: as a
    /// `renderer`). A component runs as its own kind.
    #[arg(long = "as", value_enum)]
    pub as_kind: Option<Kind>,
    /// For a notifier: a host (`host` or `host:port`) it may reach; repeatable.
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl From<Kind> for PluginKind {
    fn from(kind: Kind) -> PluginKind {
        match kind {
            Kind::Renderer => PluginKind::Renderer,
            Kind::Validator => PluginKind::Validator,
            Kind::Notifier => PluginKind::Notifier,
            Kind::Source => PluginKind::Source,
        }
    }
}

/// A language a plugin can be written in, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Rust,
    Python,
    /// JavaScript, built with componentize-qjs.
    Js,
    /// Go, as a KRM function (kyaml's fn/framework).
    Go,
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

/// The whole program: parses the command line, sets up logging and TLS, runs, and turns
/// an error into a message and an exit code.
pub fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // The controller, `wait` and `config-sync` log what they do; one-shot commands only warnings.
    let long_running = matches!(cli.command, Command::Run { .. } | Command::Wait(_) | Command::ConfigSync(_));
    let default = if long_running { "moor=info,warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MOOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    match cli.log_format.unwrap_or(if in_cluster { LogFormat::Json } else { LogFormat::Text }) {
        LogFormat::Json => logs.json().init(),
        // Colours only for a person at a terminal, never in a file or a pipe.
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
    crate::init_tls();
    match run(cli) {
        Ok(code) => code,
        // A closed stdout (`moor build | head`) is not an error worth reporting.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, as anyhow's `{:#}` prints them, without a cause
/// that the message before it already ends with (an error whose text includes its source).
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1).map(ToString::to_string) {
        if !text.ends_with(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// Caps glibc's malloc arenas at two. With its default (eight per core), the many threads
/// of a busy controller each kept memory of their own: 50 to 80 MiB more at peak.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; this runs first thing in `main`,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cache = cli.cache_dir();
    match cli.command {
        Command::Build { config, pipeline } => render::build(&cache, &config, pipeline.as_deref()),
        Command::Plan { config, output, cluster } => render::plan(&cache, &config, output, &cluster.kubeconfig()),
        Command::Apply { config, pipeline, dry_run, allow_mass_prune, output, cluster } => {
            let run = crate::apply::RunOptions { dry_run, allow_mass_prune };
            cluster::apply(&cache, &config, pipeline.as_deref(), run, output, &cluster.kubeconfig())
        }
        Command::Delete { config, pipeline, dry_run, yes, cluster } => {
            cluster::delete(&config, pipeline.as_deref(), dry_run, yes, &cluster.kubeconfig())
        }
        Command::Diff { config, pipeline, color, cluster } => {
            cluster::diff(&cache, &config, pipeline.as_deref(), color, &cluster.kubeconfig())
        }
        Command::Run { config, listen, leader_elect, shard, identity, shutdown_grace, lease_duration, cluster } => {
            let args = controller::RunArgs { listen, leader_elect, shard, identity, shutdown_grace, lease_duration };
            controller::run(&cache, &config, args, &cluster.kubeconfig())
        }
        Command::Wait(args) => wait::wait(*args),
        Command::ConfigSync(args) => config_sync::config_sync(*args),
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "moor",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Version { output } => inspect::version(&cache, output),
        Command::Reconcile { pipeline, server } => {
            controller::request(&server.server, server.token.as_deref(), &pipeline, controller::Request::Reconcile)
        }
        Command::Suspend { pipeline, server } => {
            controller::request(&server.server, server.token.as_deref(), &pipeline, controller::Request::Suspend)
        }
        Command::Resume { pipeline, server } => {
            controller::request(&server.server, server.token.as_deref(), &pipeline, controller::Request::Resume)
        }
        Command::Plugin(PluginCommand::Inspect { file, output }) => inspect::inspect(&cache, &file, output),
        Command::Plugin(PluginCommand::Push { file, reference, insecure }) => {
            inspect::push(&cache, &file, &reference, insecure)
        }
        Command::Plugin(PluginCommand::New { name, kind, language, dir }) => new::new(&name, kind, language, &dir),
        Command::Plugin(PluginCommand::Test(args)) => inspect::test(&cache, &args),
    }
}

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn an_error_prints_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x.wasm: {source}")]
        struct Read {
            source: std::io::Error,
        }
        let e = anyhow::Error::new(Read { source: io() });
        assert_eq!(message(&e), "cannot read x.wasm: No such file or directory");
        let e = anyhow::Error::new(io()).context("plugin `x`");
        assert_eq!(message(&e), "plugin `x`: No such file or directory");
    }
}
