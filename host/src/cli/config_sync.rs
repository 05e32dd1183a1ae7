//! `moor config-sync`: a ConfigMap or Secret kept unpacked in a directory, the application
//! reloaded by HTTP (sidecar) or SIGHUP (subprocess), health and metrics served.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config_sync::{Health, Kind, Options, Reload, unpack::Unpacker};
use crate::wait::spec::Named;

#[derive(Debug, clap::Args)]
pub struct ConfigSyncArgs {
    /// The ConfigMap to follow: `[namespace/]name` (default namespace: the kubeconfig's or,
    /// in a pod, its own).
    #[arg(long, value_name = "[NS/]NAME", required_unless_present = "secret", conflicts_with = "secret")]
    pub configmap: Option<String>,
    /// A Secret to follow instead: `[namespace/]name`.
    #[arg(long, value_name = "[NS/]NAME")]
    pub secret: Option<String>,
    /// The directory the keys are unpacked into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// The mode of the files, in octal.
    #[arg(long, default_value = "0644", value_parser = parse_mode)]
    pub mode: u32,
    /// Sidecar mode: call this URL after each change (`/healthz` fails while it fails).
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub reload_url: Option<String>,
    /// The method of the reload call.
    #[arg(long, default_value = "POST", requires = "reload_url")]
    pub reload_method: String,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, default_value = "0.0.0.0:8081", env = "MOOR_LISTEN")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub cluster: super::ClusterArgs,
    /// Subprocess mode: the application, run as a child that gets SIGHUP after each change
    /// and SIGTERM when moor gets it; moor exits with it.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("`{text}` is not a file mode in octal (0644)"))
}

pub fn config_sync(args: ConfigSyncArgs) -> anyhow::Result<ExitCode> {
    let (kind, object) = match (&args.configmap, &args.secret) {
        (Some(cm), _) => (Kind::ConfigMap, cm),
        (None, Some(secret)) => (Kind::Secret, secret),
        (None, None) => anyhow::bail!("--configmap or --secret is needed"),
    };
    let reload = match (&args.reload_url, args.command.is_empty()) {
        (Some(url), _) => {
            let method = reqwest::Method::from_bytes(args.reload_method.to_uppercase().as_bytes())
                .with_context(|| format!("--reload-method `{}` is not an HTTP method", args.reload_method))?;
            Reload::Http { url: url.clone(), method }
        }
        (None, false) => Reload::Child(args.command.clone()),
        (None, true) => Reload::None,
    };
    let code = super::cluster::runtime()?.block_on(async {
        let config = args.cluster.kubeconfig().load().await?;
        let (namespace, name) = object.split_once('/').unwrap_or((&config.default_namespace, object));
        anyhow::ensure!(!namespace.is_empty() && !name.is_empty(), "`{object}` is not `[namespace/]name`");
        let object = Named { namespace: namespace.into(), name: name.into() };
        let client = kube::Client::try_from(config).context("cannot build a client for the kubeconfig")?;
        let health = Arc::new(Health::default());
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let router = health.clone().router();
        let limits = crate::http::serve::Limits::default();
        tokio::spawn(crate::http::serve::serve(router, listener, limits, std::future::pending()));
        let unpacker = Unpacker { root: args.root.clone(), mode: args.mode };
        let options = Options { kind, object, unpacker, reload };
        anyhow::Ok(crate::config_sync::run(client, options, health, super::controller::signal()).await)
    })?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
