//! Moor and Flux side by side, in one run (issue #15; see BENCHMARKS.md).
//!
//! The same input for both: N pipelines (default 1,000) of 4 objects each (ConfigMap,
//! Secret, ServiceAccount, Service), one directory each in one git repository served over
//! smart HTTP on loopback (`git http-backend`, tests/flux/githttp). Each side gets a fresh
//! control plane of its own (tests/cluster/up), then:
//! - Flux: source-controller and kustomize-controller v1.9.6 (built by tests/flux/build),
//!   one GitRepository and N Kustomizations, `--concurrent=8`, `TMPDIR` on tmpfs as Flux's
//!   scaling guide advises (`MOOR_BENCH_FLUX_DEFAULT=1` runs the default, disk `TMPDIR`, too);
//! - Moor: `moor run` (the release build) with N pipelines and `workers = 8`.
//!
//! For each: the time from starting the controllers until every pipeline applied, the
//! controllers' peak RSS (VmHWM), and the steady state with nothing changing: the
//! apiserver's `apiserver_request_total` (watches left out) over one interval (5 minutes,
//! a minute after the last first apply), less what the control plane does on its own
//! (counted before the controllers start), by verb and resource.
//!
//! `cargo bench -p moor-e2e --bench flux` (MOOR_BENCH_PIPELINES sets N, MOOR_BENCH_INTERVAL
//! the interval in seconds; MOOR_BENCH_ONLY=moor runs Moor alone, as for P7 at 10,000).
//! MOOR_BENCH_TENANTS=T splits Moor's N pipelines between T tenants (issue #32): the
//! platform config declares them, each reads its config from a directory of its own and
//! its N/T pipelines from the same repository, and applies as a service account of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");
/// Both sides' interval (MOOR_BENCH_INTERVAL seconds, default 300): the steady state is
/// measured over one.
fn interval() -> Duration {
    Duration::from_secs(std::env::var("MOOR_BENCH_INTERVAL").ok().and_then(|n| n.parse().ok()).unwrap_or(300))
}

/// How long the control plane's own requests are counted, scaled to an interval.
const BACKGROUND: Duration = Duration::from_secs(60);
const NS: &str = "bench";

fn pipelines() -> usize {
    std::env::var("MOOR_BENCH_PIPELINES").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000)
}

/// How many tenants Moor's pipelines are split between (MOOR_BENCH_TENANTS; 0: none, one config).
fn tenants() -> usize {
    std::env::var("MOOR_BENCH_TENANTS").ok().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Moor's config for `n` pipelines in `dir`: one file, or with `tenants` a platform config
/// declaring them and one config per tenant (`tenants/t-NN/moor.toml`), each with its share.
fn moor_config(dir: &Path, git_url: &str, n: usize, tenants: usize) -> PathBuf {
    let header = "[moor]\ninstance = \"bench\"\nworkers = 8\n\n".to_owned();
    let source = format!(
        "[[source]]\nname = \"apps\"\ngit = {{ url = \"{git_url}\", ref = \"main\" }}\npoll_interval = \"10m\"\n\n"
    );
    let pipelines = |range: std::ops::Range<usize>| -> String {
        range
            .map(|i| {
                format!(
                    "[[pipeline]]\nname = \"app-{i:04}\"\nsource = \"apps\"\npath = \"apps/app-{i:04}\"\ninterval = \"{}s\"\n\n",
                    interval().as_secs()
                )
            })
            .collect()
    };
    let file = dir.join("moor.toml");
    if tenants == 0 {
        std::fs::write(&file, format!("{header}{source}{}", pipelines(0..n))).unwrap();
        return file;
    }
    let mut platform = header;
    let each = n.div_ceil(tenants);
    for t in 0..tenants {
        platform.push_str(&format!(
            "[[tenant]]\nname = \"t-{t:02}\"\nsource = {{ path = \"tenants/t-{t:02}\", poll_interval = \"10m\" }}\n\
             namespaces = [\"{NS}\"]\nservice_account = \"{NS}/deployer\"\nplugins = [\"yaml\"]\n\n"
        ));
        let tenant = dir.join(format!("tenants/t-{t:02}"));
        std::fs::create_dir_all(&tenant).unwrap();
        let share = (t * each).min(n)..((t + 1) * each).min(n);
        std::fs::write(tenant.join("moor.toml"), format!("{source}{}", pipelines(share))).unwrap();
    }
    std::fs::write(&file, platform).unwrap();
    file
}

/// The tenants' service account: `edit` in the bench's namespace.
async fn tenant_account(client: &kube::Client) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "deployer", "namespace": NS}})).unwrap();
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), NS).create(&PostParams::default(), &account).await;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "deployer", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": NS}],
    }))
    .unwrap();
    let _ = Api::<RoleBinding>::namespaced(client.clone(), NS).create(&PostParams::default(), &binding).await;
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stderr(Stdio::inherit()).output().expect("run a command");
    assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// Processes killed when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fresh control plane of its own, stopped when dropped.
struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    bin: PathBuf,
}

impl ControlPlane {
    fn start(name: &str) -> ControlPlane {
        let root = moor_e2e::repo_root();
        let cache = std::env::var_os("MOOR_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/moor"));
        let dir = cache.join(format!("cluster-bench-{name}-{}", std::process::id()));
        let out = run(Command::new(root.join("tests/cluster/up")).env("MOOR_CLUSTER_DIR", &dir));
        let value = |prefix: &str| out.lines().find_map(|l| l.strip_prefix(prefix)).map(PathBuf::from).unwrap();
        let bin = value("export PATH=").to_string_lossy().split(':').next().map(PathBuf::from).unwrap();
        ControlPlane { kubeconfig: value("export KUBECONFIG="), dir, bin }
    }

    async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        run(Command::new(self.bin.join("kubectl")).env("KUBECONFIG", &self.kubeconfig).args(args))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ =
            Command::new(moor_e2e::repo_root().join("tests/cluster/down")).env("MOOR_CLUSTER_DIR", &self.dir).status();
    }
}

/// The apiserver's request counts by (verb, resource), long-running watches left out.
async fn requests(client: &kube::Client) -> BTreeMap<(String, String), f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let label = |name: &str| {
            labels.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_owned()
        };
        if label("verb") == "WATCH" {
            continue;
        }
        *counts.entry((label("verb"), label("resource"))).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    counts
}

fn delta(
    after: &BTreeMap<(String, String), f64>,
    before: &BTreeMap<(String, String), f64>,
) -> BTreeMap<(String, String), f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// Requests the controller under test made over one interval with nothing changing: the
/// apiserver's counts over the interval less the control plane's own (measured before the
/// controllers started, over as long).
struct Steady {
    total: f64,
    top: Vec<String>,
}

fn steady(window: &BTreeMap<(String, String), f64>, background: &BTreeMap<(String, String), f64>) -> Steady {
    let mut by: Vec<((String, String), f64)> = window
        .iter()
        .map(|(k, v)| (k.clone(), v - background.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v >= 1.0)
        .collect();
    by.sort_by(|a, b| b.1.total_cmp(&a.1));
    Steady {
        total: by.iter().map(|(_, v)| v).sum(),
        top: by.iter().take(6).map(|((verb, res), v)| format!("{verb} {res} {v:.0}")).collect(),
    }
}

/// The repository: one directory of 4 objects per pipeline, as a bare repository under `root`.
fn repository(root: &Path, n: usize) {
    let work = root.join("work");
    for i in 0..n {
        let dir = work.join(format!("apps/app-{i:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i}-config\n  namespace: {NS}\ndata:\n  greeting: hello {i}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{i}-secret\n  namespace: {NS}\nstringData:\n  token: t-{i}\n\
             ---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app-{i}\n  namespace: {NS}\n\
             ---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app-{i}\n  namespace: {NS}\nspec:\n  ports:\n    - port: 80\n"
        );
        std::fs::write(dir.join("app.yaml"), text).unwrap();
    }
    moor_e2e::git(&work, &["init", "-q", "-b", "main"]);
    moor_e2e::git(&work, &["add", "-A"]);
    moor_e2e::git(&work, &["commit", "-q", "-m", "apps"]);
    run(Command::new("git").args(["clone", "-q", "--bare"]).arg(&work).arg(root.join("apps.git")));
}

/// One side's figures.
struct Figures {
    took: Duration,
    rss: Vec<(String, f64)>,
    steady: Steady,
    /// Moor: the median time of the status page and of the JSON API at this size.
    pages: Option<(Duration, Duration)>,
    /// The apiserver's load while applying ([`Load::during`]).
    applying: String,
}

impl Figures {
    fn print(&self, side: &str, n: usize) {
        let rss: Vec<String> = self.rss.iter().map(|(p, m)| format!("{p} {m:.0} MiB")).collect();
        let total: f64 = self.rss.iter().map(|(_, m)| m).sum();
        println!(
            "{side}: {n} pipelines x 4 objects: all applied in {:.1}s; peak RSS {} (total {total:.0} MiB); \
             steady state over one {}s interval: {:.0} requests ({:.2} per pipeline; {})",
            self.took.as_secs_f64(),
            rss.join(" + "),
            interval().as_secs(),
            self.steady.total,
            self.steady.total / n as f64,
            self.steady.top.join(", ")
        );
        println!("{side}: {}", self.applying);
        if let Some((page, api)) = self.pages {
            println!(
                "{side}: with {n} pipelines the status page answers in {:.0} ms and /api/v1/status in {:.0} ms (median of 5)",
                page.as_secs_f64() * 1000.0,
                api.as_secs_f64() * 1000.0
            );
        }
    }
}

/// CPU time (user and system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis start at the third, the state:
    // utime and stime (the 14th and 15th) are the 12th and 13th of them, in clock ticks
    // (100 a second on Linux).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The processes whose CPU time is reported while applying: the controllers under test
/// and the control plane's components.
fn processes(cp: &ControlPlane, controllers: &[(&str, u32)]) -> Vec<(String, u32)> {
    let mut all: Vec<(String, u32)> = controllers.iter().map(|(name, pid)| (name.to_string(), *pid)).collect();
    for name in ["kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok"] {
        let pid = std::fs::read_to_string(cp.dir.join("pids").join(name)).ok().and_then(|p| p.trim().parse().ok());
        all.extend(pid.map(|pid| (name.to_owned(), pid)));
    }
    all
}

/// Waits for every pipeline, then measures the steady state over one interval.
async fn settle(
    cp: &ControlPlane,
    controllers: &[(&str, u32)],
    n: usize,
    started: Instant,
    background: &BTreeMap<(String, String), f64>,
    done: impl AsyncFn() -> usize,
) -> (Duration, Steady, String) {
    let client = &cp.client().await;
    let mut reported = Instant::now();
    let first = moor_e2e::ApiserverLoad::read(client).await;
    let first_requests = requests(client).await;
    let procs = processes(cp, controllers);
    let first_cpu: Vec<Duration> = procs.iter().map(|(_, pid)| cpu(*pid)).collect();
    let mut peak_inflight: f64 = 0.0;
    let mut polls = 0u32;
    let took = loop {
        let applied = done().await;
        if applied >= n {
            break started.elapsed();
        }
        polls += 1;
        if polls.is_multiple_of(4) {
            peak_inflight = peak_inflight.max(moor_e2e::ApiserverLoad::read(client).await.inflight);
        }
        if reported.elapsed() > Duration::from_secs(10) {
            eprintln!("  {applied}/{n} applied after {:.0}s", started.elapsed().as_secs_f64());
            reported = Instant::now();
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "not done in an hour");
        // Polling a status of 10,000 pipelines is itself work for the controller.
        tokio::time::sleep(Duration::from_millis(250) * (n as u32 / 1000).max(1)).await;
    };
    let mut applying = moor_e2e::ApiserverLoad::read(client).await.during(&first, peak_inflight, n);
    // Where the cores went, and what the requests were, while applying.
    let spent: Vec<String> = procs
        .iter()
        .zip(&first_cpu)
        .map(|((name, pid), before)| format!("{name} {:.1}s", (cpu(*pid).saturating_sub(*before)).as_secs_f64()))
        .collect();
    let mut by: Vec<((String, String), f64)> = delta(&requests(client).await, &first_requests).into_iter().collect();
    by.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> =
        by.iter().take(8).map(|((verb, res), v)| format!("{verb} {res} {:.2}", v / n as f64)).collect();
    applying.push_str(&format!(
        "\n  CPU while applying ({:.1}s of wall time on 2 cores): {}\n  requests per pipeline while applying: {}",
        took.as_secs_f64(),
        spent.join(", "),
        top.join(", ")
    ));
    // What the first apply leaves behind (Kubernetes Events still being sent) settles
    // first; then one whole interval, which holds each pipeline's next run.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let before = requests(client).await;
    tokio::time::sleep(interval()).await;
    let window = delta(&requests(client).await, &before);
    (took, steady(&window, background), applying)
}

/// The control plane's own requests over one interval (counted over [`BACKGROUND`]).
async fn background(client: &kube::Client) -> BTreeMap<(String, String), f64> {
    let before = requests(client).await;
    tokio::time::sleep(BACKGROUND).await;
    let scale = interval().as_secs_f64() / BACKGROUND.as_secs_f64();
    delta(&requests(client).await, &before).into_iter().map(|(k, v)| (k, v * scale)).collect()
}

async fn namespace(client: &kube::Client) {
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await;
}

async fn flux(flux_bin: &Path, git_url: &str, n: usize, tmpfs: bool) -> Figures {
    let cp = ControlPlane::start(if tmpfs { "flux-tmpfs" } else { "flux" });
    let client = cp.client().await;
    namespace(&client).await;
    cp.kubectl(&["apply", "--server-side", "-f", &flux_bin.join("crds").to_string_lossy()]);
    cp.kubectl(&["create", "namespace", "flux-system"]);
    cp.kubectl(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
    let git =
        ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository"));
    let ks =
        ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"));
    let interval = format!("{}s", interval().as_secs());
    let repo: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {"url": git_url, "interval": "10m", "ref": {"branch": "main"}},
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<DynamicObject>::namespaced_with(client.clone(), "flux-system", &git).create(&pp, &repo).await.unwrap();
    let kustomizations = Api::<DynamicObject>::namespaced_with(client.clone(), "flux-system", &ks);
    for i in 0..n {
        let k: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": format!("app-{i:04}"), "namespace": "flux-system"},
            "spec": {"interval": interval, "path": format!("./apps/app-{i:04}"), "prune": true,
                     "sourceRef": {"kind": "GitRepository", "name": "apps"}},
        }))
        .unwrap();
        kustomizations.create(&pp, &k).await.unwrap();
    }
    let base = background(&client).await;

    let dir = tempfile::tempdir().unwrap();
    let tmp = if tmpfs { tempfile::tempdir_in("/dev/shm").unwrap() } else { tempfile::tempdir().unwrap() };
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let port = moor_e2e::free_port();
    let started = Instant::now();
    let spawn = |name: &str, args: Vec<String>| {
        Command::new(flux_bin.join(name))
            .args(args)
            .env("KUBECONFIG", &cp.kubeconfig)
            .env("RUNTIME_NAMESPACE", "flux-system")
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let procs = Procs(vec![
        spawn(
            "source-controller",
            vec![
                format!("--storage-path={}", storage.display()),
                format!("--storage-addr={}", addr(port)),
                format!("--storage-adv-addr={}", addr(port)),
                format!("--metrics-addr={}", addr(moor_e2e::free_port())),
                format!("--health-addr={}", addr(moor_e2e::free_port())),
                "--enable-leader-election=false".into(),
            ],
        ),
        spawn(
            "kustomize-controller",
            vec![
                "--concurrent=8".into(),
                format!("--metrics-addr={}", addr(moor_e2e::free_port())),
                format!("--health-addr={}", addr(moor_e2e::free_port())),
                "--enable-leader-election=false".into(),
            ],
        ),
    ]);
    let ready = async || {
        let list = kustomizations.list(&ListParams::default()).await.unwrap();
        // Applied once: a later reconciliation in progress makes Ready unknown for a while.
        list.items
            .iter()
            .filter(|k| k.data["status"]["lastAppliedRevision"].as_str().is_some_and(|r| !r.is_empty()))
            .count()
    };
    let controllers = [("source-controller", procs.0[0].id()), ("kustomize-controller", procs.0[1].id())];
    let (took, steady, applying) = settle(&cp, &controllers, n, started, &base, ready).await;
    let rss = vec![
        ("kustomize-controller".to_owned(), moor_e2e::peak_rss_mib(procs.0[1].id())),
        ("source-controller".to_owned(), moor_e2e::peak_rss_mib(procs.0[0].id())),
    ];
    Figures { took, rss, steady, pages: None, applying }
}

/// What the drift watches of a second, small instance beside this one would cost to
/// start (#15's watch scope): the initial LIST of each of the 4 kinds, with the selector
/// moor's watches use (scoped to that instance) and without the instance term (every
/// moor-managed object in the cluster). Median of three each; the same selectors decide
/// which changes a watch is sent afterwards.
async fn watch_scope(client: &kube::Client) -> String {
    let encode = |s: &str| s.replace('/', "%2F").replace(',', "%2C").replace('=', "%3D").replace('!', "%21");
    let mut lines = Vec::new();
    for (scope, selector) in [
        ("scoped to the instance", "moor.dev/pipeline,moor.dev/instance=other,!moor.dev/role"),
        ("unscoped", "moor.dev/pipeline,!moor.dev/role"),
    ] {
        let mut runs = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let (mut items, mut bytes) = (0, 0);
            for plural in ["configmaps", "secrets", "serviceaccounts", "services"] {
                let uri = format!("/api/v1/{plural}?labelSelector={}", encode(selector));
                let text = client.request_text(http::Request::get(uri).body(Vec::new()).unwrap()).await.unwrap();
                bytes += text.len();
                let list: serde_json::Value = serde_json::from_str(&text).unwrap();
                items += list["items"].as_array().map_or(0, Vec::len);
            }
            runs.push((started.elapsed(), items, bytes));
        }
        runs.sort();
        let (took, items, bytes) = runs[1];
        lines.push(format!(
            "{scope}: {items} objects, {:.1} MB, {:.0} ms",
            bytes as f64 / 1e6,
            took.as_secs_f64() * 1000.0
        ));
    }
    format!("a second instance's drift watches would start by listing the 4 kinds: {}", lines.join("; "))
}

/// The median time of five GETs of `url`.
async fn median_get(url: &str) -> Duration {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
        assert!(!body.is_empty());
        times.push(started.elapsed());
    }
    times.sort();
    times[2]
}

async fn moor(git_url: &str, n: usize) -> Figures {
    let cp = ControlPlane::start("moor");
    let client = cp.client().await;
    namespace(&client).await;
    if tenants() > 0 {
        tenant_account(&client).await;
    }
    let base = background(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let file = moor_config(dir.path(), git_url, n, tenants());
    let port = moor_e2e::free_port();
    let started = Instant::now();
    let child = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("MOOR_LOG", "warn")
        .env("MOOR_CACHE", moor_e2e::plugin_cache())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("moor.log")).unwrap())
        .spawn()
        .unwrap();
    let procs = Procs(vec![child]);
    let url = format!("http://127.0.0.1:{port}/api/v1/status");
    let applied = async || {
        let Ok(response) = reqwest::get(&url).await else { return 0 };
        let Ok(status) = response.json::<serde_json::Value>().await else { return 0 };
        status["pipelines"].as_array().map_or(0, |ps| ps.iter().filter(|p| p["last_run"]["ok"] == true).count())
    };
    let (took, steady, applying) = settle(&cp, &[("moor", procs.0[0].id())], n, started, &base, applied).await;
    let rss = vec![("moor".to_owned(), moor_e2e::peak_rss_mib(procs.0[0].id()))];
    let pages = (median_get(&format!("http://127.0.0.1:{port}/")).await, median_get(&url).await);
    let applying = format!("{applying}\n  {}", watch_scope(&client).await);
    Figures { took, rss, steady, pages: Some(pages), applying }
}

fn main() {
    moor::init_tls();
    let n = pipelines();
    let flux_bin = PathBuf::from(run(&mut Command::new(moor_e2e::repo_root().join("tests/flux/build"))).trim());
    let repos = tempfile::tempdir().unwrap();
    repository(repos.path(), n);
    let mut server = Command::new(flux_bin.join("githttp"))
        .args(["-root", &repos.path().to_string_lossy(), "-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().unwrap()), &mut line).unwrap();
    let git_url = format!("http://{}/apps.git", line.trim());
    let _server = Procs(vec![server]);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let moor = moor(&git_url, n).await;
        let side = match tenants() {
            0 => "Moor".to_owned(),
            t => format!("Moor ({t} tenants)"),
        };
        moor.print(&side, n);
        // P7 and other Moor-only sizes.
        if std::env::var("MOOR_BENCH_ONLY").as_deref() == Ok("moor") {
            return;
        }
        let tuned = flux(&flux_bin, &git_url, n, true).await;
        tuned.print("Flux (TMPDIR on tmpfs)", n);
        if std::env::var("MOOR_BENCH_FLUX_DEFAULT").is_ok() {
            flux(&flux_bin, &git_url, n, false).await.print("Flux (default)", n);
        }
        println!(
            "Moor against tuned Flux: {:.1}x faster, {:.0}% of its peak RSS",
            tuned.took.as_secs_f64() / moor.took.as_secs_f64(),
            100.0 * moor.rss.iter().map(|r| r.1).sum::<f64>() / tuned.rss.iter().map(|r| r.1).sum::<f64>()
        );
    });
}
