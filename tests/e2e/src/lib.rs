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

/// A running control plane.
#[derive(Debug)]
pub struct Cluster {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Directory of kubectl, kustomize and the control-plane binaries.
    pub bin: PathBuf,
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

static WATCHDOG: Mutex<Option<Child>> = Mutex::new(None);

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| start().unwrap_or_else(|e| panic!("cannot start the test control plane: {e:#}")))
}

fn start() -> anyhow::Result<Cluster> {
    if let Ok(kubeconfig) = std::env::var("MOOR_TEST_KUBECONFIG") {
        let bin = std::env::var("MOOR_TEST_BIN").context("MOOR_TEST_KUBECONFIG is set but MOOR_TEST_BIN is not")?;
        return Ok(Cluster { kubeconfig: kubeconfig.into(), bin: bin.into() });
    }
    let root = repo_root();
    let cache = std::env::var_os("MOOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/moor"));
    let state = cache.join(format!("cluster-test-{}", std::process::id()));

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
    *WATCHDOG.lock().unwrap() = Some(watchdog);

    let out = Command::new(root.join("tests/cluster/up"))
        .env("MOOR_CLUSTER_DIR", &state)
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
