//! The standard notifiers (FX-9) from `moor run`: Slack (Block Kit) and Teams (Adaptive
//! Card) payloads as the providers document them, the webhook's body template and its
//! authorization header from a Secret, one message per run, per-step filters, a denied host
//! and a receiver answering 500 (the delivery is not failed; the status shows why).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use moor_e2e::{Controller, Project, Receiver, cluster, eventually};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

#[tokio::test(flavor = "multi_thread")]
async fn slack_teams_and_webhook_get_one_message_per_run_in_their_shapes() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "notifiers").await?;
    let (mut slack, mut teams, mut hook, mut failing) =
        (Receiver::start().await?, Receiver::start().await?, Receiver::start().await?, Receiver::start().await?);
    failing.status.store(500, std::sync::atomic::Ordering::Relaxed);
    let urls = json!({
        "slack": format!("http://127.0.0.1:{}/services/T000/B000/XXXX", slack.port),
        "teams": format!("http://127.0.0.1:{}/workflows/abc/triggers/manual/paths/invoke?sig=S1G", teams.port),
        "auth": "Bearer hook-t0ken",
    });
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "hooks"}, "stringData": urls}))?;
    Api::<Secret>::namespaced(client.clone(), &p.ns).create(&PostParams::default(), &secret).await?;
    for i in 0..3 {
        p.file(
            &format!("cm-{i}.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: {{ns}}}}\n"),
        );
    }
    let step = |plugin: &str, port: u16, extra: &str| {
        format!("{{ use = \"{plugin}\", allow_hosts = [\"127.0.0.1:{port}\"], {extra} }}")
    };
    let notify = [
        step("slack", slack.port, "secrets = { url = { secret = \"{ns}/hooks\", key = \"slack\" } }"),
        step("msteams", teams.port, "secrets = { url = { secret = \"{ns}/hooks\", key = \"teams\" } }"),
        step(
            "webhook",
            hook.port,
            &format!(
                "with = {{ url = \"http://127.0.0.1:{}/moor\", body = {{ text = \"{{pipeline}} {{reason}}: {{summary}}\" }} }}, \
                 secrets = {{ \"headers.authorization\" = {{ secret = \"{{ns}}/hooks\", key = \"auth\" }} }}",
                hook.port
            ),
        ),
        // Only failures: this run succeeds, so nothing reaches it.
        step(
            "webhook",
            failing.port,
            &format!("with = {{ url = \"http://127.0.0.1:{}/only-failures\" }}, on = [\"run-failed\"]", failing.port),
        ),
    ];
    let config = p.config(&format!(
        "[[pipeline]]\nname = \"web\"\nsource = \"local\"\ninterval = \"1h\"\nnotify = [{}]\n",
        notify.join(", ")
    ));
    let moor = Controller::start(BIN, &config, &[], &[]).await?;

    let (head, body) = slack.next(60).await?;
    assert!(head.starts_with("POST /services/T000/B000/XXXX HTTP/1.1"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let blocks = body["blocks"].as_array().expect("Block Kit blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().contains("web: run-succeeded"), "{body}");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert!(blocks[2]["text"]["text"].as_str().unwrap().contains(&format!("ConfigMap/{}/cm-0", p.ns)), "{body}");
    assert!(body["text"].is_string(), "the fallback text Slack asks for");

    let (head, body) = teams.next(60).await?;
    assert!(head.starts_with("POST /workflows/abc/triggers/manual/paths/invoke?sig=S1G HTTP/1.1"), "{head}");
    assert_eq!(body["type"], "message");
    let card = &body["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(card["content"]["version"], "1.4");
    assert_eq!(card["content"]["body"][0]["text"], "web: run-succeeded");

    let (head, body) = hook.next(60).await?;
    assert!(head.to_ascii_lowercase().contains("authorization: bearer hook-t0ken"), "{head}");
    assert!(body["text"].as_str().unwrap().starts_with("web run-succeeded: applied "), "{body}");

    // One message per run, per notifier; the failures-only step got nothing.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        slack.requests.try_recv().is_err() && teams.requests.try_recv().is_err() && hook.requests.try_recv().is_err()
    );
    assert!(failing.requests.try_recv().is_err(), "`on = [\"run-failed\"]` keeps successes away");
    let status = moor.pipeline("web").await?;
    assert!(status["notify_error"].is_null(), "{status}");
    let (_, page) = moor.get_text("/").await?;
    assert!(!page.contains("hook-t0ken") && !page.contains("S1G") && !moor.log_text().contains("hook-t0ken"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_answering_500_or_a_denied_host_does_not_fail_the_delivery_and_is_shown() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "notify-fail").await?;
    let mut failing = Receiver::start().await?;
    failing.status.store(500, std::sync::atomic::Ordering::Relaxed);
    p.file("a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: {ns}}\n");
    p.file("b/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: {ns}}\n");
    let config = p.config(&format!(
        "[[pipeline]]\nname = \"five-hundred\"\nsource = \"local\"\npath = \"a\"\ninterval = \"1h\"\n\
         notify = [{{ use = \"slack\", with = {{ url = \"http://127.0.0.1:{port}/services/x\" }}, allow_hosts = [\"127.0.0.1:{port}\"] }}]\n\
         [[pipeline]]\nname = \"denied\"\nsource = \"local\"\npath = \"b\"\ninterval = \"1h\"\n\
         notify = [{{ use = \"msteams\", with = {{ url = \"http://127.0.0.1:{port}/teams\" }}, allow_hosts = [\"outlook.office.com\"] }}]\n",
        port = failing.port
    ));
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let (head, _) = failing.next(60).await?;
    assert!(head.starts_with("POST /services/x"), "{head}");
    for (name, why) in [("five-hundred", "answered 500"), ("denied", "denied by the host")] {
        let status = eventually(30, &format!("{name}'s notify error"), || async {
            let s = moor.pipeline(name).await?;
            Ok(s["notify_error"].is_string().then_some(s))
        })
        .await?;
        assert_eq!(status["last_run"]["ok"], true, "the delivery is not failed: {status}");
        assert!(status["notify_error"].as_str().unwrap().contains(why), "{status}");
    }
    let (_, page) = moor.get_text("/").await?;
    assert!(page.contains("answered 500"), "the status page shows the notifier's error");
    Ok(())
}

fn head_commit(repo: &std::path::Path) -> String {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// GitHub's and GitLab's commit statuses on the commit each run applies: pending when it
/// starts, then success; failure for a commit that does not render; nothing after a
/// restart that finds its revision applied. The tokens come from a Secret, as each API wants them.
#[tokio::test(flavor = "multi_thread")]
async fn commit_statuses_go_to_github_and_gitlab_on_the_revision_of_the_run() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "notify-status").await?;
    let (mut github, mut gitlab) = (Receiver::start().await?, Receiver::start().await?);
    let tokens = json!({"github": "ghp_t0ken", "gitlab": "glpat-t0ken"});
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "tokens"}, "stringData": tokens}))?;
    Api::<Secret>::namespaced(client.clone(), &p.ns).create(&PostParams::default(), &secret).await?;
    let repo = p.dir.path().join("repo");
    std::fs::create_dir_all(&repo)?;
    moor_e2e::git(&repo, &["init", "-q"]);
    let cm = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app, namespace: {}}}\n", p.ns);
    std::fs::write(repo.join("app.yaml"), &cm)?;
    moor_e2e::git(&repo, &["add", "-A"]);
    moor_e2e::git(&repo, &["commit", "-q", "-m", "v1"]);
    let config = p.config(&format!(
        "[[source]]\nname = \"repo\"\ngit = {{ url = \"file://{repo}\", ref = \"main\" }}\npoll_interval = \"1s\"\n\n\
         [[pipeline]]\nname = \"web\"\nsource = \"repo\"\ninterval = \"1h\"\nnotify = [\n\
         {{ use = \"github-status\", with = {{ repository = \"acme/deploy\", api_url = \"http://127.0.0.1:{gh}\" }}, \
            secrets = {{ token = {{ secret = \"{ns}/tokens\", key = \"github\" }} }}, allow_hosts = [\"127.0.0.1:{gh}\"] }},\n\
         {{ use = \"gitlab-status\", with = {{ project = \"acme/platform/deploy\", api_url = \"http://127.0.0.1:{gl}/api/v4\" }}, \
            secrets = {{ token = {{ secret = \"{ns}/tokens\", key = \"gitlab\" }} }}, allow_hosts = [\"127.0.0.1:{gl}\"] }},\n]\n",
        repo = repo.display(),
        gh = github.port,
        gl = gitlab.port,
        ns = p.ns
    ));
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let v1 = head_commit(&repo);
    // The run starts: pending on GitHub, running on GitLab; then its outcome.
    let (head, body) = github.next(60).await?;
    assert!(head.starts_with(&format!("POST /repos/acme/deploy/statuses/{v1} HTTP/1.1")), "{head}");
    assert_eq!((body["state"].as_str(), body["context"].as_str()), (Some("pending"), Some("moor/web")), "{body}");
    assert_eq!(body["description"], format!("applying {}", &v1[..7]));
    assert!(head.to_ascii_lowercase().contains("authorization: bearer ghp_t0ken"), "{head}");
    let (head, body) = gitlab.next(60).await?;
    assert!(head.contains(&format!("/statuses/{v1} ")), "{head}");
    assert_eq!((body["state"].as_str(), body["name"].as_str()), (Some("running"), Some("moor/web")), "{body}");
    let (head, body) = github.next(60).await?;
    assert!(head.starts_with(&format!("POST /repos/acme/deploy/statuses/{v1} HTTP/1.1")), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("authorization: bearer ghp_t0ken"), "{head}");
    assert!(
        lower.contains("accept: application/vnd.github+json") && lower.contains("x-github-api-version: 2022-11-28")
    );
    assert_eq!((body["state"].as_str(), body["context"].as_str()), (Some("success"), Some("moor/web")), "{body}");
    let (head, body) = gitlab.next(60).await?;
    assert!(
        head.starts_with(&format!("POST /api/v4/projects/acme%2Fplatform%2Fdeploy/statuses/{v1} HTTP/1.1")),
        "{head}"
    );
    assert!(head.to_ascii_lowercase().contains("private-token: glpat-t0ken"), "{head}");
    assert_eq!((body["state"].as_str(), body["name"].as_str()), (Some("success"), Some("moor/web")), "{body}");

    // A commit that does not render: a failure on that commit, and no start (nothing was
    // about to be applied).
    std::fs::write(repo.join("broken.yaml"), "apiVersion: v1\nkind: [unclosed\n")?;
    moor_e2e::git(&repo, &["add", "-A"]);
    moor_e2e::git(&repo, &["commit", "-q", "-m", "broken"]);
    let v2 = head_commit(&repo);
    let (head, body) = github.next(60).await?;
    assert!(head.contains(&format!("/statuses/{v2} ")), "{head}");
    assert_eq!(body["state"], "failure", "{body}");
    assert!(body["description"].as_str().unwrap().chars().count() <= 140);
    let (_, body) = gitlab.next(60).await?;
    assert_eq!(body["state"], "failed", "{body}");

    // The fix: pending, then success, on the new commit, though the ConfigMap is unchanged.
    std::fs::remove_file(repo.join("broken.yaml"))?;
    moor_e2e::git(&repo, &["add", "-A"]);
    moor_e2e::git(&repo, &["commit", "-q", "-m", "fixed"]);
    let v3 = head_commit(&repo);
    for state in ["pending", "success"] {
        let (head, body) = github.next(60).await?;
        assert!(head.contains(&format!("/statuses/{v3} ")), "{head}");
        assert_eq!(body["state"], state, "{body}");
    }
    for state in ["running", "success"] {
        assert_eq!(gitlab.next(60).await?.1["state"], state);
    }
    assert!(!moor.log_text().contains("t0ken"), "tokens are never logged");

    // A restart: the revision in the inventory is not new, so its first run, which
    // changes nothing, says nothing.
    drop(moor);
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    moor.runs("web", 1, 60).await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(github.requests.try_recv().is_err() && gitlab.requests.try_recv().is_err(), "{}", moor.log_text());
    Ok(())
}
