//! Test harness for a real Kubernetes control plane (tests/cluster/up).
//!
//! One cluster serves a whole test binary. When the test command already started one
//! (it exports `MOOR_TEST_KUBECONFIG`), the harness uses it. Otherwise the first test that
//! asks starts a private one, and a watchdog process tears it down when the test binary
//! exits for any reason (success, failed test, panic, even `kill -9`): the watchdog holds
//! the read end of a pipe whose write end only this process holds, and runs
//! `tests/cluster/down` when it closes.
//!
//! Each test gets its own namespaces from [`Cluster::namespace`].

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use moor::interrupt::Interrupt;
use moor::reconcile::{Mode, RunContext, RunFailure, RunReport};

/// A running control plane.
#[derive(Debug)]
pub struct Cluster {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Directory of kubectl, kustomize and the control-plane binaries.
    pub bin: PathBuf,
    /// Its state directory, when this process started it (and may break it).
    pub state: Option<PathBuf>,
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

static WATCHDOGS: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static Cluster {
    moor::init_tls();
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        start(Some("MOOR_TEST_KUBECONFIG"), "test", &[])
            .unwrap_or_else(|e| panic!("cannot start the test control plane: {e:#}"))
    })
}

/// A second control plane, for pipelines that apply to a remote cluster (`[[cluster]]`):
/// `MOOR_TEST_REMOTE_KUBECONFIG`'s, else a private one started on first use.
pub fn remote_cluster() -> &'static Cluster {
    moor::init_tls();
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        start(Some("MOOR_TEST_REMOTE_KUBECONFIG"), "remote", &[])
            .unwrap_or_else(|e| panic!("cannot start the second test control plane: {e:#}"))
    })
}

/// A control plane of the calling test's own, which it may break (`Cluster::fault`);
/// `env` goes to `tests/cluster/up` (`MOOR_CLUSTER_APF=1`). Stopped when the test binary
/// exits.
pub fn private_cluster(name: &str, env: &[(&str, &str)]) -> anyhow::Result<Cluster> {
    moor::init_tls();
    start(None, name, env)
}

fn start(kubeconfig_var: Option<&str>, name: &str, env: &[(&str, &str)]) -> anyhow::Result<Cluster> {
    if let Some(kubeconfig_var) = kubeconfig_var
        && let Ok(kubeconfig) = std::env::var(kubeconfig_var)
    {
        let bin = std::env::var("MOOR_TEST_BIN")
            .with_context(|| format!("{kubeconfig_var} is set but MOOR_TEST_BIN is not"))?;
        return Ok(Cluster { kubeconfig: kubeconfig.into(), bin: bin.into(), state: None });
    }
    let root = repo_root();
    let cache = std::env::var_os("MOOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/moor"));
    let state = cache.join(format!("cluster-{name}-{}", std::process::id()));

    // The watchdog first, so that even a failed start is cleaned up.
    let watchdog = Command::new("setsid")
        .args(["bash", "-c", "cat >/dev/null; exec \"$0\"/tests/cluster/down"])
        .arg(&root)
        .env("MOOR_CLUSTER_DIR", &state)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the cluster watchdog")?;
    WATCHDOGS.lock().unwrap().push(watchdog);

    let out = Command::new(root.join("tests/cluster/up"))
        .env("MOOR_CLUSTER_DIR", &state)
        .envs(env.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run tests/cluster/up")?;
    if !out.status.success() {
        bail!("tests/cluster/up failed ({})", out.status);
    }
    let mut kubeconfig = None;
    let mut bin = None;
    for line in out.stdout.lines() {
        let line = line?;
        if let Some(v) = line.strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(PathBuf::from(v));
        } else if let Some(v) = line.strip_prefix("export PATH=") {
            bin = v.split(':').next().map(PathBuf::from);
        }
    }
    Ok(Cluster {
        kubeconfig: kubeconfig.context("tests/cluster/up printed no KUBECONFIG")?,
        bin: bin.context("tests/cluster/up printed no PATH")?,
        state: Some(state),
    })
}

impl Cluster {
    /// A client with the admin credential.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        self.client_with(KubeConfigOptions::default(), |_| {}).await
    }

    /// A client acting as `user` (and its groups) through impersonation.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> anyhow::Result<kube::Client> {
        let user = user.to_owned();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.client_with(KubeConfigOptions::default(), move |config| {
            config.auth_info.impersonate = Some(user.clone());
            config.auth_info.impersonate_groups = Some(groups.clone());
        })
        .await
    }

    async fn client_with(
        &self,
        options: KubeConfigOptions,
        tweak: impl Fn(&mut kube::Config),
    ) -> anyhow::Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
        tweak(&mut config);
        Ok(kube::Client::try_from(config)?)
    }

    /// Creates a namespace of its own for a test: `<prefix>-<pid>-<n>`.
    pub async fn namespace(&self, client: &kube::Client, prefix: &str) -> anyhow::Result<String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
        Ok(name)
    }

    /// `tests/cluster/fault ACTION COMPONENT` on this cluster, which this process started.
    pub fn fault(&self, action: &str, component: &str) -> anyhow::Result<()> {
        let state = self.state.as_ref().context("only a cluster this process started can be broken")?;
        let out = Command::new(repo_root().join("tests/cluster/fault"))
            .args([action, component])
            .env("MOOR_CLUSTER_DIR", state)
            .output()?;
        anyhow::ensure!(out.status.success(), "fault {action} {component}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    /// `kubectl` bound to this cluster.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {seconds}s waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A moor project on disk for one test: a config and a tree of manifests, with its own
/// namespace and its own instance name (so that removing pipelines never touches another
/// test's).
#[derive(Debug)]
pub struct Project {
    pub dir: tempfile::TempDir,
    /// The test's namespace (created by [`Project::new`]).
    pub ns: String,
    pub instance: String,
}

impl Project {
    pub async fn new(client: &kube::Client, prefix: &str) -> anyhow::Result<Project> {
        let ns = cluster().namespace(client, prefix).await?;
        Ok(Project { dir: tempfile::tempdir()?, instance: ns.clone(), ns })
    }

    /// Writes `tree/<path>`; `{ns}` in the contents becomes the test's namespace.
    pub fn file(&self, path: &str, contents: &str) {
        let at = self.dir.path().join("tree").join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, contents.replace("{ns}", &self.ns)).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.dir.path().join("tree").join(path)).unwrap();
    }

    /// Writes `moor.toml`: the instance, a `local` source on `tree/`, and `pipelines`
    /// (TOML, with `{ns}` replaced).
    pub fn config(&self, pipelines: &str) -> PathBuf {
        self.config_with("", "", pipelines)
    }

    /// [`Project::config`] with more `[moor]` settings and more keys of the `local` source
    /// (TOML lines; `{ns}` replaced everywhere).
    pub fn config_with(&self, settings: &str, local: &str, pipelines: &str) -> PathBuf {
        let line = |extra: &str| if extra.is_empty() { String::new() } else { format!("{}\n", extra.trim_end()) };
        let text = format!(
            "[moor]\ninstance = \"{}\"\n{}\n[[source]]\nname = \"local\"\npath = \"tree\"\n{}\n{}",
            self.instance,
            line(settings),
            line(local),
            pipelines
        )
        .replace("{ns}", &self.ns);
        let file = self.dir.path().join("moor.toml");
        std::fs::write(&file, text).unwrap();
        std::fs::create_dir_all(self.dir.path().join("tree")).unwrap();
        file
    }

    /// `moor apply` through the library: every pipeline once.
    pub async fn apply(&self) -> anyhow::Result<Vec<moor::reconcile::PipelineResult>> {
        Ok(self.apply_with(moor::apply::RunOptions::default()).await?.results)
    }

    /// `moor apply` of `moor.toml` with `run`'s options: the results and the notes.
    pub async fn apply_with(&self, run: moor::apply::RunOptions) -> anyhow::Result<moor::reconcile::ConfigRun> {
        apply_file(&self.dir.path().join("moor.toml"), run).await
    }

    /// The result of the one pipeline named `name`; panics with its error when it failed.
    pub async fn apply_ok(&self, name: &str) -> moor::apply::Report {
        let results = self.apply().await.expect("apply runs");
        let result = results.into_iter().find(|r| r.pipeline == name).unwrap_or_else(|| panic!("no result for {name}"));
        assert!(result.ok, "pipeline {name} failed: {}", result.error.unwrap_or_default());
        result.report.expect("a report")
    }

    /// The names of the objects the inventory of pipeline `name` (of this instance) lists.
    pub async fn inventory_names(&self, name: &str) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let client = cluster().client().await?;
        let store = moor::apply::inventory::Store::new(client, "moor-system", &self.instance);
        let inventory = store.load(name).await.map_err(anyhow::Error::msg)?;
        Ok(inventory.refs().map(|r| r.name.clone()).collect())
    }

    /// The error of pipeline `name`, which must have failed.
    pub async fn apply_err(&self, name: &str) -> String {
        let results = self.apply().await.expect("apply runs");
        let result = results.into_iter().find(|r| r.pipeline == name).unwrap_or_else(|| panic!("no result for {name}"));
        assert!(!result.ok, "pipeline {name} should have failed: {:?}", result.report);
        result.error.unwrap_or_default()
    }
}

/// `moor apply FILE` through the library, on the test cluster.
pub async fn apply_file(file: &Path, run: moor::apply::RunOptions) -> anyhow::Result<moor::reconcile::ConfigRun> {
    let builtin: Vec<&str> = moor::plugins::builtin_names().collect();
    let config = moor::config::Config::load(file, &builtin)?;
    let moor = moor::reconcile::Moor::new(&plugin_cache())?;
    let target = cluster().target().await?;
    Ok(moor.apply_config(std::sync::Arc::new(config), &target, None, run, &|_| {}).await)
}

/// Runs `git ARGS` in `dir` (a fixed identity, branch `main`), panicking on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=moor-test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Compiled plugins, shared by the tests of a run (and the Go plugins of the machine).
pub fn plugin_cache() -> PathBuf {
    moor_test_artifacts::plugin_cache().to_owned()
}

/// Renders and validates `pipeline` as an offline `moor build` does, from a test that is not
/// async: [`moor::reconcile::Moor::run`] in [`Mode::Render`] without a cluster, with
/// `secrets` already read and renderers told `context`. The report (its `objects`,
/// `revision` and `findings`), or the run's failure.
pub fn render_offline(
    moor: &moor::reconcile::Moor,
    prepared: &moor::reconcile::Prepared,
    pipeline: &moor::config::PipelineSpec,
    secrets: moor::secrets::SecretValues,
    context: moor::plugins::RenderContext,
) -> Result<RunReport, RunFailure> {
    let ctx = RunContext { prepared, pipeline, secrets, place: None, render: context, interrupt: Interrupt::new() };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let mut report = runtime.block_on(moor.run(&ctx, Mode::Render, None, &|_| {}));
    std::mem::replace(&mut report.outcome, Ok(())).map(|()| report)
}

/// An `X-Hub-Signature-256` value for `body` signed with `secret`, as GitHub makes it:
/// computed here, apart from the controller's own check.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Cluster {
    /// What `moor` connects to: the admin kubeconfig.
    pub async fn target(&self) -> anyhow::Result<moor::apply::Target> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(moor::apply::Target::with_config(config).await?)
    }
}

/// A `moor run` child process of a test, stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Controller {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

/// Peak resident set (VmHWM) of a process, in MiB, from /proc.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Controller {
    /// Starts `moor run CONFIG` (the `moor` binary `bin`) on a free port with `args` and
    /// `env`; waits until it is ready.
    pub async fn start(bin: &str, config: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Controller> {
        let port = free_port();
        let log = config.with_file_name(format!("moor-run-{port}.log"));
        let mut cmd = Command::new(bin);
        cmd.arg("run").arg(config).args(["--listen", &format!("127.0.0.1:{port}")]).args(args);
        cmd.env("KUBECONFIG", &cluster().kubeconfig)
            .env("MOOR_CACHE", plugin_cache())
            .env("MOOR_LOG", "moor=debug,warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("cannot start moor run")?;
        let controller = Controller { child, url: format!("http://127.0.0.1:{port}"), log };
        let http = reqwest::Client::new();
        let ready = format!("{}/readyz", controller.url);
        let started = eventually(60, "moor run to be ready", || {
            let http = http.clone();
            let ready = ready.clone();
            async move { Ok(http.get(&ready).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
        })
        .await;
        if let Err(e) = started {
            bail!("{e}\n--- log ---\n{}", controller.log_text());
        }
        Ok(controller)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> anyhow::Result<serde_json::Value> {
        Ok(reqwest::get(format!("{}/api/v1/status", self.url)).await?.error_for_status()?.json().await?)
    }

    /// The status of one pipeline.
    pub async fn pipeline(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        let status = self.status().await?;
        status["pipelines"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .with_context(|| format!("no pipeline {name} in the status: {status}"))
    }

    /// Waits until `name` has finished `runs` runs (at least), and returns its status.
    pub async fn runs(&self, name: &str, runs: u64, seconds: u64) -> anyhow::Result<serde_json::Value> {
        let waited = eventually(seconds, &format!("{runs} run(s) of {name}"), || async {
            // The pipeline may not be there yet (a config being reloaded).
            let Ok(p) = self.pipeline(name).await else { return Ok(None) };
            Ok((p["runs"].as_u64().unwrap_or(0) >= runs).then_some(p))
        })
        .await;
        waited.map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", self.log_text()))
    }

    pub async fn get_text(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let response = reqwest::get(format!("{}{path}", self.url)).await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// `POST` with optional bearer token and headers; returns the status code and body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let mut request = reqwest::Client::new().post(format!("{}{path}", self.url)).body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// SIGTERM, then waits for the process to exit (at most `seconds`).
    pub fn terminate(&mut self, seconds: u64) -> anyhow::Result<std::process::ExitStatus> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                bail!("moor run did not exit within {seconds}s of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (polling every 100 ms) for `child` to exit, for at most `seconds`.
pub async fn exited(child: &mut Child, seconds: u64) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {seconds}s waiting for process {} to exit", child.id());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A loopback HTTP server that records each request (its head and body, as text) and
/// answers every one with `status` (200 at first): a stand-in receiver for notifiers.
#[derive(Debug)]
pub struct Receiver {
    pub port: u16,
    pub requests: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub status: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        use std::sync::atomic::{AtomicU16, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (tx, requests) = tokio::sync::mpsc::unbounded_channel::<String>();
        let status = std::sync::Arc::new(AtomicU16::new(200));
        let answer = status.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            let _ = tx.send(text.clone());
                            break;
                        }
                    }
                }
                let code = answer.load(Ordering::Relaxed);
                let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        Ok(Receiver { port, requests, status })
    }

    /// The next request within `seconds`: its head and its body parsed as JSON.
    pub async fn next(&mut self, seconds: u64) -> anyhow::Result<(String, serde_json::Value)> {
        let request = tokio::time::timeout(std::time::Duration::from_secs(seconds), self.requests.recv())
            .await
            .context("no request came")?
            .context("the receiver stopped")?;
        let (head, body) = request.split_once("\r\n\r\n").unwrap_or((&request, ""));
        Ok((head.to_owned(), serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?))
    }
}

/// The apiserver's own view of a stretch of work (its `/metrics`): requests made (watches
/// and connects left out), their latency, and the requests in flight at the moment read.
/// Two readings, before and after, give the work's share; the benches use it to show
/// where the apiserver is the wall.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApiserverLoad {
    pub requests: f64,
    pub latency_sum: f64,
    pub latency_count: f64,
    pub inflight: f64,
}

impl ApiserverLoad {
    pub async fn read(client: &kube::Client) -> ApiserverLoad {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = client.request_text(request).await.unwrap();
        let mut load = ApiserverLoad::default();
        let long_running = |line: &str| line.contains("verb=\"WATCH\"") || line.contains("verb=\"CONNECT\"");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let value: f64 = value.parse().unwrap_or(0.0);
            if name.starts_with("apiserver_request_total{") && !long_running(name) {
                load.requests += value;
            } else if name.starts_with("apiserver_request_duration_seconds_sum{") && !long_running(name) {
                load.latency_sum += value;
            } else if name.starts_with("apiserver_request_duration_seconds_count{") && !long_running(name) {
                load.latency_count += value;
            } else if name.starts_with("apiserver_current_inflight_requests{") {
                load.inflight += value;
            }
        }
        load
    }

    /// Requests made since `before`, and their mean latency in ms.
    pub fn since(&self, before: &ApiserverLoad) -> (f64, f64) {
        let count = self.latency_count - before.latency_count;
        let mean = if count > 0.0 { 1000.0 * (self.latency_sum - before.latency_sum) / count } else { 0.0 };
        (self.requests - before.requests, mean)
    }

    /// The line the flux bench prints for `n` pipelines.
    pub fn during(&self, before: &ApiserverLoad, peak_inflight: f64, n: usize) -> String {
        let (requests, mean) = self.since(before);
        format!(
            "apiserver while applying: {:.1} requests per pipeline, mean latency {mean:.1} ms, up to {peak_inflight:.0} in flight",
            requests / n as f64
        )
    }
}

/// What the tests ask of an apply report, from its public fields.
pub trait ReportExt {
    /// `Kind/namespace/name` of the objects that had `action`.
    fn names(&self, action: moor::apply::Action) -> Vec<String>;
    fn is_healthy(&self) -> bool;
    /// `(Kind/namespace/name, state)` of each object waited for: `ready`, `failed: why`, or
    /// what it was waiting for.
    fn object_health(&self) -> Vec<(String, String)>;
}

impl ReportExt for moor::apply::Report {
    fn names(&self, action: moor::apply::Action) -> Vec<String> {
        self.objects.iter().filter(|o| o.action == action).map(|o| o.key.to_string()).collect()
    }

    fn is_healthy(&self) -> bool {
        self.health == moor::apply::Health::Ready
    }

    fn object_health(&self) -> Vec<(String, String)> {
        use moor::apply::ObjectHealth;
        let state = |h: &ObjectHealth| match h {
            ObjectHealth::Ready => "ready".to_owned(),
            ObjectHealth::Failed(why) => format!("failed: {why}"),
            ObjectHealth::Progressing(what) => what.clone(),
        };
        self.objects.iter().filter_map(|o| Some((o.key.to_string(), state(o.health.as_ref()?)))).collect()
    }
}
