//! The real Helm as a sandboxed plugin (issue #11): podinfo's chart with `values-prod.yaml`,
//! the features chart and the example's chart render through Moor exactly as the native `helm template` (built
//! by tests/cluster/build) renders them with the same release, namespace, values and the
//! test cluster's version and API versions; a chart applies, becomes healthy and is
//! unchanged on a re-run.

use moor::apply::Action;
use std::path::PathBuf;

use moor::interrupt::Interrupt;
use moor::plugins::RenderContext;
use moor::reconcile::{Mode, RunContext};
use moor_e2e::{Project, ReportExt, cluster, plugin_cache, repo_root};

use super::renders::{canonical, copy, podinfo, yaml_stream};

/// One chart rendered both ways.
struct Case {
    /// The source root and the chart directory in it.
    root: PathBuf,
    chart: &'static str,
    release: &'static str,
    namespace: &'static str,
    /// Values files, relative to the source root.
    values: &'static [&'static str],
    /// Inline values (TOML inline table), also passed to native helm as a last values file.
    set: Option<(&'static str, serde_json::Value)>,
}

#[tokio::test]
async fn charts_render_through_moor_as_native_helm_template_does() -> anyhow::Result<()> {
    let target = cluster().target().await?;
    let served = target.cluster().await?;
    assert!(served.api_versions.iter().any(|v| v == "apps/v1/Deployment"), "{:?}", served.api_versions);
    let features = repo_root().join("tests/data/pipelines/helm-features/tree");
    let cases = [
        Case {
            root: podinfo().join("charts"),
            chart: "podinfo",
            release: "podinfo",
            namespace: "apps",
            values: &["podinfo/values-prod.yaml"],
            set: None,
        },
        Case {
            root: features.clone(),
            chart: "chart",
            release: "features",
            namespace: "team-a",
            values: &["chart/values-prod.yaml"],
            set: Some((
                r#"{ greeting = "inline", image = { tag = "9.9" } }"#,
                serde_json::json!({"greeting": "inline", "image": {"tag": "9.9"}}),
            )),
        },
        Case {
            root: repo_root().join("examples/helm/charts"),
            chart: "web",
            release: "web",
            namespace: "web-prod",
            values: &["web/values-prod.yaml"],
            set: Some((r#"{ image = { tag = "1.27.3" } }"#, serde_json::json!({"image": {"tag": "1.27.3"}}))),
        },
    ];
    let builtin: Vec<&str> = moor::plugins::builtin_names().collect();
    let moor = moor::reconcile::Moor::new(&plugin_cache())?;
    let scratch = tempfile::tempdir()?;
    for case in &cases {
        // Native: helm template RELEASE CHART, as the renderer documents it.
        let mut native = std::process::Command::new(cluster().bin.join("helm"));
        native
            .current_dir(&case.root)
            .args(["template", case.release, case.chart, "--namespace", case.namespace])
            .args(["--include-crds", "--skip-tests", "--kube-version", &served.version])
            .args(["--api-versions", &served.api_versions.join(",")])
            .env("HELM_CACHE_HOME", scratch.path().join("cache"))
            .env("HELM_CONFIG_HOME", scratch.path().join("config"))
            .env("HELM_DATA_HOME", scratch.path().join("data"));
        for file in case.values {
            native.args(["-f", file]);
        }
        if let Some((_, json)) = &case.set {
            let file = scratch.path().join("inline.yaml");
            std::fs::write(&file, json.to_string())?;
            native.arg("-f").arg(file);
        }
        let out = native.output()?;
        assert!(out.status.success(), "{}: {}", case.chart, String::from_utf8_lossy(&out.stderr));
        let expected = canonical(yaml_stream(&out.stdout));
        assert!(expected.len() >= 3, "{}: {expected:?}", case.chart);

        // Moor: the helm renderer, told the same release, namespace and cluster.
        let values: Vec<String> = case.values.iter().map(|v| format!("{v:?}")).collect();
        let set = case.set.as_ref().map(|(toml, _)| format!(", set = {toml}")).unwrap_or_default();
        let text = format!(
            "[[source]]\nname = \"charts\"\npath = \"{}\"\n[[pipeline]]\nname = \"{}\"\nsource = \"charts\"\n\
             target_namespace = \"{}\"\nrender = [{{ use = \"helm\", with = {{ chart = \"{}\", values = [{}]{set} }} }}]\n",
            case.root.display(),
            case.release,
            case.namespace,
            case.chart,
            values.join(", "),
        );
        let config = moor::config::Config::parse(&case.root.join("moor.toml"), text, &builtin)?;
        let prepared = moor.prepare(std::sync::Arc::new(config.clone()));
        let context = RenderContext {
            pipeline: case.release.into(),
            namespace: case.namespace.into(),
            cluster: Some(served.clone()),
        };
        let pipeline = config.pipeline(case.release).unwrap();
        let ctx = RunContext {
            prepared: &prepared,
            pipeline,
            secrets: Default::default(),
            place: None,
            render: context,
            interrupt: Interrupt::new(),
        };
        let rendered = moor.run(&ctx, Mode::Render, None, &|_| {}).await;
        if let Err(e) = &rendered.outcome {
            panic!("{}: {e}", case.chart);
        }
        let actual = canonical(rendered.objects.iter().map(|o| o.value.clone()));
        assert_eq!(actual, expected, "{}: Moor's render differs from `helm template`", case.chart);
        // The template each object came from, relative to the snapshot.
        assert!(rendered.objects.iter().all(|o| o.file.starts_with(case.chart)), "{:?}", rendered.objects);
    }
    Ok(())
}

#[tokio::test]
async fn a_chart_applies_healthy_and_is_unchanged_on_a_rerun() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "helm").await?;
    copy(&podinfo().join("charts/podinfo"), &p.dir.path().join("tree/podinfo"))?;
    p.config(
        "[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\ntarget_namespace = \"{ns}\"\n\
         render = [{ use = \"helm\", with = { chart = \"podinfo\", set = { replicaCount = 2 } } }]\nhealth_timeout = \"120s\"\n",
    );
    let first = p.apply_ok(&p.ns).await;
    assert!(first.count(Action::Created) >= 2 && first.is_healthy(), "{first:?}");
    // The release is named after the pipeline, in its target namespace; the inline value took.
    let name = format!("{}-podinfo", p.ns);
    assert!(
        first.names(Action::Created).contains(&format!("Deployment/{}/{name}", p.ns)),
        "{:?}",
        first.names(Action::Created)
    );
    let live =
        kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &p.ns).get(&name).await?;
    assert_eq!(live.spec.and_then(|s| s.replicas), Some(2));
    let again = p.apply_ok(&p.ns).await;
    assert_eq!(
        (again.count(Action::Created), again.count(Action::Configured), again.count(Action::Pruned)),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!(again.count(Action::Unchanged), first.count(Action::Created));
    Ok(())
}
