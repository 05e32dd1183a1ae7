//! `moor config-sync` (k8s-config-controller, CC-1..CC-4): follows one ConfigMap or Secret
//! by a watch, unpacks every change atomically into a directory ([`unpack`]), then tells the
//! application: an HTTP reload call (sidecar mode), or SIGHUP to the application run as a
//! child (subprocess mode, which ends with the child and forwards SIGTERM). `/healthz`
//! turns unhealthy while the last reload failed; `/metrics` counts reloads.

pub mod unpack;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::wait::spec::Named;

/// Which kind of object holds the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ConfigMap,
    Secret,
}

/// How the application learns of a change.
#[derive(Debug, Clone)]
pub enum Reload {
    /// Files only (an application that watches them itself).
    None,
    /// Sidecar mode: a request to the application's reload endpoint.
    Http { url: String, method: reqwest::Method },
    /// Subprocess mode: run this command as a child and send it SIGHUP.
    Child(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub kind: Kind,
    pub object: Named,
    pub unpacker: unpack::Unpacker,
    pub reload: Reload,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    /// `success` or `failure`.
    result: String,
}

/// Health and metrics, shared by the sync loop and the HTTP server.
#[derive(Debug)]
pub struct Health {
    registry: Registry,
    reloads: Family<ResultLabels, Counter>,
    updates: Counter,
    last_reload: Gauge<f64, std::sync::atomic::AtomicU64>,
    last_success: Gauge,
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    /// The first version is in place.
    ready: bool,
    /// Why the last reload (or unpack) failed, until one succeeds.
    failure: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("moor_config_sync");
        let reloads = Family::<ResultLabels, Counter>::default();
        let updates = Counter::default();
        let last_reload = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let last_success = Gauge::default();
        registry.register("reloads", "Reloads of the application, by result", reloads.clone());
        registry.register("updates", "Versions of the files unpacked", updates.clone());
        registry.register("last_reload_timestamp_seconds", "When the last reload ended", last_reload.clone());
        registry.register("last_reload_success", "1 when the last reload succeeded", last_success.clone());
        Health { registry, reloads, updates, last_reload, last_success, state: Mutex::default() }
    }
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn unpacked(&self) {
        self.updates.inc();
        self.state().ready = true;
    }

    fn reloaded(&self, result: Result<(), String>) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        self.last_reload.set(now.as_secs_f64());
        let label = if result.is_ok() { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabels { result: label.into() }).inc();
        self.last_success.set(i64::from(result.is_ok()));
        if let Err(why) = &result {
            tracing::error!("reload failed: {why}");
        }
        self.state().failure = result.err();
    }

    /// `/healthz`, `/readyz` and `/metrics`.
    pub fn router(self: Arc<Self>) -> axum::Router {
        use axum::routing::get;
        let healthz = |h: Arc<Health>| async move {
            match &h.state().failure {
                None => (StatusCode::OK, "ok".to_owned()),
                Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}")),
            }
        };
        let readyz = |h: Arc<Health>| async move {
            if h.state().ready { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "starting") }
        };
        let metrics = |h: Arc<Health>| async move {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &h.registry).expect("writing to a String");
            ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], out).into_response()
        };
        let (h1, h2, h3) = (self.clone(), self.clone(), self);
        axum::Router::new()
            .route("/healthz", get(move || healthz(h1.clone())))
            .route("/readyz", get(move || readyz(h2.clone())))
            .route("/metrics", get(move || metrics(h3.clone())))
    }
}

/// The keys of the object and its `moor.dev/paths` annotation, once it exists.
type Contents = Option<(BTreeMap<String, Vec<u8>>, Option<String>)>;

fn config_map_contents(cm: &ConfigMap) -> Contents {
    let mut keys: BTreeMap<String, Vec<u8>> =
        cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
    keys.extend(cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
    Some((keys, annotation(&cm.metadata)))
}

fn secret_contents(secret: &Secret) -> Contents {
    let keys = secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    Some((keys, annotation(&secret.metadata)))
}

fn annotation(meta: &kube::api::ObjectMeta) -> Option<String> {
    meta.annotations.as_ref()?.get(crate::labels::PATHS_ANNOTATION).cloned()
}

/// Follows the object until `stop` (SIGTERM) or, in subprocess mode, until the child
/// exits; returns the exit code to leave with.
pub async fn run(client: kube::Client, options: Options, health: Arc<Health>, stop: impl Future<Output = ()>) -> i32 {
    let what = match options.kind {
        Kind::ConfigMap => format!("configmap {}", options.object),
        Kind::Secret => format!("secret {}", options.object),
    };
    let by_name = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={}", options.object.name));
    let ns = &options.object.namespace;
    let contents = match options.kind {
        Kind::ConfigMap => crate::wait::snapshots(Api::<ConfigMap>::namespaced(client, ns), by_name)
            .map(|s| s.map(|objects| objects.first().and_then(config_map_contents)))
            .boxed(),
        Kind::Secret => crate::wait::snapshots(Api::<Secret>::namespaced(client, ns), by_name)
            .map(|s| s.map(|objects| objects.first().and_then(secret_contents)))
            .boxed(),
    };
    let mut contents = contents;
    let mut stop = std::pin::pin!(stop);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    let mut app = App { what, options: &options, health: &health, http, child: None };
    loop {
        tokio::select! {
            item = contents.next() => match item {
                None => return 1,
                Some(Err(e)) => tracing::warn!("cannot watch {}: {e}", app.what),
                Some(Ok(None)) => tracing::warn!("{} is not there; the files stay as they are", app.what),
                Some(Ok(Some((keys, paths)))) => {
                    if let Err(code) = app.update(keys, paths.as_deref()).await {
                        return code;
                    }
                }
            },
            status = async { app.child.as_mut().unwrap().wait().await }, if app.child.is_some() => {
                return exit_code(status, &options.reload);
            }
            _ = &mut stop => {
                let Some(mut c) = app.child.take() else { return 0 };
                tracing::info!("stopping: SIGTERM to the application");
                let _ = signal(&c, libc::SIGTERM);
                return exit_code(c.wait().await, &options.reload);
            }
        }
    }
}

/// The application config-sync keeps up to date, and how it tells it.
struct App<'a> {
    /// `configmap ns/name`.
    what: String,
    options: &'a Options,
    health: &'a Health,
    http: reqwest::Client,
    /// Subprocess mode: the application, once started.
    child: Option<tokio::process::Child>,
}

impl App<'_> {
    /// A state of the object: unpacked, then the application started (subprocess mode,
    /// the first time) or told, when the files changed. An exit code when it cannot start.
    async fn update(&mut self, keys: BTreeMap<String, Vec<u8>>, paths: Option<&str>) -> Result<(), i32> {
        let unpacked = unpack::payload(keys, paths).and_then(|payload| self.options.unpacker.unpack(&payload));
        let changed = match unpacked {
            Ok(changed) => changed,
            Err(e) => {
                self.health.reloaded(Err(format!("cannot unpack {}: {e}", self.what)));
                return Ok(());
            }
        };
        if changed {
            tracing::info!("unpacked a new version of {} into {}", self.what, self.options.unpacker.root.display());
            self.health.unpacked();
        } else {
            self.health.state().ready = true;
        }
        match (&self.options.reload, &self.child) {
            (Reload::Child(command), None) => {
                self.child = Some(spawn(command).map_err(|e| {
                    tracing::error!("{e}");
                    127
                })?);
            }
            _ if !changed => {}
            (Reload::Child(_), Some(c)) => self.health.reloaded(signal(c, libc::SIGHUP)),
            (Reload::Http { url, method }, _) => self.health.reloaded(call(&self.http, method, url).await),
            (Reload::None, _) => {}
        }
        Ok(())
    }
}

fn spawn(command: &[String]) -> Result<tokio::process::Child, String> {
    let (program, args) = command.split_first().ok_or("no command to run")?;
    tokio::process::Command::new(program).args(args).spawn().map_err(|e| format!("cannot run `{program}`: {e}"))
}

fn signal(child: &tokio::process::Child, signal: libc::c_int) -> Result<(), String> {
    let pid = child.id().ok_or("the application has exited")?;
    let pid = libc::pid_t::try_from(pid).map_err(|_| "a process id out of range")?;
    // SAFETY: kill(2) takes plain integers; the pid is our own child's, not yet reaped.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(format!("cannot signal the application: {}", std::io::Error::last_os_error()))
    }
}

/// The child's exit code as a shell gives it (128 + the signal that ended it).
fn exit_code(status: std::io::Result<std::process::ExitStatus>, reload: &Reload) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let name = match reload {
        Reload::Child(command) => command.first().map(String::as_str).unwrap_or("?"),
        _ => "?",
    };
    match status {
        Ok(status) => {
            let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            tracing::info!("the application `{name}` exited with {status}: config-sync ends with it");
            code
        }
        Err(e) => {
            tracing::error!("cannot wait for the application `{name}`: {e}");
            1
        }
    }
}

/// One reload request, retried twice (after 1 s and 2 s) when it fails.
async fn call(http: &reqwest::Client, method: &reqwest::Method, url: &str) -> Result<(), String> {
    let mut last = String::new();
    for delay in [0, 1, 2] {
        tokio::time::sleep(Duration::from_secs(delay)).await;
        match http.request(method.clone(), url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("{method} {url}: {}", r.status()),
            Err(e) => last = format!("{method} {url}: {e}"),
        }
    }
    Err(last)
}
