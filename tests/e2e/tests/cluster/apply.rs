//! The apply engine against the real control plane (issue #4).

use moor::apply::Action;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams};
use moor_e2e::{Project, ReportExt, cluster, eventually};
use serde_json::json;

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {{ns}}\ndata:\n  key: value\n")
}

fn deployment(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {{ns}}\nspec:\n{extra_spec}  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: app\n          image: registry.k8s.io/pause:3.10\n"
    )
}

const ONE_PIPELINE: &str = "[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\nhealth_timeout = \"60s\"\n";

#[tokio::test]
async fn apply_creates_then_reports_unchanged_then_prunes() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let p = Project::new(&client, "apply").await?;
    p.config(ONE_PIPELINE);
    p.file("app.yaml", &deployment("web", "  replicas: 2\n"));
    p.file("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: '{ns}'}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n");
    for i in 0..3 {
        p.file(&format!("cm{i}.yaml"), &cm(&format!("cm{i}")));
    }
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(
        (report.count(Action::Created), report.count(Action::Configured), report.count(Action::Unchanged)),
        (5, 0, 0),
        "{report:?}"
    );
    assert!(report.is_healthy(), "{report:?}");
    assert!(report.object_health().iter().all(|(_, h)| h == "ready"), "{:?}", report.object_health());

    let again = p.apply_ok(&p.ns).await;
    assert_eq!(
        (again.count(Action::Created), again.count(Action::Configured), again.count(Action::Unchanged)),
        (0, 0, 5),
        "{again:?}"
    );

    p.remove("cm2.yaml");
    let pruned = p.apply_ok(&p.ns).await;
    assert_eq!(pruned.names(Action::Pruned), vec![format!("ConfigMap/{}/cm2", p.ns)]);
    let cms: Api<ConfigMap> = Api::namespaced(client, &p.ns);
    assert!(cms.get_opt("cm2").await?.is_none());
    assert!(cms.get_opt("cm1").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn an_empty_render_never_prunes() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "empty").await?;
    p.config(ONE_PIPELINE);
    p.file("a.yaml", &cm("a"));
    p.apply_ok(&p.ns).await;
    p.remove("a.yaml");
    let err = p.apply_err(&p.ns).await;
    assert!(err.contains("prune refused: the render is empty"), "{err}");
    assert!(Api::<ConfigMap>::namespaced(client.clone(), &p.ns).get_opt("a").await?.is_some());
    // Still refused the next time: the object stays in the inventory.
    assert!(p.apply_err(&p.ns).await.contains("prune refused"));
    Ok(())
}

#[tokio::test]
async fn a_mass_prune_over_the_threshold_is_refused_unless_allowed() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "mass").await?;
    p.config(ONE_PIPELINE);
    for i in 0..4 {
        p.file(&format!("c{i}.yaml"), &cm(&format!("c{i}")));
    }
    p.apply_ok(&p.ns).await;
    for i in 0..3 {
        p.remove(&format!("c{i}.yaml"));
    }
    let err = p.apply_err(&p.ns).await;
    assert!(err.contains("it would delete 3 of 4 object(s) (75%), over prune_guard.max_fraction (50%)"), "{err}");
    p.config(&format!("{ONE_PIPELINE}prune_guard = {{ max_fraction = 0.8 }}\n"));
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(report.count(Action::Pruned), 3);
    Ok(())
}

#[tokio::test]
async fn a_custom_resource_applies_with_its_crd_in_the_same_pipeline() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "crd").await?;
    let group = format!("{}.moor.test", p.ns);
    p.config(ONE_PIPELINE);
    p.file("crd.yaml", &format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: gadgets.{group}}}\nspec:\n  group: {group}\n  names: {{kind: Gadget, plural: gadgets, singular: gadget}}\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n"
    ));
    p.file(
        "gadget.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Gadget\nmetadata: {{name: g1, namespace: '{{ns}}'}}\nspec: {{size: 2}}\n"
        ),
    );
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(report.count(Action::Created), 2, "{report:?}");
    let second = p.apply_ok(&p.ns).await;
    assert_eq!(second.count(Action::Unchanged), 2, "{second:?}");
    Ok(())
}

#[tokio::test]
async fn replicas_owned_by_an_autoscaler_are_left_alone() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "hpa").await?;
    p.config(&format!("{ONE_PIPELINE}wait = false\n"));
    p.file("app.yaml", &deployment("web", ""));
    p.apply_ok(&p.ns).await;
    // The autoscaler (another field manager) scales the Deployment.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &p.ns);
    let scale =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    deployments.patch("web", &PatchParams::apply("horizontal-pod-autoscaler").force(), &Patch::Apply(&scale)).await?;

    let report = p.apply_ok(&p.ns).await;
    assert_eq!(
        report.names(Action::Unchanged),
        vec![format!("Deployment/{}/web", p.ns)],
        "replicas counted as drift: {report:?}"
    );
    // A change in Git is applied, and the autoscaler's replicas survive it.
    p.file("app.yaml", &deployment("web", "  minReadySeconds: 1\n"));
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(report.count(Action::Configured), 1, "{report:?}");
    assert_eq!(deployments.get("web").await?.spec.unwrap().replicas, Some(4));
    Ok(())
}

#[tokio::test]
async fn an_immutable_field_is_handled_by_recreate() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "immutable").await?;
    p.config(ONE_PIPELINE);
    let immutable = |value: &str, strategy: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\n  namespace: '{{ns}}'\n  annotations: {{moor.dev/update: {strategy}}}\nimmutable: true\ndata: {{key: {value}}}\n"
        )
    };
    p.file("frozen.yaml", &immutable("one", "update"));
    p.apply_ok(&p.ns).await;
    p.file("frozen.yaml", &immutable("two", "update"));
    let err = p.apply_err(&p.ns).await;
    assert!(err.contains("immutable"), "{err}");
    p.file("frozen.yaml", &immutable("two", "recreate"));
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(report.names(Action::Recreated), vec![format!("ConfigMap/{}/frozen", p.ns)], "{report:?}");
    let live = Api::<ConfigMap>::namespaced(client, &p.ns).get("frozen").await?;
    assert_eq!(live.data.unwrap()["key"], "two");
    Ok(())
}

#[tokio::test]
async fn a_failed_rollout_is_reported_with_its_reason() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "rollout").await?;
    p.config(ONE_PIPELINE);
    // No node matches: the pods never start and the rollout passes its deadline.
    let spec = "  progressDeadlineSeconds: 2\n";
    let text = deployment("stuck", spec)
        .replace("    spec:\n      containers:", "    spec:\n      nodeSelector: {nowhere: 'true'}\n      containers:");
    p.file("stuck.yaml", &text);
    let started = std::time::Instant::now();
    let err = p.apply_err(&p.ns).await;
    assert!(
        err.contains(&format!("Deployment/{}/stuck is unhealthy: rollout failed: ProgressDeadlineExceeded", p.ns)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(50), "waited for the timeout instead of failing fast");
    Ok(())
}

#[tokio::test]
async fn the_diff_never_shows_a_secret_value() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let p = Project::new(&client, "diff").await?;
    let config = p.config(ONE_PIPELINE);
    let secret = |v: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: '{{ns}}'}}\nstringData:\n  password: {v}\n"
        )
    };
    p.file("secret.yaml", &secret("first-s3cr3t-value"));
    p.apply_ok(&p.ns).await;
    p.file("secret.yaml", &secret("second-s3cr3t-value"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moor-under-test"))
        .args(["diff", config.to_str().unwrap(), "--color", "never"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("MOOR_CACHE", moor_e2e::plugin_cache())
        .output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("Secret/{}/creds (configure)", p.ns)), "{text}");
    assert!(text.contains("<redacted> (changed)"), "{text}");
    for needle in ["first-s3cr3t-value", "second-s3cr3t-value", "Zmlyc3Qtc", "c2Vjb25kLXMzY3IzdC12YWx1ZQ"] {
        assert!(!text.contains(needle), "secret material `{needle}` in the diff:\n{text}");
    }
    Ok(())
}

#[tokio::test]
async fn an_impersonated_pipeline_cannot_write_outside_its_namespace() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let p = Project::new(&client, "imp").await?;
    let other = c.namespace(&client, "imp-other").await?;
    // A service account that may manage ConfigMaps (and read itself) in the test namespace only.
    let rbac = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: deployer, namespace: {ns}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: deployer, namespace: {ns}}}\nrules: [{{apiGroups: [''], resources: [configmaps], verbs: ['*']}}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: deployer, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}}\nsubjects: [{{kind: ServiceAccount, name: deployer, namespace: {ns}}}]\n",
        ns = p.ns
    );
    let out = c
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(rbac.as_bytes())?;
            child.wait_with_output()
        })?;
    assert!(out.status.success());

    p.config(&format!(
        "[[pipeline]]\nname = \"{{ns}}\"\nsource = \"local\"\nservice_account = \"{}/deployer\"\n",
        p.ns
    ));
    p.file("mine.yaml", &cm("mine"));
    p.apply_ok(&p.ns).await;
    p.file(
        "theirs.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: theirs, namespace: {other}}}\n"),
    );
    let err = p.apply_err(&p.ns).await;
    assert!(err.contains(&format!("system:serviceaccount:{}:deployer", p.ns)) && err.contains("forbidden"), "{err}");
    assert!(Api::<ConfigMap>::namespaced(client, &other).get_opt("theirs").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn removing_a_pipeline_prunes_what_it_managed_or_orphans_it() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "removed").await?;
    p.file("a/cm.yaml", &cm("from-a"));
    p.file("b/cm.yaml", &cm("from-b"));
    let both = "[[pipeline]]\nname = \"{ns}-a\"\nsource = \"local\"\npath = \"a\"\n\n[[pipeline]]\nname = \"{ns}-b\"\nsource = \"local\"\npath = \"b\"\ndeletion_policy = \"orphan\"\n";
    p.config(both);
    let results = p.apply().await?;
    assert!(results.iter().all(|r| r.ok), "{results:?}");
    p.config("");
    let results = p.apply().await?;
    assert_eq!(results.len(), 2, "{results:?}");
    let cms: Api<ConfigMap> = Api::namespaced(client, &p.ns);
    eventually(20, "from-a to be pruned", || async { Ok(cms.get_opt("from-a").await?.is_none().then_some(())) })
        .await?;
    assert!(cms.get_opt("from-b").await?.is_some(), "an orphaned object was deleted");
    Ok(())
}

#[tokio::test]
async fn a_dry_run_pipeline_changes_nothing() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "dry").await?;
    p.config(&format!("{ONE_PIPELINE}dry_run = true\n"));
    p.file("a.yaml", &cm("a"));
    let report = p.apply_ok(&p.ns).await;
    assert!(report.dry_run);
    assert_eq!(report.names(Action::Created), vec![format!("ConfigMap/{}/a", p.ns)]);
    assert!(Api::<ConfigMap>::namespaced(client, &p.ns).get_opt("a").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn ignored_kinds_policies_and_prune_opt_outs_are_respected() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "policy").await?;
    p.config(&format!("{ONE_PIPELINE}ignore_kinds = [\"Secret\"]\nprune_guard = {{ max_fraction = 1.0 }}\n"));
    p.file("secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: '{ns}'}\n");
    p.file("ignored.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored, namespace: '{ns}', annotations: {moor.dev/apply: ignore}}\n");
    p.file("once.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: once, namespace: '{ns}', annotations: {moor.dev/apply: if-not-present}}\ndata: {v: '1'}\n");
    p.file("keep.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep, namespace: '{ns}'}\n");
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(report.count(Action::Skipped), 2, "{report:?}");
    assert_eq!(report.count(Action::Created), 2, "{report:?}");
    let cms: Api<ConfigMap> = Api::namespaced(client, &p.ns);
    assert!(cms.get_opt("ignored").await?.is_none());

    // if-not-present: a change in Git is not applied to an existing object.
    p.file("once.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: once, namespace: '{ns}', annotations: {moor.dev/apply: if-not-present}}\ndata: {v: '2'}\n");
    // prune: disabled on the live object keeps it when it leaves Git.
    let opt_out = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "annotations": {"moor.dev/prune": "disabled"}}});
    cms.patch("keep", &PatchParams::apply("operator"), &Patch::Apply(&opt_out)).await?;
    p.remove("keep.yaml");
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(cms.get("once").await?.data.unwrap()["v"], "1");
    assert!(cms.get_opt("keep").await?.is_some());
    assert_eq!(report.count(Action::Orphaned), 1, "{report:?}");
    Ok(())
}

#[tokio::test]
async fn a_namespace_restricted_pipeline_refuses_other_namespaces() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "restricted").await?;
    p.config(&format!("{ONE_PIPELINE}namespaces = [\"{{ns}}\"]\n"));
    p.file("ok.yaml", &cm("ok"));
    p.file("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, namespace: kube-system}\n");
    let err = p.apply_err(&p.ns).await;
    assert!(err.contains("namespace `kube-system` is outside the pipeline's namespaces"), "{err}");
    assert!(err.contains("bad.yaml:1"), "{err}");

    // Cluster-scoped objects: its own or nobody's, never someone else's.
    p.remove("bad.yaml");
    let role = |name: &str| {
        format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {name}}}\nrules: []\n")
    };
    p.file("own.yaml", &role(&format!("{}-own", p.ns)));
    p.apply_ok(&p.ns).await;
    p.file("taken.yaml", &role("system:basic-user"));
    let err = p.apply_err(&p.ns).await;
    assert!(
        err.contains("ClusterRole/system:basic-user")
            && err.contains("not managed by this namespace-restricted pipeline"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn namespaces_opt_in_by_label_and_resources_opt_out() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let p = Project::new(&client, "optin").await?;
    let dry = c.namespace(&client, "optin-dry").await?;
    let off = c.namespace(&client, "optin-off").await?;
    for (ns, mode) in [(&p.ns, "on"), (&dry, "dry-run")] {
        c.kubectl().args(["label", "namespace", ns, &format!("moor.dev/enabled={mode}")]).output()?;
    }
    p.config(&format!("{ONE_PIPELINE}namespace_opt_in = true\n"));
    p.file("on.yaml", &cm("on"));
    p.file("off-resource.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: off, namespace: '{ns}', labels: {moor.dev/enabled: 'off'}}\n");
    p.file("dry.yaml", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: dry, namespace: {dry}}}\n"));
    p.file("unlabelled.yaml", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x, namespace: {off}}}\n"));
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(report.names(Action::Created), vec![format!("ConfigMap/{}/on", p.ns)], "{report:?}");
    assert_eq!(report.count(Action::Skipped), 3, "{report:?}");
    assert!(Api::<ConfigMap>::namespaced(client.clone(), &dry).get_opt("dry").await?.is_none());
    assert!(Api::<ConfigMap>::namespaced(client, &off).get_opt("x").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn waves_apply_in_order_and_services_wait_for_endpoints() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "waves").await?;
    p.config(ONE_PIPELINE);
    p.file("late.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: '{ns}', annotations: {moor.dev/wave: '2'}}\n");
    p.file("app.yaml", &deployment("web", "  replicas: 1\n"));
    p.file("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: '{ns}'}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n");
    p.apply_ok(&p.ns).await;
    let late = Api::<ConfigMap>::namespaced(client.clone(), &p.ns).get("late").await?;
    let web = Api::<Deployment>::namespaced(client.clone(), &p.ns).get("web").await?;
    // The wave-2 object came after wave 0 was healthy.
    assert!(late.metadata.creation_timestamp.unwrap().0 >= web.metadata.creation_timestamp.unwrap().0);
    assert!(Api::<Service>::namespaced(client, &p.ns).get_opt("web").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_kill_in_mid_apply_then_a_rerun_converges_with_no_orphan_and_nothing_wrongly_deleted() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let p = Project::new(&client, "kill").await?;
    let config = p.config(&format!("{ONE_PIPELINE}wait = false\n"));
    for i in 0..60 {
        p.file(&format!("old/a{i}.yaml"), &cm(&format!("a{i}")));
    }
    p.apply_ok(&p.ns).await;

    // The next revision keeps half of the old objects and adds many new ones.
    for i in 30..60 {
        p.remove(&format!("old/a{i}.yaml"));
    }
    for i in 0..600 {
        p.file(&format!("new/b{i}.yaml"), &cm(&format!("b{i}")));
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    let selector = kube::api::ListParams::default().labels(&format!("moor.dev/pipeline={}", p.ns));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moor-under-test"))
        .args(["apply", config.to_str().unwrap()])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("MOOR_CACHE", moor_e2e::plugin_cache())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // Kill it as soon as new objects appear, well before all of them exist.
    let created = eventually(60, "the apply to start creating", || async {
        let n = cms
            .list(&selector)
            .await?
            .items
            .iter()
            .filter(|cm| cm.metadata.name.as_deref().is_some_and(|n| n.starts_with('b')))
            .count();
        Ok((n > 0).then_some(n))
    })
    .await?;
    child.kill()?; // SIGKILL
    child.wait()?;
    let after_kill: Vec<String> =
        cms.list(&selector).await?.items.into_iter().filter_map(|cm| cm.metadata.name).collect();
    let new_after_kill = after_kill.iter().filter(|n| n.starts_with('b')).count();
    assert!(new_after_kill < 600, "the apply finished before the kill ({created} seen); the test proves nothing");

    // Everything the killed run created is named in the inventory: nothing can be orphaned.
    let named = p.inventory_names(&p.ns).await?;
    for name in &after_kill {
        assert!(named.contains(name), "{name} exists but is not in the inventory");
    }

    let report = p.apply_ok(&p.ns).await;
    assert_eq!(report.count(Action::Pruned), 30, "{:?}", report.names(Action::Pruned));
    let mut names: Vec<String> =
        cms.list(&selector).await?.items.into_iter().filter_map(|cm| cm.metadata.name).collect();
    names.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("a{i}")).chain((0..600).map(|i| format!("b{i}"))).collect();
    expected.sort();
    assert_eq!(names, expected);
    Ok(())
}

#[tokio::test]
async fn custom_cel_health_checks_wait_for_and_fail_on_what_they_say() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "cel").await?;
    let group = format!("{}.moor.test", p.ns);
    p.config(&format!(
        "{ONE_PIPELINE}health = [{{ kind = \"{group}/Job\", ready = \"object.status.phase == 'Done'\", failed = \"object.status.phase == 'Broken'\" }}]\n"
    ));
    p.file("crd.yaml", &format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: jobs.{group}}}\nspec:\n  group: {group}\n  names: {{kind: Job, plural: jobs, singular: job}}\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n"
    ));
    p.file(
        "job.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Job\nmetadata: {{name: j1, namespace: '{{ns}}'}}\nspec: {{steps: 3}}\n"
        ),
    );

    // Another controller finishes the job a moment after it is created.
    let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(&group, "v1", "Job"));
    let jobs: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &p.ns, &resource);
    let finish = |phase: &'static str| {
        let jobs = jobs.clone();
        let group = group.clone();
        tokio::spawn(async move {
            let status = json!({"apiVersion": format!("{group}/v1"), "kind": "Job", "metadata": {"name": "j1"}, "status": {"phase": phase}});
            for _ in 0..100 {
                if jobs.patch("j1", &PatchParams::apply("job-controller").force(), &Patch::Apply(&status)).await.is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let done = finish("Done");
    let report = p.apply_ok(&p.ns).await;
    done.await?;
    assert!(
        report.object_health().iter().any(|(o, h)| o.ends_with("/j1") && h == "ready"),
        "{:?}",
        report.object_health()
    );

    // A change in Git, and this time the controller breaks it.
    p.file(
        "job.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Job\nmetadata: {{name: j1, namespace: '{{ns}}'}}\nspec: {{steps: 4}}\n"
        ),
    );
    let broken = finish("Broken");
    broken.await?;
    let err = p.apply_err(&p.ns).await;
    assert!(err.contains("/j1 is unhealthy: `object.status.phase == 'Broken'` holds"), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_quickstart_applies_healthy_then_unchanged_then_prunes_a_removed_manifest() -> anyhow::Result<()> {
    // The example itself, copied, under an instance of its own; its namespace is `quickstart`,
    // so start from a cluster without it (an earlier run against the same cluster left it).
    let c = cluster();
    let out = c.kubectl().args(["delete", "namespace", "quickstart", "--ignore-not-found", "--wait"]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir()?;
    let example = moor_e2e::repo_root().join("examples/quickstart");
    std::fs::create_dir_all(dir.path().join("manifests"))?;
    for entry in std::fs::read_dir(example.join("manifests"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dir.path().join("manifests").join(entry.file_name()))?;
    }
    let config = std::fs::read_to_string(example.join("moor.toml"))?;
    let instance = format!("[moor]\ninstance = \"quickstart-test-{}\"\n", std::process::id());
    std::fs::write(dir.path().join("moor.toml"), config.replace("[moor]\n", &instance))?;
    let apply = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_moor-under-test"))
            .args(["apply", dir.path().join("moor.toml").to_str().unwrap()])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("MOOR_CACHE", moor_e2e::plugin_cache())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        text
    };
    let first = apply();
    assert!(first.contains("4 created, 0 configured, 0 unchanged, 0 pruned, 0 skipped; healthy"), "{first}");
    let second = apply();
    assert!(second.contains("0 created, 0 configured, 4 unchanged, 0 pruned"), "{second}");
    std::fs::remove_file(dir.path().join("manifests/config.yaml"))?;
    let third = apply();
    assert!(third.contains("0 created, 0 configured, 3 unchanged, 1 pruned"), "{third}");
    let client = c.client().await?;
    assert!(Api::<ConfigMap>::namespaced(client, "quickstart").get_opt("hello").await?.is_none());
    Ok(())
}

/// kstatus's rule: a ClusterIP Service is ready at once, even when the pods it selects come
/// later (from an operator); before, the pipeline failed health after its timeout.
#[tokio::test]
async fn a_service_whose_pods_do_not_exist_yet_is_healthy_at_once() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "svc-health").await?;
    p.config("[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\nhealth_timeout = \"10s\"\n");
    p.file("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: operated, namespace: '{ns}'}\nspec:\n  selector: {app: made-by-an-operator}\n  ports: [{port: 9090}]\n");
    let report = p.apply_ok(&p.ns).await;
    assert!(report.is_healthy(), "{:?}", report.object_health());
    assert_eq!(report.object_health(), [(format!("Service/{}/operated", p.ns), "ready".to_owned())]);
    Ok(())
}
