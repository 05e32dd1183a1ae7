//! The platform config in git (issue #32): `moor run` on a bootstrap config (`[config]`)
//! loads the config that the newest revision of a git source holds, installs each new
//! revision that loads, and keeps the last good one running when a revision does not, with
//! the error naming the revision, the file and the line. `moor plan` and `moor apply` take
//! the same bootstrap file.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use moor_e2e::{Controller, Project, cluster, eventually, git};

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

/// The platform repository's config: a source on the repository itself, and `pipelines`.
fn platform_config(url: &str, pipelines: &str) -> String {
    format!("[[source]]\nname = \"platform\"\ngit = {{ url = \"{url}\", ref = \"main\" }}\n\n{pipelines}")
}

fn pipeline(name: &str) -> String {
    format!("[[pipeline]]\nname = \"{name}\"\nsource = \"platform\"\npath = \"apps/{name}\"\ninterval = \"1h\"\n\n")
}

fn commit(repo: &Path, config: &str, message: &str) -> String {
    std::fs::write(repo.join("clusters/prod/moor.toml"), config).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    head(repo)
}

fn head(repo: &Path) -> String {
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn exists(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<bool> {
    Ok(Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(name).await?.is_some())
}

/// The status's `config_error` once it says `what`.
async fn rejected(moor: &Controller, what: &str) -> anyhow::Result<serde_json::Value> {
    eventually(30, &format!("the config to be rejected with {what}"), || async {
        let status = moor.status().await?;
        Ok(status["config_error"].as_str().is_some_and(|e| e.contains(what)).then_some(status))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- log ---\n{}", moor.log_text()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_config_comes_from_git_and_a_revision_that_does_not_load_keeps_the_last_good_one()
-> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "platform").await?;
    let repo = p.dir.path().join("platform");
    for name in ["one", "two"] {
        std::fs::create_dir_all(repo.join("apps").join(name))?;
        std::fs::write(
            repo.join("apps").join(name).join("cm.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {}\n", p.ns),
        )?;
    }
    std::fs::create_dir_all(repo.join("clusters/prod"))?;
    git(&repo, &["init", "-q"]);
    let url = format!("file://{}", repo.display());
    let first = commit(&repo, &platform_config(&url, &pipeline("one")), "one");
    // The bootstrap config names the instance; the platform config does not, and keeps it.
    let bootstrap = p.dir.path().join("bootstrap.toml");
    std::fs::write(
        &bootstrap,
        format!(
            "[moor]\ninstance = \"{}\"\n\n[config]\nsource = \"platform\"\npath = \"clusters/prod/moor.toml\"\n\n\
             [[source]]\nname = \"platform\"\ngit = {{ url = \"{url}\", ref = \"main\" }}\npoll_interval = \"1s\"\n",
            p.instance
        ),
    )?;

    // `moor plan` of the bootstrap file plans the platform config's pipelines.
    let out = Command::new(BIN)
        .args(["plan", bootstrap.to_str().unwrap(), "--output", "json"])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("MOOR_CACHE", moor_e2e::plugin_cache())
        .output()?;
    let (text, errors) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}\n{errors}");
    let plan: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(plan["pipelines"][0]["pipeline"], "one", "{text}");
    assert!(errors.contains(&format!("clusters/prod/moor.toml of source `platform` at {}", &first[..12])), "{errors}");

    let moor = Controller::start(BIN, &bootstrap, &[], &[]).await?;
    moor.runs("one", 1, 60).await?;
    assert!(exists(&client, &p.ns, "one").await?);
    let status = moor.status().await?;
    assert_eq!(status["config_revision"], first.as_str(), "{status}");
    assert_eq!(status["instance"], p.instance.as_str(), "the bootstrap's instance");
    let (_, page) = moor.get_text("/").await?;
    assert!(page.contains("id=config-source") && page.contains(&first[..12]), "{page}");

    // A commit that adds a pipeline is applied within one poll (1 s, looked at every 2 s).
    let second = commit(&repo, &platform_config(&url, &(pipeline("one") + &pipeline("two"))), "two");
    let t0 = Instant::now();
    moor.runs("two", 1, 30).await?;
    let took = t0.elapsed();
    assert!(exists(&client, &p.ns, "two").await?);
    assert!(took < Duration::from_secs(10), "the new pipeline ran {took:?} after its commit");
    assert_eq!(moor.status().await?["config_revision"], second.as_str());

    // A revision whose config does not load is not installed: the error names the revision,
    // the file and the line, on the API, the page and as a Warning Event; the last good
    // config keeps running.
    let broken_config = platform_config(
        &url,
        &(pipeline("one") + &pipeline("two") + "[[pipeline]]\nname = \"three\"\nsource = \"nowhere\"\n"),
    );
    let line = broken_config.lines().position(|l| l == "source = \"nowhere\"").unwrap() + 1;
    let broken = commit(&repo, &broken_config, "broken");
    let status = rejected(&moor, "no source is named `nowhere`").await?;
    let error = status["config_error"].as_str().unwrap();
    let at = format!("source `platform` at {}: clusters/prod/moor.toml:{line}:", &broken[..12]);
    assert!(error.contains(&at), "{error}");
    assert_eq!(status["config_revision"], second.as_str(), "the last good config runs");
    let names: Vec<&str> =
        status["pipelines"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["one", "two"]);
    let (_, page) = moor.get_text("/").await?;
    assert!(page.contains("id=config-error") && page.contains(&broken[..12]), "{page}");
    let events: Api<Event> = Api::namespaced(client.clone(), "moor-system");
    eventually(20, "a ConfigRejected Event", || async {
        let found = events.list(&ListParams::default()).await?.items.into_iter().any(|e| {
            e.reason.as_deref() == Some("ConfigRejected")
                && e.type_.as_deref() == Some("Warning")
                && e.note.as_deref().is_some_and(|n| n.contains(&at))
        });
        Ok(found.then_some(()))
    })
    .await?;

    // A revision without the file: rejected too, naming the path and the revision.
    std::fs::remove_file(repo.join("clusters/prod/moor.toml"))?;
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "gone"]);
    let gone = head(&repo);
    let status =
        rejected(&moor, &format!("source `platform` at {}: clusters/prod/moor.toml: no such file", &gone[..12]))
            .await?;
    assert_eq!(status["config_revision"], second.as_str());
    assert!(exists(&client, &p.ns, "two").await?, "nothing was removed");

    // A revision that loads again is installed: the pipeline it dropped is removed.
    let fixed = commit(&repo, &platform_config(&url, &pipeline("one")), "fixed");
    eventually(30, "pipeline two's objects to be pruned", || async {
        Ok((!exists(&client, &p.ns, "two").await?).then_some(()))
    })
    .await?;
    let status = moor.status().await?;
    assert!(status["config_error"].is_null(), "{status}");
    assert_eq!(status["config_revision"], fixed.as_str());
    assert!(exists(&client, &p.ns, "one").await?);
    Ok(())
}
