//! The command line as clap parses it: every command, its flags and their help.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::default_cache_dir;
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
    Wait(Box<super::wait::WaitArgs>),
    /// Keep a ConfigMap or Secret unpacked in a directory, atomically, and reload the
    /// application after each change: by HTTP (sidecar) or SIGHUP (`-- COMMAND`, subprocess).
    ConfigSync(Box<super::config_sync::ConfigSyncArgs>),
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
    pub(super) fn kubeconfig(&self) -> crate::apply::Kubeconfig {
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
    pub(super) server: String,
    /// The `[moor] api_token` of the controller.
    #[arg(long, env = "MOOR_API_TOKEN", hide_env_values = true)]
    pub(super) token: Option<String>,
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
