//! Instances against the real control plane (issue #10, part 1): unrelated configs never
//! delete each other's objects, removing pipelines is guarded, and `moor delete`.

use moor::apply::Action;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use moor::apply::RunOptions;
use moor_e2e::{Project, ReportExt, apply_file, cluster, plugin_cache};

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

/// A config at `dir/moor.toml` that names no instance, with a `local` source on `dir/tree`
/// and one pipeline per `(name, path)`.
fn unnamed_config(dir: &Path, pipelines: &[(&str, &str)]) -> PathBuf {
    let mut text = "[[source]]\nname = \"local\"\npath = \"tree\"\n".to_owned();
    for (name, path) in pipelines {
        text.push_str(&format!("\n[[pipeline]]\nname = \"{name}\"\nsource = \"local\"\npath = \"{path}\"\n"));
    }
    let file = dir.join("moor.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn cm_file(dir: &Path, path: &str, ns: &str, name: &str) {
    let at = dir.join("tree").join(path);
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::write(at, format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\n"))
        .unwrap();
}

async fn names(cms: &Api<ConfigMap>) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = cms
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort();
    Ok(names)
}

/// The data loss of issue #10: `moor apply b/moor.toml` removed a/moor.toml's pipelines as
/// "removed from the config", because both fell back to one default instance.
#[tokio::test]
async fn two_unrelated_configs_applied_in_turn_each_keep_their_objects() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = cluster().namespace(&client, "instances").await?;
    let root = tempfile::tempdir()?;
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&a)?;
    std::fs::create_dir_all(&b)?;
    for i in 0..3 {
        cm_file(&a, &format!("one/cm{i}.yaml"), &ns, &format!("a-one-{i}"));
    }
    cm_file(&a, "two/cm.yaml", &ns, "a-two");
    cm_file(&b, "cm.yaml", &ns, "b-only");
    let a_file = unnamed_config(&a, &[(&format!("{ns}-one"), "one"), (&format!("{ns}-two"), "two")]);
    let b_file = unnamed_config(&b, &[(&format!("{ns}-b"), "")]);

    let first = apply_file(&a_file, RunOptions::default()).await?;
    assert!(first.results.iter().all(|r| r.ok) && first.results.len() == 2, "{:?}", first.results);
    let second = apply_file(&b_file, RunOptions::default()).await?;
    assert_eq!(second.results.len(), 1, "b's apply did more than apply b: {:?}", second.results);
    assert!(second.results[0].ok, "{:?}", second.results);
    // b saw a's inventories and said it left them alone.
    let a_instance = moor::config::derive_instance(&a_file);
    assert!(second.notes.iter().any(|n| n.contains("left alone") && n.contains(&a_instance)), "{:?}", second.notes);
    let third = apply_file(&a_file, RunOptions::default()).await?;
    assert_eq!(third.results.len(), 2, "{:?}", third.results);

    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    assert_eq!(names(&cms).await?, ["a-one-0", "a-one-1", "a-one-2", "a-two", "b-only"]);

    // Each object says whose it is.
    let labels = cms.get("b-only").await?.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("moor.dev/instance"), Some(&moor::config::derive_instance(&b_file)));

    // A pipeline dropped from its own config is removed (1 of a's 4 objects: under the guard);
    // the other config's object stays.
    unnamed_config(&a, &[(&format!("{ns}-one"), "one")]);
    let dropped = apply_file(&a_file, RunOptions::default()).await?;
    let removed = dropped.results.iter().find(|r| r.pipeline.ends_with("(removed from the config)")).expect("removal");
    assert!(removed.ok, "{removed:?}");
    assert_eq!(removed.report.as_ref().unwrap().names(Action::Pruned), [format!("ConfigMap/{ns}/a-two")]);
    assert_eq!(names(&cms).await?, ["a-one-0", "a-one-1", "a-one-2", "b-only"]);
    Ok(())
}

#[tokio::test]
async fn removing_pipelines_over_the_guard_is_refused_then_allowed_with_the_override() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "removal-guard").await?;
    for i in 0..3 {
        p.file(
            &format!("big/cm{i}.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big-{i}, namespace: '{{ns}}'}}\n"),
        );
    }
    p.file("small/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: small, namespace: '{ns}'}\n");
    let both = "[[pipeline]]\nname = \"{ns}-big\"\nsource = \"local\"\npath = \"big\"\n\n\
                [[pipeline]]\nname = \"{ns}-small\"\nsource = \"local\"\npath = \"small\"\n";
    p.config(both);
    assert!(p.apply().await?.iter().all(|r| r.ok));

    // Dropping `big` would delete 3 of the instance's 4 objects.
    p.config("[[pipeline]]\nname = \"{ns}-small\"\nsource = \"local\"\npath = \"small\"\n");
    let refused = p.apply().await?;
    let big = refused.iter().find(|r| r.pipeline.starts_with(&format!("{}-big", p.ns))).expect("a result for big");
    let error = big.error.as_deref().unwrap_or_default();
    assert!(!big.ok, "{big:?}");
    assert!(
        error.contains("would delete 3 of 4 object(s) (75%), over [moor] prune_guard.max_fraction (50%)")
            && error.contains("--allow-mass-prune"),
        "{error}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client, &p.ns);
    assert_eq!(names(&cms).await?, ["big-0", "big-1", "big-2", "small"], "a refused removal deleted something");

    // Refused again on the next run: the inventory is still there.
    assert!(p.apply().await?.iter().any(|r| !r.ok));

    let allowed = p.apply_with(RunOptions { allow_mass_prune: true, ..RunOptions::default() }).await?;
    assert!(allowed.results.iter().all(|r| r.ok), "{:?}", allowed.results);
    assert_eq!(names(&cms).await?, ["small"]);
    Ok(())
}

fn moor(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("MOOR_CACHE", plugin_cache())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("moor runs")
}

#[tokio::test]
async fn moor_delete_lists_with_dry_run_then_deletes_and_asks_for_yes_without_a_terminal() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "delete").await?;
    p.file("web/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: '{ns}'}\n");
    p.file("api/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: api, namespace: '{ns}'}\n");
    let config = p.config(
        "[[pipeline]]\nname = \"{ns}-web\"\nsource = \"local\"\npath = \"web\"\n\n\
         [[pipeline]]\nname = \"{ns}-api\"\nsource = \"local\"\npath = \"api\"\n",
    );
    assert!(p.apply().await?.iter().all(|r| r.ok));
    let config = config.to_str().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, &p.ns);
    let web = format!("{}-web", p.ns);

    let dry = moor(&["delete", config, "--pipeline", &web, "--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{out}{}", String::from_utf8_lossy(&dry.stderr));
    assert!(out.contains(&format!("pipeline {web}: would delete 1 object(s)")) && out.contains("ConfigMap/"), "{out}");
    assert_eq!(names(&cms).await?, ["api", "web"]);

    // Nobody to ask: refused without --yes.
    let unasked = moor(&["delete", config, "--pipeline", &web]);
    assert!(!unasked.status.success());
    assert!(String::from_utf8_lossy(&unasked.stderr).contains("pass --yes"));
    assert_eq!(names(&cms).await?, ["api", "web"]);

    let deleted = moor(&["delete", config, "--pipeline", &web, "--yes"]);
    let out = String::from_utf8_lossy(&deleted.stdout);
    assert!(deleted.status.success(), "{out}{}", String::from_utf8_lossy(&deleted.stderr));
    assert!(out.contains(&format!("pipeline {web}: deleted 1 object(s)")), "{out}");
    moor_e2e::eventually(20, "web to be deleted", || async { Ok((names(&cms).await? == ["api"]).then_some(())) })
        .await?;

    // Its inventory went with it: nothing of `web` is left to delete, and `api` still applies.
    let again = moor(&["delete", config, "--pipeline", &web, "--yes"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("has an inventory"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let all = moor(&["delete", config, "--yes"]);
    assert!(all.status.success(), "{}", String::from_utf8_lossy(&all.stderr));
    moor_e2e::eventually(20, "api to be deleted", || async { Ok(names(&cms).await?.is_empty().then_some(())) }).await?;
    Ok(())
}

/// kubectl's `--kubeconfig` and `--context`: they win over `KUBECONFIG` and the current
/// context, and the context's namespace is where objects that name none go.
#[tokio::test]
async fn kubeconfig_and_context_flags_choose_the_cluster_and_the_default_namespace() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "context").await?;
    p.file("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: placed}\n");
    let config = p.config("[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\n");
    // Two contexts: the current one points at nothing; `test` is the cluster, in the
    // test's namespace.
    let admin: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&cluster().kubeconfig)?)?;
    let mut kubeconfig = admin.clone();
    kubeconfig["clusters"].as_sequence_mut().unwrap().push(serde_yaml_ng::from_str(
        "{name: nowhere, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}",
    )?);
    let (cluster_name, user) =
        (admin["contexts"][0]["context"]["cluster"].clone(), admin["contexts"][0]["context"]["user"].clone());
    let contexts = kubeconfig["contexts"].as_sequence_mut().unwrap();
    contexts.push(serde_yaml_ng::from_str(&format!(
        "{{name: test, context: {{cluster: {}, user: {}, namespace: {}}}}}",
        cluster_name.as_str().unwrap(),
        user.as_str().unwrap(),
        p.ns
    ))?);
    contexts.push(serde_yaml_ng::from_str(&format!(
        "{{name: broken, context: {{cluster: nowhere, user: {}}}}}",
        user.as_str().unwrap()
    ))?);
    kubeconfig["current-context"] = "broken".into();
    let file = p.dir.path().join("kubeconfig");
    std::fs::write(&file, serde_yaml_ng::to_string(&kubeconfig)?)?;

    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["apply", config.to_str().unwrap(), "--kubeconfig", file.to_str().unwrap()])
            .args(extra)
            .env("KUBECONFIG", "/nonexistent")
            .env("MOOR_CACHE", plugin_cache())
            .output()
            .expect("moor runs")
    };
    let current = run(&[]);
    assert!(!current.status.success(), "the current context points at nothing, yet the apply succeeded");
    let chosen = run(&["--context", "test"]);
    assert!(chosen.status.success(), "{}", String::from_utf8_lossy(&chosen.stderr));
    let placed = Api::<ConfigMap>::namespaced(client, &p.ns).get_opt("placed").await?;
    assert!(placed.is_some(), "the object did not land in the context's namespace");
    let unknown = run(&["--context", "nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nope"), "{}", String::from_utf8_lossy(&unknown.stderr));
    Ok(())
}
