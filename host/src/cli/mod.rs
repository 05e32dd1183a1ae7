//! The `moor` command line: argument parsing and output; the work is done by the library.

mod args;
mod cluster;
mod config_sync;
mod controller;
mod inspect;
mod new;
mod render;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

pub use args::*;

/// Loads a config (and checks that `only` names one of its pipelines) and the host. A
/// bootstrap config stands for the platform config it points at, read now from its source
/// (its credentials through `kubeconfig`'s cluster, when there is one).
fn load(
    cache: &std::path::Path,
    file: &std::path::Path,
    only: Option<&str>,
    kubeconfig: Option<&crate::apply::Kubeconfig>,
) -> anyhow::Result<(crate::reconcile::Moor, std::sync::Arc<crate::config::Config>)> {
    let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
    let mut config = crate::config::Config::load(file, &builtin)?;
    let moor = crate::reconcile::Moor::new(cache)?;
    if config.platform.is_some() || !config.tenants.is_empty() {
        let tenants;
        (config, tenants) = cluster::runtime()?.block_on(async {
            let client = match kubeconfig {
                Some(kubeconfig) => kubeconfig.load().await.ok().and_then(|c| kube::Client::try_from(c).ok()),
                None => None,
            };
            let config = moor.resolve_config(config, client.as_ref()).await?;
            anyhow::Ok(moor.with_tenants(config, client.as_ref()).await)
        })?;
        if let Some(revision) = &config.revision {
            eprintln!("moor: the config is {} of {revision}", config.file.display());
        }
        for (name, state) in &tenants {
            if let Some(error) = &state.error {
                eprintln!("moor: tenant `{name}` is held (its pipelines neither run nor are removed): {error}");
            }
        }
    }
    if let Some(name) = only {
        anyhow::ensure!(config.pipeline(name).is_some(), "{}: no pipeline is named `{name}`", config.file.display());
    }
    Ok((moor, std::sync::Arc::new(config)))
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
            cluster::delete(&cache, &config, pipeline.as_deref(), dry_run, yes, &cluster.kubeconfig())
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
