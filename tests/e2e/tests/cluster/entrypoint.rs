//! `moor wait` (KE-1..KE-3) and pipeline gates (KE-4) against the real control plane, whose
//! kwok pods become ready and whose Job pods complete (tests/cluster/kwok-stages.yaml).
//! Each `moor wait` runs as a child that must block while its dependency does not hold and
//! then exec its command, which writes a marker with its own pid: the pid of moor's process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use moor_e2e::{Controller, Project, cluster, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

/// `kubectl apply -f -` of `yaml` (`{ns}` replaced), retried while the namespace's default
/// service account is still being made.
async fn apply(ns: &str, yaml: &str) -> anyhow::Result<()> {
    let yaml = yaml.replace("{ns}", ns);
    eventually(30, "kubectl apply", || {
        let yaml = yaml.clone();
        async move {
            let mut child = cluster()
                .kubectl()
                .args(["apply", "-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()?;
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), yaml.as_bytes())?;
            let out = child.wait_with_output()?;
            let err = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() && !err.contains("serviceaccount") {
                anyhow::bail!("kubectl apply: {err}");
            }
            Ok(out.status.success().then_some(()))
        }
    })
    .await
}

fn kubectl(args: &[&str]) {
    let out = cluster().kubectl().args(args).output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A `moor wait` child whose command writes its pid into a marker file.
struct Waiting {
    child: Child,
    dir: tempfile::TempDir,
}

impl Waiting {
    fn start(args: &[String], env: &[(&str, &str)]) -> Waiting {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let mut cmd = Command::new(BIN);
        cmd.arg("wait")
            .args(args)
            .env("KUBECONFIG", &cluster().kubeconfig)
            .env_remove("NAMESPACE")
            .env_remove("POD_NAME");
        cmd.stderr(std::fs::File::create(dir.path().join("log")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if !env.iter().any(|(k, _)| *k == "COMMAND") {
            cmd.args(["--", "sh", "-c", &format!("echo $$ > {}", marker.display())]);
        }
        Waiting { child: cmd.spawn().unwrap(), dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn marker(&self) -> PathBuf {
        self.dir.path().join("marker")
    }

    /// Still waiting after `seconds`, and the command has not run.
    async fn blocks(&mut self, seconds: u64) {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        assert!(self.child.try_wait().unwrap().is_none(), "moor wait ended early:\n{}", self.log());
        assert!(!self.marker().exists(), "the command ran before its dependency held:\n{}", self.log());
    }

    /// Exits 0 within `seconds`, having exec'd the command in its own process.
    async fn execs(&mut self, seconds: u64) {
        let pid = self.child.id();
        let status = self.exit(seconds).await;
        assert!(status.success(), "moor wait failed ({status}):\n{}", self.log());
        let written = std::fs::read_to_string(self.marker()).unwrap_or_default();
        assert_eq!(written.trim(), pid.to_string(), "the command replaced moor's process:\n{}", self.log());
    }

    async fn exit(&mut self, seconds: u64) -> std::process::ExitStatus {
        let status = moor_e2e::exited(&mut self.child, seconds).await;
        status.unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: NAME\n  namespace: {ns}\n  labels: {app: NAME}\n\
                   spec:\n  containers: [{name: app, image: example.com/app:1}]\n";

fn pod(name: &str) -> String {
    POD.replace("NAME", name)
}

#[tokio::test(flavor = "multi_thread")]
async fn moor_wait_blocks_on_a_service_until_it_has_a_ready_endpoint() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = cluster().namespace(&client, "wait-svc").await?;
    apply(&ns, "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: {ns}}\nspec:\n  selector: {app: db}\n  ports: [{port: 5432}]\n").await?;
    let mut w = Waiting::start(&args(&["--service", &format!("{ns}:db"), "--timeout", "90s"]), &[]);
    w.blocks(3).await;
    assert!(w.log().contains(&format!("service {ns}/db (no ready endpoints)")), "{}", w.log());
    apply(&ns, &pod("db")).await?;
    w.execs(60).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn moor_wait_blocks_on_jobs_by_name_and_labels_until_they_succeed() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = cluster().namespace(&client, "wait-job").await?;
    let mut w = Waiting::start(&args(&["--job", "migrate", "--job", "step=init", "--namespace", &ns]), &[]);
    w.blocks(3).await;
    assert!(w.log().contains("no such job"), "{}", w.log());
    let job = |name: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}, namespace: {{ns}}, labels: {{step: init}}}}\n\
             spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: run, image: example.com/migrate:1}}]\n"
        )
    };
    apply(&ns, &job("migrate")).await?;
    apply(&ns, &job("seed")).await?;
    w.execs(90).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn moor_wait_blocks_on_pods_daemonsets_and_containers_seen_from_its_own_pod() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = cluster().namespace(&client, "wait-pod").await?;
    // moor's own pod, held unscheduled by a scheduling gate until the test lifts it.
    apply(
        &ns,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: me, namespace: {ns}}\nspec:\n  schedulingGates: [{name: example.com/hold}]\n\
         \x20 nodeSelector: {kubernetes.io/hostname: kwok-node-0}\n  containers: [{name: main, image: example.com/main:1}, {name: sidecar, image: example.com/side:1}]\n",
    )
    .await?;
    let me = [("POD_NAME", "me"), ("NAMESPACE", ns.as_str())];
    let mut container = Waiting::start(&args(&["--container", "sidecar"]), &me);
    container.blocks(3).await;
    assert!(container.log().contains("container sidecar ("), "{}", container.log());
    kubectl(&[
        "-n",
        &ns,
        "patch",
        "pod",
        "me",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/schedulingGates"}]"#,
    ]);
    container.execs(60).await;

    // Now that moor's pod is on kwok-node-0: a DaemonSet's pod there, and a labelled pod there.
    let mut ds = Waiting::start(&args(&["--daemonset", "agent"]), &me);
    let mut same_node = Waiting::start(&args(&["--pod-on-node", "app=cache"]), &me);
    let mut anywhere = Waiting::start(&args(&["--pod", &format!("{ns}:app=web")]), &me);
    ds.blocks(3).await;
    same_node.blocks(0).await;
    anywhere.blocks(0).await;
    apply(&ns, "apiVersion: v1\nkind: Pod\nmetadata: {name: cache-elsewhere, namespace: {ns}, labels: {app: cache}}\nspec:\n  nodeSelector: {kubernetes.io/hostname: kwok-node-1}\n  containers: [{name: c, image: example.com/c:1}]\n").await?;
    apply(&ns, &pod("web")).await?;
    anywhere.execs(60).await;
    same_node.blocks(2).await;
    assert!(same_node.log().contains("on node kwok-node-0"), "{}", same_node.log());
    apply(&ns, "apiVersion: v1\nkind: Pod\nmetadata: {name: cache-here, namespace: {ns}, labels: {app: cache}}\nspec:\n  nodeSelector: {kubernetes.io/hostname: kwok-node-0}\n  containers: [{name: c, image: example.com/c:1}]\n").await?;
    same_node.execs(60).await;
    apply(
        &ns,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: {ns}}\nspec:\n  selector: {matchLabels: {app: agent}}\n\
         \x20 template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: agent, image: example.com/agent:1}]}\n",
    )
    .await?;
    ds.execs(60).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn moor_wait_blocks_on_a_socket_and_on_custom_resource_fields() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = cluster().namespace(&client, "wait-cr").await?;
    let group = format!("{ns}.example.com");
    apply(
        &ns,
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: widgets.{group}}}\n\
             spec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: widgets, singular: widget, kind: Widget}}\n\
             \x20 versions: [{{name: v1, served: true, storage: true, schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}}}]\n"
        ),
    )
    .await?;
    let socket = tempfile::tempdir()?;
    let path = socket.path().join("agent.sock");
    let spec = format!(
        r#"{{"apiVersion": "{group}/v1", "kind": "Widget", "name": "w", "fields": [{{"key": "spec.state", "value": "ready"}}, {{"key": "spec.replicas", "value": "3"}}]}}"#
    );
    let mut cr = Waiting::start(&args(&["--custom-resource", &spec, "--namespace", &ns]), &[]);
    let mut sock = Waiting::start(&args(&["--socket", path.to_str().unwrap()]), &[]);
    cr.blocks(3).await;
    sock.blocks(0).await;
    let widget = |state: &str| {
        format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w, namespace: {{ns}}}}\nspec: {{state: {state}, replicas: 3}}\n"
        )
    };
    eventually(30, "the Widget kind to be served", || async { Ok(apply(&ns, &widget("not-ready")).await.ok()) })
        .await?;
    cr.blocks(2).await;
    assert!(cr.log().contains("`spec.state` is `not-ready`, not `ready`"), "{}", cr.log());
    apply(&ns, &widget("ready")).await?;
    cr.execs(60).await;
    std::fs::write(&path, "")?;
    sock.execs(10).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn moor_wait_reads_the_originals_environment_and_templates_configs() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = cluster().namespace(&client, "wait-env").await?;
    let dir = tempfile::tempdir()?;
    let configmaps = dir.path().join("configmaps");
    std::fs::create_dir_all(configmaps.join("app.conf"))?;
    std::fs::write(configmaps.join("app.conf/app.conf"), "bind={{ .IP }}\nname={{ .HOSTNAME }}\n")?;
    let dest = dir.path().join("etc/app.conf");
    let marker = dir.path().join("ran");
    let command = format!("touch {}", marker.display());
    let jobs = format!(r#"[{{"name": "init"}}, {{"namespace": "{ns}", "labels": {{"step": "seed"}}}}]"#);
    let env = [
        ("NAMESPACE", ns.as_str()),
        ("DEPENDENCY_SERVICE", "db"),
        ("DEPENDENCY_JOBS_JSON", jobs.as_str()),
        ("DEPENDENCY_CONFIG", dest.to_str().unwrap()),
        ("POD_IP", "10.9.8.7"),
        ("COMMAND", command.as_str()),
    ];
    let mut w = Waiting::start(&args(&["--config-dir", configmaps.to_str().unwrap()]), &env);
    w.blocks(3).await;
    let log = w.log();
    assert!(log.contains(&format!("service {ns}/db")) && log.contains(&format!("jobs step=seed in {ns}")), "{log}");
    apply(&ns, "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: {ns}}\nspec:\n  selector: {app: db}\n  ports: [{port: 5432}]\n").await?;
    apply(&ns, &pod("db")).await?;
    for (name, label) in [("init", "other"), ("seed-1", "seed")] {
        apply(&ns, &format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}, namespace: {{ns}}, labels: {{step: {label}}}}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: run, image: example.com/x:1}}]\n")).await?;
    }
    let status = w.exit(90).await;
    assert!(status.success(), "{}", w.log());
    assert!(marker.exists(), "COMMAND ran");
    let hostname = hostname();
    assert_eq!(std::fs::read_to_string(&dest)?, format!("bind=10.9.8.7\nname={hostname}\n"));
    Ok(())
}

fn hostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn moor_wait_times_out_naming_what_did_not_hold() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = cluster().namespace(&client, "wait-timeout").await?;
    apply(&ns, &pod("ready-one")).await?;
    let mut w = Waiting::start(
        &args(&[
            "--namespace",
            &ns,
            "--service",
            "missing",
            "--pod",
            "app=ready-one",
            "--job",
            "other:never",
            "--timeout",
            "3s",
        ]),
        &[],
    );
    let status = w.exit(30).await;
    assert!(!status.success());
    assert!(!w.marker().exists());
    let log = w.log();
    let last = log.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: timed out after 3s waiting for "), "{log}");
    assert!(last.contains(&format!("service {ns}/missing (no ready endpoints)")), "{last}");
    assert!(last.contains("job other/never (no such job)"), "{last}");
    assert!(!last.contains("ready-one"), "a dependency that holds is not named: {last}");
    // A dependency that needs the pod's name, without one, is refused at once.
    let mut w = Waiting::start(&args(&["--container", "x"]), &[]);
    assert!(!w.exit(10).await.success());
    assert!(w.log().contains("POD_NAME"), "{}", w.log());
    Ok(())
}

async fn cm_exists(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<bool> {
    Ok(Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(name).await?.is_some())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_waits_for_its_gate_then_runs() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "gate").await?;
    p.file("app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: {ns}}\ndata: {v: \"1\"}\n");
    let config = p.config(
        "[[pipeline]]\nname = \"app\"\nsource = \"local\"\ninterval = \"1h\"\ntarget_namespace = \"{ns}\"\n\
         wait_for = [{ job = \"migrate\" }, { service = \"{ns}:db\" }]\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let waiting = eventually(30, "the pipeline to show its gate", || async {
        let status = moor.pipeline("app").await?;
        let reason = status["reason"].as_str().unwrap_or_default();
        Ok((status["state"] == "waiting" && reason.contains("job") && !reason.contains("not checked yet"))
            .then_some(status))
    })
    .await?;
    let reason = waiting["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("job {}/migrate (no such job)", p.ns)), "{reason}");
    assert!(reason.contains(&format!("service {}/db (no ready endpoints)", p.ns)), "{reason}");
    let (_, page) = moor.get_text("/").await?;
    assert!(page.contains(&format!("job {}/migrate", p.ns)), "the status page shows the gate");
    assert_eq!(waiting["runs"], 0);
    assert!(!cm_exists(&client, &p.ns, "app").await?);

    apply(&p.ns, "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: {ns}}\nspec:\n  selector: {app: db}\n  ports: [{port: 5432}]\n").await?;
    apply(&p.ns, &pod("db")).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = moor.pipeline("app").await?;
    assert_eq!(status["runs"], 0, "half a gate is still closed: {status}");
    assert!(status["reason"].as_str().unwrap_or_default().contains("migrate"), "{status}");
    apply(&p.ns, "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate, namespace: {ns}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: run, image: example.com/m:1}]\n").await?;
    let ran = moor.runs("app", 1, 90).await?;
    assert_eq!(ran["last_run"]["ok"], true, "{ran}");
    assert!(cm_exists(&client, &p.ns, "app").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn moor_apply_fails_a_pipeline_whose_gate_stays_closed_and_runs_the_others() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "gate-apply").await?;
    p.file("gated/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gated, namespace: {ns}}\n");
    p.file("free/b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: free, namespace: {ns}}\n");
    p.config(
        "[[pipeline]]\nname = \"gated\"\nsource = \"local\"\npath = \"gated\"\nwait_for_timeout = \"2s\"\n\
         wait_for = [{ pod = { labels = { app = \"never\" }, namespace = \"{ns}\" } }]\n\
         [[pipeline]]\nname = \"free\"\nsource = \"local\"\npath = \"free\"\n",
    );
    let results = p.apply().await?;
    let gated = results.iter().find(|r| r.pipeline == "gated").unwrap();
    assert!(!gated.ok);
    assert_eq!(gated.stage, Some(moor::stage::Stage::Dependencies));
    let error = gated.error.as_deref().unwrap_or_default();
    assert_eq!(error, format!("wait_for: timed out after 2s waiting for pod app=never in {} (no such pod)", p.ns));
    assert!(results.iter().find(|r| r.pipeline == "free").unwrap().ok);
    assert!(!cm_exists(&client, &p.ns, "gated").await?);
    assert!(cm_exists(&client, &p.ns, "free").await?);
    Ok(())
}

/// The examples of `deploy/examples` pass a server-side dry run, and moor's arguments in
/// them parse as the binary parses them.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_examples_are_accepted_and_their_moor_arguments_parse() -> anyhow::Result<()> {
    use clap::Parser;
    let examples = moor_e2e::repo_root().join("deploy/examples");
    for (file, namespace) in [("config-sync-sidecar.yaml", "monitoring"), ("wait-init-container.yaml", "shop")] {
        let path = examples.join(file);
        let _ = cluster().kubectl().args(["create", "namespace", namespace]).output()?;
        let out = cluster()
            .kubectl()
            .args(["apply", "--server-side", "--dry-run=server", "--field-manager=deploy-check", "-f"])
            .arg(&path)
            .output()?;
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&path)?;
        let mut moor_containers = 0;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc: serde_json::Value = serde::Deserialize::deserialize(doc)?;
            let spec = &doc["spec"]["template"]["spec"];
            let containers = ["containers", "initContainers"]
                .into_iter()
                .flat_map(|k| spec[k].as_array().cloned().unwrap_or_default());
            for c in containers.filter(|c| c["image"].as_str().is_some_and(|i| i.contains("moor-dev/moor"))) {
                let args: Vec<String> = serde_json::from_value(c["args"].clone())?;
                moor::cli::Cli::try_parse_from(std::iter::once("moor".to_owned()).chain(args))
                    .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
                moor_containers += 1;
            }
        }
        assert_eq!(moor_containers, 1, "{file}");
    }
    Ok(())
}
