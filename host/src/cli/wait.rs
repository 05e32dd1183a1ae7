//! `moor wait [DEPENDENCIES] -- COMMAND`: kubernetes-entrypoint (KE-1..KE-3). Waits until
//! every dependency holds, templates config files, then execs the command.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::wait::{Gate, Viewpoint, spec, template};

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub dependencies: spec::Flags,
    /// Template a config file with this pod's `{{ .IP }}` and `{{ .HOSTNAME }}` once the
    /// dependencies hold: `DEST` reads `<config-dir>/<name>/<name>` (as
    /// `DEPENDENCY_CONFIG` does), `SRC:DEST` reads SRC.
    #[arg(long = "config", value_name = "[SRC:]DEST")]
    pub configs: Vec<String>,
    /// Where the templates of `--config DEST` and `DEPENDENCY_CONFIG` are.
    #[arg(long, default_value = "/configmaps")]
    pub config_dir: PathBuf,
    /// Give up after this long and exit 1, naming what did not hold (default: wait forever).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// The namespace of dependencies that name none (default: the kubeconfig's or, in a
    /// pod, its own).
    #[arg(long, env = "NAMESPACE")]
    pub namespace: Option<String>,
    /// This pod's name, for `--container`, `--daemonset` and `--pod-on-node` (set it from
    /// the downward API: `fieldRef: metadata.name`).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    #[command(flatten)]
    pub cluster: super::ClusterArgs,
    /// The command that replaces moor once everything holds (default: `COMMAND`, split on
    /// spaces; with neither, moor exits 0, as an init container).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn wait(args: WaitArgs) -> anyhow::Result<ExitCode> {
    let runtime = super::cluster::runtime()?;
    // A wait for files alone needs no cluster.
    let config = runtime.block_on(args.cluster.kubeconfig().load());
    let namespace = args.namespace.clone().filter(|n| !n.is_empty());
    let namespace = namespace
        .or_else(|| config.as_ref().ok().map(|c| c.default_namespace.clone()))
        .unwrap_or_else(|| "default".into());
    let env = crate::wait::env::from_env(|name| std::env::var(name).ok(), &namespace)?;
    let mut dependencies = args.dependencies.dependencies(&namespace)?;
    dependencies.extend(env.dependencies);
    let pod_name = args.pod_name.clone().filter(|n| !n.is_empty());
    if pod_name.is_none()
        && let Some(dep) = dependencies.iter().find(|d| d.needs_pod())
    {
        anyhow::bail!("{dep} needs this pod's name: set POD_NAME (downward API `metadata.name`) or --pod-name");
    }
    let mut templates = Vec::new();
    for c in &args.configs {
        templates.push(match c.split_once(':') {
            Some((src, dest)) => (PathBuf::from(src), PathBuf::from(dest)),
            None => (template::source_of(c.as_ref(), &args.config_dir), PathBuf::from(c)),
        });
    }
    templates.extend(env.configs.iter().map(|dest| (template::source_of(dest, &args.config_dir), dest.clone())));
    let command = if args.command.is_empty() { env.command } else { args.command.clone() };

    if !dependencies.is_empty() {
        let in_cluster = dependencies.iter().any(|d| !matches!(d, spec::Dependency::Socket(_)));
        runtime.block_on(async {
            let client = match config {
                Ok(config) => Some(kube::Client::try_from(config).context("cannot build a client for the kubeconfig")?),
                Err(e) if in_cluster => return Err(e.into()),
                Err(_) => None,
            };
            let gate = Gate::start(client.as_ref(), &dependencies, &Viewpoint::Pod { namespace, name: pod_name });
            gate.wait(args.timeout, Duration::from_secs(10)).await?;
            anyhow::Ok(())
        })?;
    }
    drop(runtime);
    if !templates.is_empty() {
        let values = template::Values::of_this_host(
            std::env::var("INTERFACE_NAME").ok().as_deref(),
            std::env::var("POD_IP").ok(),
        )?;
        for (source, dest) in &templates {
            template::write(source, dest, &values)?;
            tracing::info!("templated {} into {}", source.display(), dest.display());
        }
    }
    let Some((program, rest)) = command.split_first() else {
        return Ok(ExitCode::SUCCESS);
    };
    // Replaces this process: signals and the exit code are the command's own.
    let error = std::process::Command::new(program).args(rest).exec();
    Err(anyhow::anyhow!("cannot run `{program}`: {error}"))
}
