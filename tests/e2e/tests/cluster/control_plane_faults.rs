//! #16's faults of the control plane itself, in controller mode, each on a private control
//! plane the test breaks (`tests/cluster/fault`): the apiserver killed and restarted
//! mid-run, etcd stopped for 30 s, and 429s from API Priority and Fairness for moor's
//! user. Each must show a clear per-pipeline error or a retry, nothing pruned, `/healthz`
//! up throughout, and every pipeline converged once the fault is gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use moor_e2e::{Cluster, Controller, eventually, private_cluster};

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");
const PIPELINES: usize = 6;
const OBJECTS: usize = 3;

/// `PIPELINES` pipelines of `OBJECTS` ConfigMaps each in a namespace of the cluster's,
/// run every few seconds so that runs are under way when the fault strikes.
struct Fixture {
    cluster: Cluster,
    dir: tempfile::TempDir,
    ns: String,
}

impl Fixture {
    async fn new(name: &str, env: &[(&str, &str)]) -> anyhow::Result<Fixture> {
        let cluster = private_cluster(name, env)?;
        let client = cluster.client().await?;
        let ns = cluster.namespace(&client, name).await?;
        let dir = tempfile::tempdir()?;
        let mut config =
            format!("[moor]\ninstance = \"{name}\"\nworkers = 4\n\n[[source]]\nname = \"local\"\npath = \"tree\"\n\n");
        for p in 0..PIPELINES {
            for o in 0..OBJECTS {
                let file = dir.path().join(format!("tree/p{p}/cm{o}.yaml"));
                std::fs::create_dir_all(file.parent().unwrap())?;
                std::fs::write(
                    file,
                    format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p{p}-cm{o}\n  namespace: {ns}\ndata:\n  v: '1'\n"
                    ),
                )?;
            }
            config.push_str(&format!(
                "[[pipeline]]\nname = \"p{p}\"\nsource = \"local\"\npath = \"p{p}\"\ninterval = \"2s\"\nretry_interval = \"2s\"\n\n"
            ));
        }
        std::fs::write(dir.path().join("moor.toml"), config)?;
        Ok(Fixture { cluster, dir, ns })
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("moor.toml")
    }

    async fn start(&self, kubeconfig: &Path, args: &[&str]) -> anyhow::Result<Controller> {
        let kubeconfig = kubeconfig.to_str().unwrap();
        let moor = Controller::start(BIN, &self.config(), args, &[("KUBECONFIG", kubeconfig)]).await?;
        for p in 0..PIPELINES {
            let status = moor.runs(&format!("p{p}"), 1, 120).await?;
            assert_eq!(status["last_run"]["ok"], true, "{status}");
        }
        Ok(moor)
    }

    /// Every object is there, none pruned.
    async fn all_objects(&self) -> anyhow::Result<()> {
        let cms: Api<ConfigMap> = Api::namespaced(self.cluster.client().await?, &self.ns);
        let names: Vec<String> =
            cms.list(&ListParams::default()).await?.items.into_iter().filter_map(|c| c.metadata.name).collect();
        let want = PIPELINES * OBJECTS;
        let ours = names.iter().filter(|n| n.starts_with('p')).count();
        anyhow::ensure!(ours == want, "{ours} of {want} ConfigMaps left: {names:?}");
        Ok(())
    }
}

/// The runs count of every pipeline.
async fn runs(moor: &Controller) -> anyhow::Result<Vec<u64>> {
    let mut runs = Vec::new();
    for p in 0..PIPELINES {
        runs.push(moor.pipeline(&format!("p{p}")).await?["runs"].as_u64().unwrap_or(0));
    }
    Ok(runs)
}

/// Waits until every pipeline has finished a good run after `before`'s counts.
async fn converged(moor: &Controller, before: &[u64], seconds: u64) -> anyhow::Result<()> {
    for (p, before) in before.iter().enumerate() {
        let name = format!("p{p}");
        eventually(seconds, &format!("a good run of {name} after the fault"), || async {
            let status = moor.pipeline(&name).await?;
            let ran = status["runs"].as_u64().unwrap_or(0) > *before;
            Ok((ran && status["last_run"]["ok"] == true).then_some(()))
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", moor.log_text()))?;
    }
    Ok(())
}

/// `/healthz` answers 200 every 200 ms for `length`; the errors of failed runs seen.
async fn healthy_for(moor: &Controller, length: Duration) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let mut errors = Vec::new();
    while started.elapsed() < length {
        let (code, _) = moor.get_text("/healthz").await?;
        anyhow::ensure!(code == 200, "/healthz answered {code} during the fault");
        for p in 0..PIPELINES {
            let status = moor.pipeline(&format!("p{p}")).await?;
            if let Some(error) = status["last_run"]["error"].as_str().filter(|_| status["last_run"]["ok"] == false)
                && !errors.iter().any(|e| e == error)
            {
                errors.push(error.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(errors)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_apiserver_killed_mid_run_and_restarted() -> anyhow::Result<()> {
    let f = Fixture::new("fault-apiserver", &[]).await?;
    // With leader election: the lease must come back too.
    let moor = f.start(&f.cluster.kubeconfig, &["--leader-elect", "--lease-duration", "6s"]).await?;
    f.cluster.fault("kill", "kube-apiserver")?;
    let errors = healthy_for(&moor, Duration::from_secs(10)).await?;
    eprintln!("errors while the apiserver was down: {errors:#?}");
    assert!(!errors.is_empty(), "no run failed while the apiserver was down\n{}", moor.log_text());
    // Each names what it could not do, and why.
    assert!(
        errors.iter().all(|e| e.contains("Connection refused") && e.contains("moor-inventory-fault-apiserver-p")),
        "{errors:#?}"
    );
    let before = runs(&moor).await?;
    f.cluster.fault("start", "kube-apiserver")?;
    converged(&moor, &before, 90).await?;
    f.all_objects().await?;
    assert_eq!(moor.get_text("/healthz").await?.0, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_stopped_for_30_seconds() -> anyhow::Result<()> {
    let f = Fixture::new("fault-etcd", &[]).await?;
    let moor = f.start(&f.cluster.kubeconfig, &[]).await?;
    f.cluster.fault("pause", "etcd")?;
    let outage = healthy_for(&moor, Duration::from_secs(30)).await;
    f.cluster.fault("resume", "etcd")?;
    let errors = outage?;
    eprintln!("errors while etcd was stopped: {errors:#?}");
    let before = runs(&moor).await?;
    converged(&moor, &before, 120).await?;
    f.all_objects().await?;
    Ok(())
}

/// A kubeconfig that acts as `user` through impersonation (API Priority and Fairness
/// classifies the impersonated user; the admin itself is exempt, as `system:masters`).
fn impersonating(cluster: &Cluster, user: &str, at: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(&cluster.kubeconfig)?;
    let text = text.replace(
        "  user:\n    client-certificate-data:",
        &format!("  user:\n    as: {user}\n    client-certificate-data:"),
    );
    anyhow::ensure!(text.contains("as: "), "the admin kubeconfig changed shape");
    let file = at.join("throttled.kubeconfig");
    std::fs::write(&file, text)?;
    Ok(file)
}

#[tokio::test(flavor = "multi_thread")]
async fn api_priority_and_fairness_answering_429() -> anyhow::Result<()> {
    let f = Fixture::new("fault-apf", &[("MOOR_CLUSTER_APF", "1")]).await?;
    let user = "moor-throttled";
    let objects = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: USER}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: USER}]
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: USER}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {type: Reject}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: USER}
spec:
  priorityLevelConfiguration: {name: USER}
  matchingPrecedence: 100
  distinguisherMethod: {type: ByUser}
  rules:
  - subjects: [{kind: User, user: {name: USER}}]
    resourceRules: [{verbs: ['*'], apiGroups: ['*'], resources: ['*'], clusterScope: true, namespaces: ['*']}]
    nonResourceRules: [{verbs: ['*'], nonResourceURLs: ['*']}]
"#
    .replace("USER", user);
    let file = f.dir.path().join("apf.yaml");
    std::fs::write(&file, objects)?;
    let out = f.cluster.kubectl().args(["apply", "-f"]).arg(&file).output()?;
    anyhow::ensure!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
    let kubeconfig = impersonating(&f.cluster, user, f.dir.path())?;
    let moor = f.start(&kubeconfig, &[]).await?;
    let before = runs(&moor).await?;
    let errors = healthy_for(&moor, Duration::from_secs(10)).await?;
    converged(&moor, &before, 120).await?;
    f.all_objects().await?;
    // The apiserver did throttle moor: its own count of rejected requests.
    let out = f.cluster.kubectl().args(["get", "--raw", "/metrics"]).output()?;
    let metrics = String::from_utf8_lossy(&out.stdout);
    let rejected: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_flowcontrol_rejected_requests_total") && l.contains(user))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    eprintln!("429s for {user}: {rejected}; errors of runs: {errors:#?}");
    assert!(rejected > 0.0, "the apiserver rejected none of moor's requests");
    Ok(())
}
