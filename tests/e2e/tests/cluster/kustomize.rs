//! The real kustomize as a sandboxed plugin (issue #11): every podinfo kustomization renders
//! through Moor exactly as the native `kustomize build` (built by tests/cluster/build)
//! renders it, and an overlay applies, becomes healthy and is unchanged on a re-run.

use moor::apply::Action;
use std::path::{Path, PathBuf};

use moor_e2e::{Project, ReportExt, cluster, plugin_cache, render_offline};

use super::renders::{canonical, copy, podinfo, yaml_stream};

/// Every directory under `root` holding a kustomization, relative to `root`.
fn kustomizations(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
                found.push(dir.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_podinfo_kustomization_renders_through_moor_as_native_kustomize_build_does() {
    // podinfo's kustomizations, the features fixture and the example: (source root, path).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cases: Vec<(PathBuf, String)> = kustomizations(&podinfo()).into_iter().map(|d| (podinfo(), d)).collect();
    assert!(cases.len() >= 8, "{cases:?}");
    cases.push((repo.join("tests/data/pipelines/kustomize-features/tree"), "overlay".into()));
    cases.push((repo.join("examples/kustomize/manifests"), "prod".into()));
    let builtin: Vec<&str> = moor::plugins::builtin_names().collect();
    let moor = moor::reconcile::Moor::new(&plugin_cache()).unwrap();
    for (root, dir) in &cases {
        let native = cluster().bin.join("kustomize");
        let out = std::process::Command::new(native).arg("build").arg(root.join(dir)).output().unwrap();
        assert!(out.status.success(), "{dir}: {}", String::from_utf8_lossy(&out.stderr));
        let expected = canonical(yaml_stream(&out.stdout));

        let text = format!(
            "[[source]]\nname = \"podinfo\"\npath = \"{}\"\n[[pipeline]]\nname = \"p\"\nsource = \"podinfo\"\npath = \"{dir}\"\nrender = [{{ use = \"kustomize\" }}]\n",
            root.display()
        );
        let config = moor::config::Config::parse(&root.join("moor.toml"), text, &builtin).unwrap();
        let prepared = moor.prepare(std::sync::Arc::new(config.clone()));
        let rendered =
            render_offline(&moor, &prepared, config.pipeline("p").unwrap(), Default::default(), Default::default())
                .unwrap_or_else(|e| panic!("{dir}: {e}"));
        let actual = canonical(rendered.objects.into_iter().map(|o| o.value));
        assert_eq!(actual, expected, "{dir}: Moor's render differs from `kustomize build`");
    }
}

#[tokio::test]
async fn a_kustomize_overlay_applies_healthy_and_is_unchanged_on_a_rerun() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "kustomize").await?;
    // podinfo's dev overlay, into this test's namespace, without the database (its volume
    // claim never binds here: the test cluster has no storage provisioner).
    let tree = p.dir.path().join("tree");
    copy(&podinfo().join("deploy"), &tree)?;
    std::fs::write(
        tree.join("overlays/dev/kustomization.yaml"),
        std::fs::read_to_string(tree.join("overlays/dev/kustomization.yaml"))?
            .replace("namespace: dev", &format!("namespace: {}", p.ns))
            .replace("  - namespace.yaml\n", "")
            .replace("  - ../../bases/database\n", ""),
    )?;
    p.config("[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\npath = \"overlays/dev\"\nrender = [{ use = \"kustomize\" }]\nhealth_timeout = \"120s\"\n");
    let first = p.apply_ok(&p.ns).await;
    assert!(first.count(Action::Created) >= 8 && first.is_healthy(), "{first:?}");
    let again = p.apply_ok(&p.ns).await;
    assert_eq!(
        (again.count(Action::Created), again.count(Action::Configured), again.count(Action::Pruned)),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!(again.count(Action::Unchanged), first.count(Action::Created));
    Ok(())
}
