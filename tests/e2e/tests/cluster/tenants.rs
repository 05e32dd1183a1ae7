//! Tenants (issue #32): `examples/tenants` as three git repositories (the platform's and
//! two teams'), run by `moor run` on its bootstrap config. Each team's pipelines come from
//! its own repository, confined: an object outside its namespaces and a cluster-scoped one
//! are refused at plan, before anything is written; what the platform grants but RBAC
//! denies fails with the apiserver's 403 for the tenant's service account; a broken config
//! of one team leaves the other team and the platform running.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::Api;
use moor_e2e::{Controller, Project, cluster, eventually, git, repo_root};

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

/// Copies `examples/tenants/<name>` to `<dir>/<name>`, with the example's git host and
/// instance replaced, and commits it as the repository's first revision.
fn repository(dir: &Path, name: &str, host: &str, instance: &str) -> std::path::PathBuf {
    let from = repo_root().join("examples/tenants").join(name);
    let to = dir.join(name);
    copy_tree(&from, &to, &|text| text.replace("https://git.example.com/", host).replace("\"prod\"", instance));
    git(&to, &["init", "-q", "-b", "main"]);
    commit(&to, "first");
    to
}

fn copy_tree(from: &Path, to: &Path, edit: &dyn Fn(&str) -> String) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, edit);
        } else {
            std::fs::write(&target, edit(&std::fs::read_to_string(entry.path()).unwrap())).unwrap();
        }
    }
}

fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write(repo: &Path, path: &str, contents: &str) {
    let at = repo.join(path);
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::write(at, contents).unwrap();
}

/// The status of tenant `name` once `done` holds for it.
async fn tenant(
    moor: &Controller,
    name: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    eventually(60, what, || async {
        let status = moor.status().await?;
        let found = status["tenants"].as_array().and_then(|ts| ts.iter().find(|t| t["name"] == name)).cloned();
        Ok(found.filter(|t| done(t)))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", moor.log_text()))
}

/// The last run of `pipeline` once it failed saying `what`.
async fn failed(moor: &Controller, pipeline: &str, what: &str) -> anyhow::Result<serde_json::Value> {
    eventually(60, &format!("{pipeline} to fail with {what}"), || async {
        let Ok(p) = moor.pipeline(pipeline).await else { return Ok(None) };
        let run = &p["last_run"];
        Ok((run["ok"] == false && run["error"].as_str().is_some_and(|e| e.contains(what))).then(|| run.clone()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", moor.log_text()))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_teams_deploy_from_their_own_repositories_confined_and_one_broken_team_stops_no_other() -> anyhow::Result<()>
{
    let client = cluster().client().await?;
    // The example's namespaces, as a run before this one may have left them.
    let out = cluster()
        .kubectl()
        .args(["delete", "namespace", "team-a", "team-b", "--ignore-not-found", "--wait"])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = Project::new(&client, "tenants").await?;
    let host = format!("file://{}/", p.dir.path().display());
    let instance = format!("\"{}\"", p.instance);
    let platform = repository(p.dir.path(), "platform", &host, &instance);
    let team_a = repository(p.dir.path(), "team-a", &host, &instance);
    let team_b = repository(p.dir.path(), "team-b", &host, &instance);
    // The repositories are `<dir>/platform`, not `<dir>/platform.git`, here.
    for repo in [&platform, &team_a, &team_b] {
        let name = repo.file_name().unwrap().to_string_lossy().into_owned();
        std::os::unix::fs::symlink(repo, p.dir.path().join(format!("{name}.git")))?;
    }
    let bootstrap = p.dir.path().join("bootstrap.toml");
    let text = std::fs::read_to_string(repo_root().join("examples/tenants/bootstrap.toml"))?;
    std::fs::write(
        &bootstrap,
        text.replace("https://git.example.com/", &host)
            .replace("\"prod\"", &instance)
            .replace("poll_interval = \"1m\"", "poll_interval = \"1s\""),
    )?;
    for repo in [&platform, &team_a, &team_b] {
        // Polled every second, so that the test sees each commit soon.
        for file in ["clusters/prod/moor.toml", "moor.toml"] {
            let path = repo.join(file);
            if path.exists() {
                let text = std::fs::read_to_string(&path)?.replace("poll_interval = \"1m\"", "poll_interval = \"1s\"");
                std::fs::write(&path, text)?;
            }
        }
        commit(repo, "poll every second");
    }

    let moor = Controller::start(BIN, &bootstrap, &[], &[]).await?;
    // The platform makes the teams' namespaces and accounts; each team's pipeline applies
    // into its own namespace, as its own service account.
    moor.runs("tenants-rbac", 1, 60).await?;
    let web = eventually(90, "team-a/web to apply", || async {
        let Ok(p) = moor.pipeline("team-a/web").await else { return Ok(None) };
        Ok((p["last_run"]["ok"] == true).then_some(p))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", moor.log_text()))?;
    assert_eq!(web["tenant"], "team-a", "{web}");
    eventually(90, "team-b/api to apply", || async {
        let Ok(p) = moor.pipeline("team-b/api").await else { return Ok(None) };
        Ok((p["last_run"]["ok"] == true).then_some(()))
    })
    .await?;
    let a_cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    let cm = a_cms.get("web").await?;
    let labels = cm.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("moor.dev/pipeline").map(String::as_str), Some("team-a.web"), "{labels:?}");
    assert!(Api::<ConfigMap>::namespaced(client.clone(), "team-b").get_opt("api").await?.is_some());
    // The API takes a tenant's pipeline as `{tenant}/{name}`.
    let (code, body) = moor.get_text("/api/v1/pipelines/team-a/web").await?;
    assert_eq!(code, 200, "{body}");
    // The status filters on a tenant (`tenant=`: the platform's own), the page groups
    // pipelines by tenant, and the metrics carry a `tenant` label.
    let names = |status: &serde_json::Value, list: &str, key: &str| -> Vec<String> {
        status[list].as_array().unwrap().iter().map(|p| p[key].as_str().unwrap().to_owned()).collect()
    };
    let (_, body) = moor.get_text("/api/v1/status?tenant=team-b").await?;
    let only_b: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(
        (names(&only_b, "pipelines", "name"), names(&only_b, "tenants", "name")),
        (vec!["team-b/api".to_owned()], vec!["team-b".to_owned()])
    );
    let (_, body) = moor.get_text("/api/v1/status?tenant=").await?;
    assert_eq!(names(&serde_json::from_str(&body)?, "pipelines", "name"), ["tenants-rbac"]);
    let (_, page) = moor.get_text("/").await?;
    assert!(page.contains("id='tenant-group-team-a'") && page.contains("id='pipeline-team-a/web'"), "{page}");
    let (_, metrics) = moor.get_text("/metrics").await?;
    assert!(
        metrics
            .contains("moor_run_duration_seconds_count{pipeline=\"team-a/web\",tenant=\"team-a\",result=\"success\"}"),
        "{metrics}"
    );

    // team-a renders into team-b's namespace: refused at plan, naming the object, its file
    // and the rule; nothing of that run is applied.
    write(
        &team_a,
        "web/stray.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stray\n  namespace: team-b\n  labels: {team: a}\n",
    );
    write(&team_a, "web/more.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: more\n  labels: {team: a}\n");
    let sneaky = commit(&team_a, "into team-b");
    let run = failed(&moor, "team-a/web", "not one of tenant `team-a`'s").await?;
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("ConfigMap/team-b/stray") && error.contains("stray.yaml"), "{error}");
    assert_eq!(run["revision"], sneaky.as_str(), "{run}");
    assert!(Api::<ConfigMap>::namespaced(client.clone(), "team-b").get_opt("stray").await?.is_none());
    assert!(a_cms.get_opt("more").await?.is_none(), "a refused run applied something");

    // A cluster-scoped object: refused at plan too.
    std::fs::remove_file(team_a.join("web/stray.yaml"))?;
    write(
        &team_a,
        "web/role.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: team-a-admin\n  labels: {team: a}\nrules: []\n",
    );
    commit(&team_a, "a cluster role");
    let run = failed(&moor, "team-a/web", "not granted the cluster-scoped kind").await?;
    assert!(run["error"].as_str().unwrap().contains("ClusterRole"), "{run}");

    // A plugin the tenant was not granted: its config is refused at load, naming the file,
    // the line and the revision; its last good config keeps running.
    std::fs::remove_file(team_a.join("web/role.yaml"))?;
    let config = std::fs::read_to_string(team_a.join("moor.toml"))?;
    std::fs::write(team_a.join("moor.toml"), config.replace("use = \"yaml\"", "use = \"helm\""))?;
    let refused = commit(&team_a, "helm, which team-a may not use");
    let line = std::fs::read_to_string(team_a.join("moor.toml"))?.lines().position(|l| l.contains("helm")).unwrap() + 1;
    let a = tenant(&moor, "team-a", "team-a's config to be refused", |t| {
        t["error"].as_str().is_some_and(|e| e.contains(&refused[..12]))
    })
    .await?;
    let error = a["error"].as_str().unwrap();
    assert!(error.contains(&format!("moor.toml:{line}:")) && error.contains("may not use plugin `helm`"), "{error}");
    assert_eq!(a["held"], false, "{a}");
    let (_, page) = moor.get_text("/").await?;
    assert!(page.contains("id='tenant-team-a'") && page.contains(&refused[..12]), "{page}");

    // A broken config of team-a: team-b and the platform run on.
    std::fs::write(team_a.join("moor.toml"), "[[pipeline]\nname = \"web\"\n")?;
    let broken = commit(&team_a, "broken");
    tenant(&moor, "team-a", "team-a's broken config to be shown", |t| {
        t["error"].as_str().is_some_and(|e| e.contains(&broken[..12]))
    })
    .await?;
    write(
        &team_b,
        "api/second.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\n  labels: {team: b}\n",
    );
    commit(&team_b, "a second object");
    let b_cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team-b");
    eventually(60, "team-b's new object", || async { Ok(b_cms.get_opt("second").await?.map(drop)) })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", moor.log_text()))?;
    assert!(moor.pipeline("team-a/web").await.is_ok(), "team-a's last good config still runs");
    assert!(a_cms.get_opt("web").await?.is_some());

    // RBAC is the second wall: the platform grants team-a Namespaces, its account may not
    // create them, and the apiserver's 403 for that account is the error.
    let config = std::fs::read_to_string(platform.join("clusters/prod/moor.toml"))?;
    std::fs::write(
        platform.join("clusters/prod/moor.toml"),
        config.replacen(
            "namespaces = [\"team-a\", \"team-a-*\"]",
            "namespaces = [\"team-a\", \"team-a-*\"]\ncluster_kinds = [\"Namespace\"]",
            1,
        ),
    )?;
    commit(&platform, "team-a may have namespaces");
    write(&team_a, "moor.toml", &config_of_team_a(&host));
    write(
        &team_a,
        "web/ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a-extra\n  labels: {team: a}\n",
    );
    commit(&team_a, "a namespace of its own");
    let run = failed(&moor, "team-a/web", "forbidden").await?;
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("system:serviceaccount:team-a:deployer"), "{error}");
    assert!(Api::<Namespace>::all(client.clone()).get_opt("team-a-extra").await?.is_none());
    Ok(())
}

/// team-a's config as the example has it, on `host`, polled every second.
fn config_of_team_a(host: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples/tenants/team-a/moor.toml"))
        .unwrap()
        .replace("https://git.example.com/", host)
        .replace("poll_interval = \"1m\"", "poll_interval = \"1s\"")
}
