//! Controller mode (`moor run`) against the real control plane: runs `moor-under-test run`
//! as a child process and drives it through its HTTP API, the cluster and the files.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use moor_e2e::{Controller, Project, cluster, eventually, git, webhook_signature};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");
const TOKEN: &str = "s3cret-api-token";

fn cm(name: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {{ns}}\n  labels: {{app: {name}}}\ndata:\n  value: \"{data}\"\n"
    )
}

async fn cm_value(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Option<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.and_then(|c| c.data?.get("value").cloned()))
}

async fn wait_value(client: &kube::Client, ns: &str, name: &str, want: &str, seconds: u64) -> anyhow::Result<()> {
    eventually(seconds, &format!("configmap {name} = {want}"), || async {
        Ok((cm_value(client, ns, name).await?.as_deref() == Some(want)).then_some(()))
    })
    .await
}

async fn secret(client: &kube::Client, ns: &str, name: &str, data: serde_json::Value) -> anyhow::Result<()> {
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))?;
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &s).await?;
    Ok(())
}

/// The done-when of issue #5 on one pipeline: serves the status page (also in headless
/// Chromium, with a screenshot), the JSON API and metrics; applies; corrects drift; records
/// Kubernetes Events.
#[tokio::test(flavor = "multi_thread")]
async fn status_page_api_metrics_and_drift() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-status").await?;
    p.file("app.yaml", &cm("settings", "one"));
    let config = p.config_with(
        "diff_url = \"https://git.example.com/commit/{revision}\"\napi_token = { env = \"MOOR_TEST_TOKEN\" }",
        "",
        "[[pipeline]]\nname = \"web\"\nsource = \"local\"\ninterval = \"1h\"\n\
         validate = [{ use = \"policy\", with = { require_labels = [\"app\"] } }]\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[("MOOR_TEST_TOKEN", TOKEN)]).await?;
    let web = moor.runs("web", 1, 60).await?;
    let run = &web["last_run"];
    assert_eq!(run["ok"], true, "{web}");
    assert_eq!(run["counts"]["discovered"], 1);
    let drift: Vec<String> = moor.log_text().lines().filter(|l| l.contains("drift")).map(String::from).collect();
    assert_eq!(run["counts"]["applied"], 1, "{drift:#?}");
    assert_eq!(run["counts"]["in_sync"], 1);
    let revision = run["revision"].as_str().unwrap().to_owned();
    assert_eq!(run["revision_url"], format!("https://git.example.com/commit/{revision}"));
    assert_eq!(run["files"][0]["file"], "app.yaml");
    let steps: Vec<&str> = web["plugins"].as_array().unwrap().iter().map(|s| s["plugin"].as_str().unwrap()).collect();
    assert_eq!(steps, ["yaml", "policy"]);
    assert!(web["plugins"][0]["capabilities"].to_string().contains("filesystem: the source snapshot, read-only"));
    assert_eq!(cm_value(&client, &p.ns, "settings").await?.as_deref(), Some("one"));

    // Drift: a manual edit is put back soon after it is seen.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    let edit = json!({"data": {"value": "edited by hand"}});
    api.patch("settings", &PatchParams::default(), &Patch::Merge(&edit)).await?;
    let t0 = Instant::now();
    wait_value(&client, &p.ns, "settings", "one", 20).await?;
    let corrected_in = t0.elapsed();
    let web = moor.pipeline("web").await?;
    assert_eq!(web["last_run"]["trigger"], "drift", "{web}");
    assert!(corrected_in < Duration::from_secs(10), "drift corrected in {corrected_in:?}");

    // Kubernetes Events on the managed object.
    let events = cluster()
        .kubectl()
        .args([
            "get",
            "events",
            "-n",
            &p.ns,
            "-o",
            "jsonpath={range .items[*]}{.reason}/{.regarding.name}{.involvedObject.name};{end}",
        ])
        .output()?;
    let events = String::from_utf8_lossy(&events.stdout).to_string();
    assert!(events.contains("Created/settings"), "events: {events}");
    assert!(events.contains("Configured/settings"), "events: {events}");
    // A second correction at the same revision counts in that Event's series (as kube's
    // and client-go's recorders do) instead of making another Event.
    let again = json!({"data": {"value": "edited again"}});
    api.patch("settings", &PatchParams::default(), &Patch::Merge(&again)).await?;
    wait_value(&client, &p.ns, "settings", "one", 20).await?;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &p.ns);
    eventually(30, "the second correction in the first Event's series", || async {
        let configured: Vec<_> = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Configured"))
            .collect();
        assert_eq!(configured.len(), 1, "one Configured Event: {configured:#?}");
        Ok(configured[0].series.as_ref().is_some_and(|s| s.count == 2).then_some(()))
    })
    .await?;

    // The page, the API and the health endpoints.
    let (code, page) = moor.get_text("/").await?;
    assert_eq!(code, 200);
    for want in [
        "id='pipeline-web'",
        &format!("href='https://git.example.com/commit/{revision}'"),
        "discovered 1 · applied",
        "Force run",
        "filesystem: the source snapshot, read-only",
        "app.yaml",
    ] {
        assert!(page.contains(want), "the status page lacks {want:?}:\n{page}");
    }
    assert_eq!(moor.get_text("/healthz").await?.0, 200);
    assert_eq!(moor.get_text("/readyz").await?.0, 200);
    assert_eq!(moor.get_text("/api/v1/pipelines/web").await?.0, 200);
    assert_eq!(moor.get_text("/api/v1/pipelines/nope").await?.0, 404);

    // Metrics with their labels.
    let (_, metrics) = moor.get_text("/metrics").await?;
    for want in [
        "moor_run_duration_seconds_count{pipeline=\"web\",result=\"success\"}",
        "moor_objects_total{pipeline=\"web\",action=\"created\"} 1",
        "moor_file_applies_total{pipeline=\"web\",file=\"app.yaml\",result=\"success\"}",
        "moor_plugin_call_duration_seconds_count{plugin=\"yaml\"}",
        "moor_plugin_call_duration_seconds_count{plugin=\"policy\"}",
        "moor_time_to_deploy_seconds_count{pipeline=\"web\"} 1",
        "moor_pipeline_objects{pipeline=\"web\",state=\"in_sync\"} 1",
        "moor_triggers_total{pipeline=\"web\",trigger=\"drift\"}",
        "moor_queue_depth ",
        "moor_leader 1",
    ] {
        assert!(metrics.contains(want), "/metrics lacks {want:?}:\n{metrics}");
    }

    // The page in a real browser: rendered, and kept as a screenshot.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("chromium is installed (scripts/test installs Debian's package)");
    let headless = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"];
    let dom = Command::new(chromium).args(headless).arg("--dump-dom").arg(&moor.url).output()?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("pipeline-web") && dom.contains("Force run"), "chromium rendered: {dom}");
    let out = Command::new(chromium)
        .args(headless)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,900")
        .arg(&moor.url)
        .output()?;
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("status page screenshot: {}", shot.display());
    Ok(())
}

/// KA-1 and FX-10: a commit is applied within one poll interval; a webhook needs a good
/// HMAC-SHA256 signature (from a Kubernetes Secret).
#[tokio::test(flavor = "multi_thread")]
async fn commits_and_signed_webhooks_trigger_runs() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-git").await?;
    let repo = p.dir.path().join("repo");
    std::fs::create_dir_all(&repo)?;
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("app.yaml"), cm("from-git", "v1").replace("{ns}", &p.ns))?;
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v1"]);
    secret(&client, &p.ns, "hook", json!({"secret": "hook-secret"})).await?;
    p.file("hooked.yaml", &cm("hooked", "one"));
    let config = p.config_with(
        "",
        "poll_interval = \"0s\"",
        &format!(
            "[[source]]\nname = \"repo\"\ngit = {{ url = \"file://{}\", ref = \"main\" }}\npoll_interval = \"2s\"\n\n\
         [[pipeline]]\nname = \"from-git\"\nsource = \"repo\"\ninterval = \"1h\"\n\n\
         [[pipeline]]\nname = \"hooked\"\nsource = \"local\"\ninterval = \"1h\"\n\
         webhook_secret = {{ secret = \"{}/hook\", key = \"secret\" }}\n",
            repo.display(),
            p.ns
        ),
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    moor.runs("from-git", 1, 60).await?;
    moor.runs("hooked", 1, 60).await?;
    wait_value(&client, &p.ns, "from-git", "v1", 10).await?;

    std::fs::write(repo.join("app.yaml"), cm("from-git", "v2").replace("{ns}", &p.ns))?;
    git(&repo, &["commit", "-q", "-am", "v2"]);
    let t0 = Instant::now();
    wait_value(&client, &p.ns, "from-git", "v2", 20).await?;
    let applied_in = t0.elapsed();
    assert!(applied_in < Duration::from_secs(2 + 3), "the commit took {applied_in:?} (poll interval 2s)");
    assert_eq!(moor.pipeline("from-git").await?["last_run"]["trigger"], "revision");

    // Webhooks: unsigned and wrongly signed requests are rejected and start nothing.
    p.file("hooked.yaml", &cm("hooked", "two"));
    let body = r#"{"ref":"refs/heads/main"}"#;
    let (code, text) = moor.post("/hooks/hooked", None, &[], body).await?;
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("not signed"), "{text}");
    let wrong = webhook_signature(b"not-the-secret", body.as_bytes());
    let (code, _) = moor.post("/hooks/hooked", None, &[("x-hub-signature-256", &wrong)], body).await?;
    assert_eq!(code, 401);
    let (code, _) = moor.post("/hooks/from-git", None, &[], body).await?;
    assert_eq!(code, 404, "a pipeline without webhook_secret has no webhook");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let drift: Vec<String> = moor.log_text().lines().filter(|l| l.contains("drift")).map(String::from).collect();
    assert_eq!(moor.pipeline("hooked").await?["runs"], 1, "{drift:#?}");
    assert_eq!(cm_value(&client, &p.ns, "hooked").await?.as_deref(), Some("one"));

    let good = webhook_signature(b"hook-secret", body.as_bytes());
    let (code, text) = moor.post("/hooks/hooked", None, &[("x-hub-signature-256", &good)], body).await?;
    assert_eq!(code, 202, "{text}");
    wait_value(&client, &p.ns, "hooked", "two", 10).await?;
    assert_eq!(moor.pipeline("hooked").await?["last_run"]["trigger"], "webhook");
    Ok(())
}

/// FX-1 and FX-10: dependents wait for, and are blocked by, their dependencies; suspend
/// and resume from the config and the API; the API needs its token (a Kubernetes Secret).
#[tokio::test(flavor = "multi_thread")]
async fn depends_on_and_suspend() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-deps").await?;
    secret(&client, &p.ns, "api", json!({"token": TOKEN})).await?;
    p.file("base/a.yaml", "apiVersion: v1\nkind: Nonsense\nmetadata:\n  name: broken\n");
    p.file("app/a.yaml", &cm("app", "one"));
    p.file("paused/a.yaml", &cm("paused", "one"));
    let config = p.config_with(
        "api_token = { secret = \"{ns}/api\", key = \"token\" }",
        "poll_interval = \"1s\"",
        "[[pipeline]]\nname = \"app\"\nsource = \"local\"\npath = \"app\"\ndepends_on = [\"base\"]\ninterval = \"1h\"\n\n\
         [[pipeline]]\nname = \"base\"\nsource = \"local\"\npath = \"base\"\ninterval = \"1h\"\nretry_interval = \"1s\"\n\n\
         [[pipeline]]\nname = \"paused\"\nsource = \"local\"\npath = \"paused\"\nsuspend = true\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;

    // base fails: app is blocked, with the reason.
    moor.runs("base", 1, 60).await?;
    let app = eventually(20, "app to be blocked", || async {
        let app = moor.pipeline("app").await?;
        Ok((app["state"] == "blocked").then_some(app))
    })
    .await?;
    assert!(app["reason"].as_str().unwrap().contains("dependency `base` failed"), "{app}");
    assert_eq!(app["runs"], 0);
    assert_eq!(cm_value(&client, &p.ns, "app").await?, None);

    // base fixed (a new revision): base applies, then app, in that order.
    p.file("base/a.yaml", &cm("base", "one"));
    let app = moor.runs("app", 1, 30).await?;
    let base = moor.pipeline("base").await?;
    assert_eq!(base["last_run"]["ok"], true, "{base}");
    assert!(app["last_run"]["started"].as_str() >= base["last_run"]["finished"].as_str(), "{base}\n{app}");
    assert_eq!(cm_value(&client, &p.ns, "app").await?.as_deref(), Some("one"));

    // Suspended in the config: never run; the API needs the token, then resumes it.
    let paused = moor.pipeline("paused").await?;
    assert_eq!((paused["state"].as_str(), paused["runs"].as_u64()), (Some("suspended"), Some(0)), "{paused}");
    assert_eq!(moor.post("/api/v1/pipelines/paused/resume", None, &[], "").await?.0, 401);
    assert_eq!(moor.post("/api/v1/pipelines/paused/resume", Some("wrong"), &[], "").await?.0, 401);
    let (code, text) = moor.post("/api/v1/pipelines/paused/reconcile", Some(TOKEN), &[], "").await?;
    assert_eq!(code, 409, "a suspended pipeline is not run: {text}");
    assert_eq!(moor.post("/api/v1/pipelines/paused/resume", Some(TOKEN), &[], "").await?.0, 200);
    moor.runs("paused", 1, 30).await?;
    assert_eq!(cm_value(&client, &p.ns, "paused").await?.as_deref(), Some("one"));

    // Suspended through the CLI: changes are not applied until it is resumed.
    let cli = |verb: &str| {
        Command::new(BIN).args([verb, "app", "--server", &moor.url, "--token", TOKEN]).output().expect("moor runs")
    };
    assert!(cli("suspend").status.success());
    p.file("app/a.yaml", &cm("app", "two"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cm_value(&client, &p.ns, "app").await?.as_deref(), Some("one"));
    assert_eq!(moor.pipeline("app").await?["state"], "suspended");
    assert!(cli("resume").status.success());
    wait_value(&client, &p.ns, "app", "two", 20).await?;
    Ok(())
}

/// KA-6: a force run during a run queues exactly one more.
#[tokio::test(flavor = "multi_thread")]
async fn force_run_queues_exactly_one() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-force").await?;
    p.file("gate.yaml", &cm("gate", "one"));
    // Healthy only once the test says so: the first run waits on it.
    let config = p.config_with(
        "api_token = { env = \"MOOR_TEST_TOKEN\" }",
        "",
        "[[pipeline]]\nname = \"slow\"\nsource = \"local\"\ninterval = \"1h\"\nhealth_timeout = \"2m\"\n\
         health = [{ kind = \"ConfigMap\", ready = \"has(object.metadata.annotations) && 'go' in object.metadata.annotations\" }]\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[("MOOR_TEST_TOKEN", TOKEN)]).await?;
    eventually(30, "the first run to wait for health", || async {
        Ok((moor.pipeline("slow").await?["state"] == "running" && cm_value(&client, &p.ns, "gate").await?.is_some())
            .then_some(()))
    })
    .await?;
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (code, text) = moor.post("/api/v1/pipelines/slow/reconcile", Some(TOKEN), &[], "").await?;
        assert_eq!(code, 202, "{text}");
        answers.push(serde_json::from_str::<serde_json::Value>(&text)?["result"].as_str().unwrap().to_owned());
    }
    assert_eq!(answers, ["queued", "already_queued", "already_queued"]);
    assert_eq!(moor.pipeline("slow").await?["queued"], "manual");
    // The page's button needs the token too.
    let (code, _) = moor
        .post(
            "/ui/pipelines/slow/reconcile",
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
            "token=nope",
        )
        .await?;
    assert_eq!(code, 401);

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    let go = json!({"metadata": {"annotations": {"go": "now"}}});
    api.patch("gate", &PatchParams::default(), &Patch::Merge(&go)).await?;
    let slow = moor.runs("slow", 2, 30).await?;
    assert_eq!(slow["last_run"]["trigger"], "manual", "{slow}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let slow = moor.pipeline("slow").await?;
    let drift: Vec<String> = moor.log_text().lines().filter(|l| l.contains("drift")).map(String::from).collect();
    assert_eq!(slow["runs"], 2, "exactly one run was queued: {slow}\n{drift:#?}");
    assert_eq!(slow["queued"], serde_json::Value::Null);
    Ok(())
}

/// The value of one series of `/metrics`, 0 when absent.
fn metric(metrics: &str, series: &str) -> u64 {
    let series = format!("{series} ");
    metrics.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// `moor_kube_requests_total` of one verb.
fn requests(metrics: &str, verb: &str) -> u64 {
    metric(metrics, &format!("moor_kube_requests_total{{verb=\"{verb}\"}}"))
}

/// #15's steady state: once the drift watches have listed the pipeline's kinds, a run
/// where nothing changed reads its objects from their cache, so it costs only the
/// inventory read (a GET), and no LIST.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_nothing_changed_costs_one_request() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-steady").await?;
    p.file("app.yaml", &cm("settings", "one"));
    p.file(
        "more.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  token: abc\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{ port: 80 }]\n",
    );
    let config = p.config_with(
        "api_token = { env = \"MOOR_TEST_TOKEN\" }",
        "",
        "[[pipeline]]\nname = \"steady\"\nsource = \"local\"\ninterval = \"1h\"\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[("MOOR_TEST_TOKEN", TOKEN)]).await?;
    assert_eq!(moor.runs("steady", 1, 60).await?["last_run"]["ok"], true);
    // A watch request follows each kind's initial list: three kinds, three watches. The
    // first run's three Events (one per created object) go out off the run's path: they
    // are counted before the figure is taken, or they would land in the runs measured.
    let before = eventually(30, "the drift watches to list their kinds and the first run's events", || async {
        let (_, metrics) = moor.get_text("/metrics").await?;
        Ok((requests(&metrics, "watch") >= 3 && requests(&metrics, "create") >= 3).then_some(metrics))
    })
    .await?;

    for run in 2..=3 {
        let (code, text) = moor.post("/api/v1/pipelines/steady/reconcile", Some(TOKEN), &[], "").await?;
        assert_eq!(code, 202, "{text}");
        let steady = moor.runs("steady", run, 30).await?;
        assert_eq!(steady["last_run"]["ok"], true, "{steady}");
        assert_eq!(steady["last_run"]["counts"]["unchanged"], 3, "{steady}");
    }
    let (_, after) = moor.get_text("/metrics").await?;
    let spent = |verb| requests(&after, verb) - requests(&before, verb);
    assert_eq!(spent("list"), 0, "no LIST in a run with nothing changed:\n{after}");
    assert_eq!(spent("get"), 2, "two runs, one inventory read each:\n{after}");
    for verb in ["patch", "create", "update", "delete"] {
        assert_eq!(spent(verb), 0, "nothing to write ({verb}):\n{after}");
    }

    // A change made by hand still reaches the run through the cache: drift puts it back.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    api.patch("settings", &PatchParams::default(), &Patch::Merge(&json!({"data": {"value": "edited"}}))).await?;
    wait_value(&client, &p.ns, "settings", "one", 20).await?;
    Ok(())
}

/// #15's first apply: an object no LIST or cache has seen is applied without a GET first,
/// and the server's answer tells created (201) from configured (200, an object that was
/// there without the pipeline's labels).
#[tokio::test(flavor = "multi_thread")]
async fn new_objects_cost_no_get_and_an_object_already_there_is_configured_not_created() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-no-get").await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    let there: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "there"}, "data": {"value": "old"}}))?;
    api.create(&PostParams::default(), &there).await?;
    p.file("app.yaml", &cm("settings", "one"));
    p.file("there.yaml", &cm("there", "new"));
    // No polling: the forced run is the one that meets the new files.
    let config = p.config_with(
        "api_token = { env = \"MOOR_TEST_TOKEN\" }",
        "poll_interval = \"0s\"",
        "[[pipeline]]\nname = \"fresh\"\nsource = \"local\"\ninterval = \"1h\"\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[("MOOR_TEST_TOKEN", TOKEN)]).await?;
    assert_eq!(moor.runs("fresh", 1, 60).await?["last_run"]["ok"], true);
    let objects = |metrics: &str, action: &str| {
        metric(metrics, &format!("moor_objects_total{{pipeline=\"fresh\",action=\"{action}\"}}"))
    };
    // The first run's two Events are sent before the figure is taken.
    let before = eventually(30, "the ConfigMap watch and the first run's events", || async {
        let (_, metrics) = moor.get_text("/metrics").await?;
        Ok((requests(&metrics, "watch") >= 1 && requests(&metrics, "create") >= 2).then_some(metrics))
    })
    .await?;
    assert_eq!((objects(&before, "created"), objects(&before, "configured")), (1, 1), "{before}");
    assert_eq!(cm_value(&client, &p.ns, "there").await?.as_deref(), Some("new"));

    for name in ["one", "two", "three"] {
        p.file(&format!("{name}.yaml"), &cm(name, name));
    }
    let (code, text) = moor.post("/api/v1/pipelines/fresh/reconcile", Some(TOKEN), &[], "").await?;
    assert_eq!(code, 202, "{text}");
    assert_eq!(moor.runs("fresh", 2, 30).await?["last_run"]["ok"], true);
    let (_, after) = moor.get_text("/metrics").await?;
    let spent = |verb| requests(&after, verb) - requests(&before, verb);
    assert_eq!(spent("get"), 1, "the inventory read, and no GET of the three new objects:\n{after}");
    assert_eq!(spent("list"), 0, "the cache answered for the pipeline's ConfigMaps:\n{after}");
    assert_eq!(objects(&after, "created"), 4, "{after}");
    assert_eq!(objects(&after, "configured"), 1, "{after}");
    for name in ["one", "two", "three"] {
        assert_eq!(cm_value(&client, &p.ns, name).await?.as_deref(), Some(name));
    }
    Ok(())
}

/// #16: objects of a kind the pipeline's own CRD defines are watched for drift from the
/// run that created the CRD on, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn drift_on_a_kind_its_own_crd_defines() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-crd-drift").await?;
    let group = format!("{}.moor.test", p.ns);
    p.file("crd.yaml", &format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: widgets.{group}}}\nspec:\n  group: {group}\n  names: {{kind: Widget, plural: widgets, singular: widget}}\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n"
    ));
    p.file(
        "widget.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w1, namespace: '{{ns}}'}}\nspec: {{size: 2}}\n"
        ),
    );
    let config = p.config_with("", "", "[[pipeline]]\nname = \"crd\"\nsource = \"local\"\ninterval = \"1h\"\n");
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    assert_eq!(moor.runs("crd", 1, 60).await?["last_run"]["ok"], true);

    let resource = kube::discovery::ApiResource {
        group: group.clone(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &p.ns, &resource);
    let size = || async { anyhow::Ok(widgets.get("w1").await?.data["spec"]["size"].as_i64()) };
    // The watch starts after the run; an edit made before it lists is still drift.
    widgets.patch("w1", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"size": 5}}))).await?;
    eventually(20, "the hand-made edit of the Widget to be put back", || async {
        Ok((size().await? == Some(2)).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", moor.log_text()))?;
    assert_eq!(moor.pipeline("crd").await?["last_run"]["trigger"], "drift");
    Ok(())
}

/// CORE-3: a valid config takes effect without a restart; an invalid one is rejected,
/// shown, and the old config keeps running.
#[tokio::test(flavor = "multi_thread")]
async fn hot_reload() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-reload").await?;
    p.file("one/a.yaml", &cm("one", "x"));
    p.file("two/a.yaml", &cm("two", "x"));
    let one = "[[pipeline]]\nname = \"one\"\nsource = \"local\"\npath = \"one\"\ninterval = \"1h\"\n";
    let config = p.config(one);
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    moor.runs("one", 1, 60).await?;

    let two = format!("{one}\n[[pipeline]]\nname = \"two\"\nsource = \"local\"\npath = \"two\"\ninterval = \"1h\"\n");
    p.config(&two);
    moor.runs("two", 1, 30).await?;
    assert_eq!(cm_value(&client, &p.ns, "two").await?.as_deref(), Some("x"));

    let broken = format!("{two}\n[[pipeline]]\nname = \"three\"\nsource = \"nowhere\"\n");
    p.config(&broken);
    let status = eventually(20, "the bad config to be rejected", || async {
        let s = moor.status().await?;
        Ok(s["config_error"].is_string().then_some(s))
    })
    .await?;
    let error = status["config_error"].as_str().unwrap();
    assert!(error.contains("moor.toml:") && error.contains("no source is named `nowhere`"), "{error}");
    let names: Vec<&str> =
        status["pipelines"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["one", "two"], "the old config keeps running");
    let (_, page) = moor.get_text("/").await?;
    assert!(page.contains("id=config-error") && page.contains("no source is named `nowhere`"), "{page}");
    assert!(moor.log_text().contains("config rejected"));

    // Dropping a pipeline removes what it applied (FA-10), once the config is valid again.
    p.config(one);
    eventually(30, "pipeline two's objects to be pruned", || async {
        Ok(cm_value(&client, &p.ns, "two").await?.is_none().then_some(()))
    })
    .await?;
    assert!(moor.status().await?["config_error"].is_null());
    Ok(())
}

/// FA-7: with two controllers, one leads; when it is killed the other takes over within
/// about 20 s and carries on; a SIGTERM releases the lease at once.
#[tokio::test(flavor = "multi_thread")]
async fn leader_election_fails_over() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-leader").await?;
    p.file("a.yaml", &cm("led", "one"));
    let pipeline = "[[pipeline]]\nname = \"led\"\nsource = \"local\"\ninterval = \"1h\"\n";
    let config = p.config_with("", "poll_interval = \"1s\"", pipeline);
    let args = ["--leader-elect"];
    let mut a = Controller::start(BIN, &config, &[&args[..], &["--identity", "a"]].concat(), &[]).await?;
    let mut b = Controller::start(BIN, &config, &[&args[..], &["--identity", "b"]].concat(), &[]).await?;
    let leaders = eventually(30, "one leader", || async {
        let (sa, sb) = (a.status().await?, b.status().await?);
        let l = (sa["leader"].as_bool().unwrap(), sb["leader"].as_bool().unwrap());
        Ok((l.0 != l.1).then_some(l))
    })
    .await?;
    let (leader, standby) = if leaders.0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
    leader.runs("led", 1, 60).await?;
    assert_eq!(standby.pipeline("led").await?["runs"], 0, "the standby runs nothing");
    assert!(standby.get_text("/metrics").await?.1.contains("moor_leader 0"));

    // kill -9 the leader: the standby takes over and applies the next change.
    leader.child.kill()?;
    leader.child.wait()?;
    let t0 = Instant::now();
    eventually(30, "the standby to lead", || async { Ok(standby.status().await?["leader"].as_bool().filter(|l| *l)) })
        .await?;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(22), "took over in {took:?}");
    p.file("a.yaml", &cm("led", "two"));
    wait_value(&client, &p.ns, "led", "two", 30).await?;

    // SIGTERM: the new leader exits cleanly and releases the lease.
    let status = standby.terminate(30)?;
    assert!(status.success(), "{status}");
    assert!(standby.log_text().contains("lease released"), "{}", standby.log_text());
    Ok(())
}

/// FX-9: the webhook notifier posts JSON to an allowed host (its URL from a Secret), is
/// denied for any other host, and a failing notifier does not fail the delivery.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_notifier_and_allow_list() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-notify").await?;
    let mut receiver = moor_e2e::Receiver::start().await?;
    let port = receiver.port;
    secret(&client, &p.ns, "hook", json!({"url": format!("http://127.0.0.1:{port}/moor")})).await?;
    p.file("allowed/a.yaml", &cm("allowed", "one"));
    p.file("denied/a.yaml", &cm("denied", "one"));
    let config = p.config(&format!(
        "[[pipeline]]\nname = \"allowed\"\nsource = \"local\"\npath = \"allowed\"\ninterval = \"1h\"\n\
         notify = [{{ use = \"webhook\", secrets = {{ url = {{ secret = \"{ns}/hook\", key = \"url\" }} }}, allow_hosts = [\"127.0.0.1:{port}\"] }}]\n\n\
         [[pipeline]]\nname = \"denied\"\nsource = \"local\"\npath = \"denied\"\ninterval = \"1h\"\n\
         notify = [{{ use = \"webhook\", with = {{ url = \"http://127.0.0.1:{port}/moor\" }}, allow_hosts = [\"hooks.example.com\"] }}]\n",
        ns = p.ns
    ));
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let (head, body) = receiver.next(60).await?;
    assert!(head.starts_with("POST /moor HTTP/1.1"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let event = &body["events"][0];
    assert_eq!(event["pipeline"], "allowed", "{body}");
    assert_eq!(event["reason"], "run-succeeded");
    assert_eq!(event["objects"][0]["name"], "allowed");

    let denied = eventually(30, "the denied notification", || async {
        let d = moor.pipeline("denied").await?;
        Ok(d["notify_error"].is_string().then_some(d))
    })
    .await?;
    assert_eq!(denied["last_run"]["ok"], true, "a failing notifier does not fail the delivery: {denied}");
    assert!(denied["notify_error"].as_str().unwrap().contains("denied"), "{denied}");
    assert!(moor.log_text().contains("plugin request denied"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.requests.try_recv().is_err(), "nothing reached the listener from the denied pipeline");
    let page = moor.get_text("/").await?.1;
    assert!(page.contains("hosts: 127.0.0.1:") && page.contains("secrets: url"), "{page}");
    Ok(())
}

/// CORE-6: the in-cluster manifests are accepted by the API server (server-side dry run of
/// `kubectl apply -k deploy/`), and `moor.toml` in the ConfigMap is a valid config.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_manifests_are_accepted() -> anyhow::Result<()> {
    let deploy = moor_e2e::repo_root().join("deploy");
    let out = cluster().kubectl().args(["kustomize"]).arg(&deploy).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout)?;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &rendered)?;
    // Namespaced objects of a namespace being created need it to exist for a dry run.
    let _ = cluster().kubectl().args(["create", "namespace", "moor-system"]).output()?;
    let out = cluster()
        .kubectl()
        .args(["apply", "--server-side", "--dry-run=server", "--field-manager=deploy-check", "-f"])
        .arg(file.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    for kind in [
        "deployment.apps/moor",
        "service/moor",
        "configmap/moor-config",
        "clusterrole.rbac.authorization.k8s.io/moor-apply",
    ] {
        assert!(stdout.contains(kind), "{kind} missing from:\n{stdout}");
    }

    let configmap: serde_json::Value = rendered
        .split("\n---\n")
        .filter_map(|doc| serde_json::to_value(serde_yaml_ng::from_str::<serde_yaml_ng::Value>(doc).ok()?).ok())
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the ConfigMap");
    let toml = configmap["data"]["moor.toml"].as_str().expect("moor.toml");
    let builtin: Vec<&str> = moor::plugins::builtin_names().collect();
    moor::config::Config::parse(Path::new("deploy/configmap.yaml#moor.toml"), toml.into(), &builtin)?;
    Ok(())
}

/// FA-7: a leader whose Lease is taken stops at once and applies nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_loses_its_lease_stops() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-lost").await?;
    p.file("a.yaml", &cm("held", "one"));
    let pipeline = "[[pipeline]]\nname = \"held\"\nsource = \"local\"\ninterval = \"1h\"\n";
    let config = p.config_with("", "poll_interval = \"1s\"", pipeline);
    let moor = Controller::start(BIN, &config, &["--leader-elect", "--identity", "holder"], &[]).await?;
    moor.runs("held", 1, 60).await?;
    assert_eq!(moor.status().await?["leader"], true);

    // Someone else takes the Lease (as a partitioned leader would find on its next renewal).
    take_lease(&p.instance)?;
    eventually(30, "the leader to notice", || async { Ok((moor.status().await?["leader"] == false).then_some(())) })
        .await?;
    assert!(moor.log_text().contains("lost the lease"), "{}", moor.log_text());
    assert!(moor.get_text("/metrics").await?.1.contains("moor_leader 0"));
    let runs = moor.pipeline("held").await?["runs"].clone();
    p.file("a.yaml", &cm("held", "two"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(cm_value(&client, &p.ns, "held").await?.as_deref(), Some("one"), "a standby applies nothing");
    assert_eq!(moor.pipeline("held").await?["runs"], runs);
    Ok(())
}

/// Takes the Lease of `instance` from its holder, as a partitioned leader finds it.
fn take_lease(instance: &str) -> anyhow::Result<()> {
    let now = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"]).output()?;
    let now = String::from_utf8(now.stdout)?.trim().to_owned();
    let patch = json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "acquireTime": now, "leaseDurationSeconds": 600}});
    let lease = format!("moor-{instance}");
    let args = ["-n", "moor-system", "patch", "lease", &lease, "--type", "merge", "-p", &patch.to_string()];
    let out = cluster().kubectl().args(args).output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Regression: a leader that lost its lease aborted its runs' tasks, but a task inside a
/// plugin call (a blocking section) is cancelled only once the call returns: a render in a
/// loop went on to the plugin's own limit. The lost lease now raises the run's interrupt,
/// which stops the call within a second.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_lease_stops_a_render_stuck_in_a_plugin_at_once() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-lost-render").await?;
    p.file("a.yaml", &cm("a", "x"));
    let probe = moor_test_artifacts::path("probe");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(probe)?))
    };
    let config = p.config(&format!(
        "[[plugin]]\nname = \"stuck\"\npath = \"{probe}\"\nsha256 = \"{sha}\"\ntimeout = \"120s\"\n\n\
         [[pipeline]]\nname = \"stuck\"\nsource = \"local\"\ninterval = \"1h\"\ntimeout = \"1h\"\n\
         render = [{{ use = \"stuck\", with = {{ action = \"loop\" }} }}]\n"
    ));
    let moor = Controller::start(BIN, &config, &["--leader-elect", "--identity", "holder"], &[]).await?;
    let in_progress = || async {
        let metrics = moor.get_text("/metrics").await?.1;
        anyhow::Ok(metric(&metrics, "moor_runs_in_progress"))
    };
    eventually(30, "the render to be stuck in the plugin", || async { Ok((in_progress().await? == 1).then_some(())) })
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    take_lease(&p.instance)?;
    eventually(30, "the leader to notice", || async { Ok((moor.status().await?["leader"] == false).then_some(())) })
        .await?;
    let noticed = Instant::now();
    eventually(10, "the stuck run to end", || async { Ok((in_progress().await? == 0).then_some(())) })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", moor.log_text()))?;
    let took = noticed.elapsed();
    assert!(took < Duration::from_secs(3), "the run ended {took:?} after the lease was lost (plugin limit 120 s)");
    // Stopped at once: the run either ends there, its record naming why, or its task is
    // dropped first, and the pipeline shows as stopped for that reason.
    let stuck = moor.pipeline("stuck").await?;
    let why = "this instance lost its lease";
    let recorded =
        stuck["last_run"]["error"].as_str().is_some_and(|e| e == format!("plugin `stuck` was stopped: {why}"));
    assert!(recorded || stuck["reason"] == why, "{stuck}");
    Ok(())
}

/// A run that outlives its `timeout` is stopped, and failures are retried with backoff.
#[tokio::test(flavor = "multi_thread")]
async fn runs_time_out_and_failures_are_retried() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-timeout").await?;
    p.file("a.yaml", &cm("never-ready", "x"));
    let config = p.config(
        "[[pipeline]]\nname = \"stuck\"\nsource = \"local\"\ninterval = \"1h\"\ntimeout = \"2s\"\nretry_interval = \"2s\"\n\
         health_timeout = \"5m\"\nhealth = [{ kind = \"ConfigMap\", ready = \"false\" }]\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let stuck = moor.runs("stuck", 2, 30).await?;
    let run = &stuck["last_run"];
    // It fails at the stage it was in, naming the timeout.
    assert_eq!((run["ok"].as_bool(), run["stage"].as_str()), (Some(false), Some("health")), "{stuck}");
    assert!(run["error"].as_str().unwrap().contains("stopped: the run's timeout of 2s passed"), "{stuck}");
    assert!(run["latency_seconds"].as_f64().unwrap() < 3.0, "{stuck}");
    assert_eq!(run["trigger"], "retry");
    assert!(stuck["failures_in_a_row"].as_u64().unwrap() >= 2, "{stuck}");
    Ok(())
}

/// Regression: a dependency with `wait = false` has its health not checked, which the gate
/// took for unhealthy: its dependents were blocked for ever.
#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_that_does_not_wait_lets_its_dependent_run() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-nowait").await?;
    p.file("base/a.yaml", &cm("base", "one"));
    p.file("app/a.yaml", &cm("app", "one"));
    let config = p.config(
        "[[pipeline]]\nname = \"app\"\nsource = \"local\"\npath = \"app\"\ndepends_on = [\"base\"]\ninterval = \"1h\"\n\n\
         [[pipeline]]\nname = \"base\"\nsource = \"local\"\npath = \"base\"\ninterval = \"1h\"\nwait = false\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let app = moor.runs("app", 1, 60).await?;
    assert_eq!(app["last_run"]["ok"], true, "{app}");
    assert_eq!(cm_value(&client, &p.ns, "app").await?.as_deref(), Some("one"));
    let base = moor.pipeline("base").await?;
    assert_eq!(base["last_run"]["health"]["state"], "not_checked", "{base}");
    Ok(())
}

/// Regression: a run that failed health dropped what it had done. It sent no Events,
/// counted nothing, and the drift watch kept comparing with the run before, so any update
/// of an object the failed run had changed (a status, another manager's label) looked like
/// drift and ran the pipeline again at once, past its backoff.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_fails_health_keeps_its_events_counts_and_drift_memory() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "ctl-unhealthy").await?;
    p.file("a.yaml", &cm("web", "one"));
    let config = p.config_with(
        "",
        "poll_interval = \"1s\"",
        "[[pipeline]]\nname = \"web\"\nsource = \"local\"\ninterval = \"1h\"\nretry_interval = \"1h\"\n\
         health_timeout = \"2s\"\nhealth = [{ kind = \"ConfigMap\", ready = \"object.data.value == 'one'\" }]\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let first = moor.runs("web", 1, 60).await?;
    assert_eq!(first["last_run"]["ok"], true, "{first}");

    // A new revision the objects of which never become healthy: the run fails at health.
    p.file("a.yaml", &cm("web", "two"));
    let failed = eventually(60, "the run of the new revision to fail health", || async {
        let web = moor.pipeline("web").await?;
        Ok((web["last_run"]["stage"] == "health").then_some(web))
    })
    .await?;
    let run = &failed["last_run"];
    assert_eq!(run["health"]["state"], "failed", "{failed}");
    assert_eq!(run["counts"]["discovered"], 1, "what the failed run applied is counted: {failed}");
    assert_eq!(cm_value(&client, &p.ns, "web").await?.as_deref(), Some("two"));
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &p.ns);
    eventually(30, "the failed run's Configured Event", || async {
        let listed = events.list(&Default::default()).await?;
        Ok(listed
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("Configured")
                    && e.note.as_deref().is_some_and(|n| n.starts_with("configured by pipeline web"))
            })
            .then_some(()))
    })
    .await?;

    // Another manager's label on the object, over and over (as status updates come): not
    // drift, since the object still carries everything the failed run applied.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    for i in 0..20 {
        let label = json!({"metadata": {"labels": {"other": format!("x{i}")}}});
        cms.patch("web", &PatchParams::apply("someone-else"), &Patch::Apply(&json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "labels": label["metadata"]["labels"]},
        })))
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = moor.log_text();
    assert!(!log.contains("drift: a managed object changed outside moor"), "{log}");
    // Retried on its backoff and by nothing else: every run since the failure was started
    // by the retry, the n-th one at least 2^n s after the run before it ended (1 s doubling,
    // plus up to as much again of jitter).
    let web = eventually(30, "two retries of the failed run", || async {
        let web = moor.pipeline("web").await?;
        let history = web["history"].as_array().cloned().unwrap_or_default();
        let failed = history.iter().filter(|r| r["ok"] == false).count();
        Ok((failed >= 3).then_some(web))
    })
    .await?;
    let history = web["history"].as_array().unwrap();
    let first_failure = history.iter().position(|r| r["ok"] == false).unwrap();
    let since = &history[first_failure..];
    let time = |r: &serde_json::Value, field: &str| humantime::parse_rfc3339(r[field].as_str().unwrap()).unwrap();
    for (n, pair) in since.windows(2).enumerate() {
        assert_eq!(pair[1]["trigger"], "retry", "{web}");
        let waited = time(&pair[1], "started").duration_since(time(&pair[0], "finished")).unwrap_or_default();
        let least = Duration::from_secs(1 << n) - Duration::from_millis(50);
        assert!(waited >= least, "retry {n} came {waited:?} after the run before, under its backoff {least:?}: {web}");
    }
    Ok(())
}
