//! `moor run` (controller mode) and the commands that talk to a running controller:
//! `moor reconcile`, `moor suspend`, `moor resume`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::apply::Target;
use crate::config::Config;
use crate::reconcile::Moor;
use crate::schedule::{Controller, Options};

/// How `moor run` was asked to run.
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub listen: SocketAddr,
    pub leader_elect: bool,
    pub shard: bool,
    pub identity: Option<String>,
    pub shutdown_grace: Duration,
    pub lease_duration: Duration,
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub fn run(
    cache: &Path,
    file: &Path,
    args: RunArgs,
    kubeconfig: &crate::apply::Kubeconfig,
) -> anyhow::Result<ExitCode> {
    let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config = Config::parse(file, text.clone(), &builtin)?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let options = Options {
        config_file: file.to_owned(),
        leader_election: args.leader_elect,
        shard: args.shard,
        identity,
        shutdown_grace: args.shutdown_grace,
        lease_duration: args.lease_duration,
        lease_grace: (args.lease_duration / 3).max(Duration::from_secs(1)),
    };
    super::cluster::runtime()?.block_on(async move {
        let moor = Moor::new(cache)?;
        let target = Target::connect(kubeconfig).await?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!("moor: serving http://{} (status page, API, /hooks, /metrics)", listener.local_addr()?);
        let (config, bootstrap) = if config.platform.is_none() {
            (config, None)
        } else {
            let Some(platform) = first_platform_config(&moor, &target, &config).await else {
                return anyhow::Ok(());
            };
            (platform, Some(config))
        };
        let controller = Controller::new(moor, target, config, text, bootstrap, options);
        let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::http::serve(controller.clone(), listener, async move {
            let _ = stopped.await;
        }));
        controller.run(signal()).await;
        let _ = stop_http.send(());
        let _ = server.await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The platform config a bootstrap config points at, read before anything starts: until
/// one loads, nothing runs and nothing is removed (a controller with no config would see
/// every pipeline as gone). Tried again every 10 s; `None` when SIGTERM comes first.
async fn first_platform_config(moor: &Moor, target: &Target, bootstrap: &Config) -> Option<Config> {
    let stop = signal();
    tokio::pin!(stop);
    loop {
        match moor.resolve_config(bootstrap.clone(), Some(&target.client)).await {
            Ok(config) => {
                if let Some(revision) = &config.revision {
                    tracing::info!(path = %config.file.display(), "platform config loaded from {revision}");
                }
                return Some(config);
            }
            Err(e) => tracing::error!("cannot load the platform config, trying again in 10 s: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
            () = &mut stop => return None,
        }
    }
}

/// SIGTERM or SIGINT.
pub(super) async fn signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The pod name in a cluster (`HOSTNAME`), else host name and process id.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| "moor".into());
    format!("{host}-{}", std::process::id())
}

/// What to ask a running controller.
#[derive(Debug, Clone, Copy)]
pub enum Request {
    Reconcile,
    Suspend,
    Resume,
}

/// `moor reconcile|suspend|resume PIPELINE`: one API call to a running controller.
pub fn request(server: &str, token: Option<&str>, pipeline: &str, what: Request) -> anyhow::Result<ExitCode> {
    let verb = match what {
        Request::Reconcile => "reconcile",
        Request::Suspend => "suspend",
        Request::Resume => "resume",
    };
    let url = format!("{}/api/v1/pipelines/{pipeline}/{verb}", server.trim_end_matches('/'));
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut request = client.post(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().with_context(|| format!("cannot reach {server}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().unwrap_or_default();
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("(no message)");
        anyhow::bail!("{verb} `{pipeline}`: {status}: {message}");
    }
    match what {
        Request::Reconcile => {
            use crate::schedule::Triggered;
            let result = serde_json::from_value::<Triggered>(body["result"].clone());
            let text = match result {
                Ok(Triggered::Started) => "a run starts now",
                Ok(Triggered::Queued) => "a run is in progress: one more is queued behind it",
                Ok(Triggered::AlreadyQueued) => "a run is in progress and one is already queued",
                Err(_) => anyhow::bail!("{verb} `{pipeline}`: the server answered an unknown result: {body}"),
            };
            println!("{pipeline}: {text}");
        }
        Request::Suspend => println!("{pipeline}: suspended"),
        Request::Resume => println!("{pipeline}: resumed"),
    }
    Ok(ExitCode::SUCCESS)
}
