//! Remote clusters (`[[cluster]]`, `pipeline.cluster`), against a second control plane:
//! a pipeline applies, prunes and corrects drift there with the kubeconfig its Secret holds,
//! while its inventory stays in the cluster moor runs in; a cluster that cannot be reached
//! fails only its own pipelines.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use moor_e2e::{Controller, Project, cluster, eventually, remote_cluster};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

async fn value(api: &Api<ConfigMap>, name: &str) -> anyhow::Result<Option<String>> {
    Ok(api.get_opt(name).await?.map(|cm| cm.data.unwrap_or_default().get("v").cloned().unwrap_or_default()))
}

fn cm(name: &str, ns: &str, v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{v: {v}}}\n")
}

/// The Secret `kubeconfigs` in `ns` at home, with a kubeconfig per key.
async fn kubeconfigs(home: &kube::Client, ns: &str, data: serde_json::Value) -> anyhow::Result<()> {
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "kubeconfigs"}, "stringData": data}))?;
    Api::<Secret>::namespaced(home.clone(), ns).create(&PostParams::default(), &secret).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_applies_prunes_and_corrects_drift_in_a_remote_cluster() -> anyhow::Result<()> {
    let home = cluster().client().await?;
    let remote = remote_cluster().client().await?;
    let p = Project::new(&home, "remote").await?;
    let remote_ns = remote_cluster().namespace(&remote, "remote").await?;
    let kubeconfig = std::fs::read_to_string(&remote_cluster().kubeconfig)?;
    // A cluster nobody answers for: a closed port on loopback.
    let closed = moor_e2e::free_port();
    let nowhere = kubeconfig
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("server:") {
                format!("    server: https://127.0.0.1:{closed}")
            } else {
                l.into()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    kubeconfigs(&home, &p.ns, json!({"prod": kubeconfig, "down": nowhere})).await?;

    p.file("prod/a.yaml", &cm("a", &remote_ns, "one"));
    p.file("prod/b.yaml", &cm("b", &remote_ns, "one"));
    p.file("home/c.yaml", &cm("c", &p.ns, "one"));
    p.file("down/d.yaml", &cm("d", &remote_ns, "one"));
    let pipelines = |home_cluster: &str| {
        format!(
            "[[cluster]]\nname = \"prod\"\nkubeconfig = {{ secret = \"{{ns}}/kubeconfigs\", key = \"prod\" }}\n\n\
         [[cluster]]\nname = \"down\"\nkubeconfig = {{ secret = \"{{ns}}/kubeconfigs\", key = \"down\" }}\n\n\
         [[pipeline]]\nname = \"prod\"\nsource = \"local\"\npath = \"prod\"\ncluster = \"prod\"\ninterval = \"1h\"\n\n\
         [[pipeline]]\nname = \"home\"\nsource = \"local\"\npath = \"home\"\ninterval = \"1h\"\n{home_cluster}\n\n\
         [[pipeline]]\nname = \"down\"\nsource = \"local\"\npath = \"down\"\ncluster = \"down\"\ninterval = \"1h\"\n"
        )
    };
    let config = p.config_with("", "poll_interval = \"1s\"", &pipelines(""));
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let remote_cms: Api<ConfigMap> = Api::namespaced(remote.clone(), &remote_ns);
    let home_cms: Api<ConfigMap> = Api::namespaced(home.clone(), &p.ns);
    for name in ["a", "b"] {
        eventually(60, &format!("{name} in the remote cluster"), || async {
            Ok(value(&remote_cms, name).await?.filter(|v| v == "one"))
        })
        .await?;
    }
    eventually(30, "c at home", || async { value(&home_cms, "c").await }).await?;

    // The unreachable cluster fails its own pipeline, with a clear error; the others are fine.
    let down = eventually(60, "the pipeline of the unreachable cluster to fail", || async {
        let s = moor.pipeline("down").await?;
        Ok(s["last_run"]["ok"].as_bool().is_some_and(|ok| !ok).then_some(s))
    })
    .await?;
    let error = down["last_run"]["error"].as_str().unwrap();
    assert!(error.contains("cluster `down`"), "{error}");
    assert!(!error.contains("client-key-data") && !error.contains("BEGIN"), "no credential leaks: {error}");
    for name in ["prod", "home"] {
        assert_eq!(moor.pipeline(name).await?["last_run"]["ok"], true, "{name}");
    }

    // The inventory is at home, in moor's namespace; none is written to the remote cluster.
    let inventories: Api<ConfigMap> = Api::namespaced(home.clone(), "moor-system");
    let inventory = inventories.get(&format!("moor-inventory-{}-prod", p.instance)).await?;
    let bytes = &inventory.binary_data.as_ref().and_then(|d| d.values().next().cloned()).expect("inventory data").0;
    let stored = moor::apply::inventory::Inventory::decode(bytes)?;
    assert_eq!(stored.cluster, "prod");
    assert_eq!(stored.len(), 2);
    assert!(stored.refs().all(|r| r.namespace == remote_ns), "{stored:?}");
    assert!(
        Api::<ConfigMap>::namespaced(remote.clone(), "moor-system")
            .list(&Default::default())
            .await
            .map_or(true, |l| l.items.is_empty())
    );

    // Drift in the remote cluster is put back by a watch there.
    remote_cms.delete("a", &DeleteParams::default()).await?;
    eventually(30, "a put back in the remote cluster", || async { value(&remote_cms, "a").await }).await?;
    assert!(moor.log_text().contains("drift"), "{}", moor.log_text());

    // Pruning happens there too.
    p.remove("prod/b.yaml");
    eventually(30, "b pruned from the remote cluster", || async {
        Ok(value(&remote_cms, "b").await?.is_none().then_some(()))
    })
    .await?;
    assert!(value(&remote_cms, "a").await?.is_some());

    // A pipeline pointed at another cluster is refused: pruning would look in the wrong one.
    p.config_with("", "poll_interval = \"1s\"", &pipelines("cluster = \"prod\""));
    let moved = eventually(30, "the moved pipeline to be refused", || async {
        let s = moor.pipeline("home").await?;
        Ok(s["last_run"]["error"].as_str().is_some_and(|e| e.contains("now names `prod`")).then_some(s))
    })
    .await?;
    assert!(moved["last_run"]["error"].as_str().unwrap().contains("remove the pipeline from the config first"));
    assert!(value(&home_cms, "c").await?.is_some(), "nothing was pruned at home");
    Ok(())
}

/// Regression: the inventory left after a partial removal forgot its `cluster`, so the next
/// removal looked for the objects at home, found nothing there, deleted the inventory and
/// left them orphaned in the remote cluster.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_pipeline_removed_twice_after_a_partial_removal_leaves_nothing_orphaned() -> anyhow::Result<()> {
    use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
    let home = cluster().client().await?;
    let remote = remote_cluster().client().await?;
    let p = Project::new(&home, "remote-rm").await?;
    let remote_ns = remote_cluster().namespace(&remote, "remote-rm").await?;
    kubeconfigs(&home, &p.ns, json!({"prod": std::fs::read_to_string(&remote_cluster().kubeconfig)?})).await?;
    p.file("prod/a.yaml", &cm("a", &remote_ns, "one"));
    p.file("prod/keep.yaml", &cm("keep", &remote_ns, "one"));
    p.file("home/c.yaml", &cm("c", &p.ns, "one"));
    let clusters = "[[cluster]]\nname = \"prod\"\nkubeconfig = { secret = \"{ns}/kubeconfigs\", key = \"prod\" }\n\n";
    let home_pipeline = "[[pipeline]]\nname = \"home\"\nsource = \"local\"\npath = \"home\"\n";
    let settings = "prune_guard = { max_fraction = 1.0 }";
    p.config_with(
        settings,
        "",
        &format!("{clusters}{home_pipeline}\n[[pipeline]]\nname = \"prod\"\nsource = \"local\"\npath = \"prod\"\ncluster = \"prod\"\n"),
    );
    let results = p.apply().await?;
    assert!(results.iter().all(|r| r.ok), "{results:?}");
    let remote_cms: Api<ConfigMap> = Api::namespaced(remote.clone(), &remote_ns);
    assert!(value(&remote_cms, "keep").await?.is_some());

    // The remote cluster refuses to delete `keep` (a real admission policy, no webhook).
    let name = format!("deny-delete-{remote_ns}");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["configmaps"],
            }]},
            "validations": [{"expression": "oldObject.metadata.name != 'keep'", "message": "keep stays"}],
        },
    }))?;
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": remote_ns}}},
        },
    }))?;
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(remote.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(remote.clone());
    policies.create(&PostParams::default(), &policy).await?;
    bindings.create(&PostParams::default(), &binding).await?;
    // The policy takes a moment to be enforced: a server-side dry-run delete shows when.
    eventually(30, "the admission policy to refuse deleting `keep`", || async {
        let deleted = remote_cms.delete("keep", &DeleteParams { dry_run: true, ..Default::default() }).await;
        Ok(deleted.is_err().then_some(()))
    })
    .await?;

    // The first removal deletes `a` and keeps `keep` (and its inventory) where the policy refused.
    p.config_with(settings, "", &format!("{clusters}{home_pipeline}"));
    let results = p.apply().await?;
    let removal = results.iter().find(|r| r.pipeline.starts_with("prod")).expect("a removal result");
    assert!(!removal.ok, "{removal:?}");
    assert!(removal.error.as_deref().unwrap_or_default().contains("keep"), "{removal:?}");
    assert!(value(&remote_cms, "a").await?.is_none());
    assert!(value(&remote_cms, "keep").await?.is_some());
    assert_eq!(p.inventory_names("prod").await?, ["keep".to_owned()].into());

    // Once the cluster allows it, the second removal deletes `keep` there: nothing is orphaned.
    bindings.delete(&name, &DeleteParams::default()).await?;
    policies.delete(&name, &DeleteParams::default()).await?;
    eventually(30, "the admission policy to be gone", || async {
        let deleted = remote_cms.delete("keep", &DeleteParams { dry_run: true, ..Default::default() }).await;
        Ok(deleted.is_ok().then_some(()))
    })
    .await?;
    let results = p.apply().await?;
    let removal = results.iter().find(|r| r.pipeline.starts_with("prod")).expect("a removal result");
    assert!(removal.ok, "{removal:?}");
    assert!(value(&remote_cms, "keep").await?.is_none(), "keep was orphaned in the remote cluster");
    assert!(p.inventory_names("prod").await?.is_empty());
    assert!(value(&Api::namespaced(home.clone(), &p.ns), "c").await?.is_some());
    Ok(())
}

/// Regression: `moor plan` rendered without the cluster and dry-ran at home, so a
/// `[[cluster]]` pipeline's Helm step saw no `.Capabilities` and its objects were compared
/// with the wrong cluster. It now runs as the controller does: the Secret-backed kubeconfig
/// read, the remote cluster's API versions given to Helm, the dry run there.
#[tokio::test(flavor = "multi_thread")]
async fn moor_plan_of_a_remote_pipeline_renders_and_dry_runs_in_that_cluster() -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let home = cluster().client().await?;
    let remote = remote_cluster().client().await?;
    let p = Project::new(&home, "remote-plan").await?;
    let remote_ns = remote_cluster().namespace(&remote, "remote-plan").await?;
    kubeconfigs(&home, &p.ns, json!({"prod": std::fs::read_to_string(&remote_cluster().kubeconfig)?})).await?;
    // A kind only the remote cluster serves: the chart renders one more object when Helm's
    // `.Capabilities` say so.
    let group = format!("{remote_ns}.moor.test");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("markers.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "markers", "singular": "marker", "kind": "Marker"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object"}}}],
        },
    }))?;
    let crds: Api<CustomResourceDefinition> = Api::all(remote.clone());
    crds.create(&PostParams::default(), &crd).await?;
    eventually(30, "the remote CRD to be served", || async {
        // Until the group is served its discovery document is a 404: not yet, not an error.
        let discovery = kube::Discovery::new(remote.clone()).filter(&[group.as_str()]).run().await.ok();
        Ok(discovery.and_then(|d| d.groups().next().map(|_| ())))
    })
    .await?;
    p.file("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n");
    p.file(
        "chart/templates/cms.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: planned}}\ndata: {{v: one}}\n\
             {{{{- if .Capabilities.APIVersions.Has \"{group}/v1/Marker\" }}}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: remote-only}}\ndata: {{v: one}}\n{{{{- end }}}}\n"
        ),
    );
    p.config(&format!(
        "[[cluster]]\nname = \"prod\"\nkubeconfig = {{ secret = \"{{ns}}/kubeconfigs\", key = \"prod\" }}\n\n\
         [[pipeline]]\nname = \"prod\"\nsource = \"local\"\ncluster = \"prod\"\ntarget_namespace = \"{remote_ns}\"\n\
         render = [{{ use = \"helm\", with = {{ chart = \"chart\" }} }}]\n"
    ));
    let results = p.apply().await?;
    assert!(results.iter().all(|r| r.ok), "{results:?}");
    let remote_cms: Api<ConfigMap> = Api::namespaced(remote.clone(), &remote_ns);
    assert!(value(&remote_cms, "remote-only").await?.is_some(), "the apply rendered with the remote's API versions");

    let out = std::process::Command::new(BIN)
        .args(["plan", p.dir.path().join("moor.toml").to_str().unwrap(), "--output", "json"])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("MOOR_CACHE", moor_e2e::plugin_cache())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_str(&text)?;
    let changes = &plan["pipelines"][0]["changes"];
    let mut planned: Vec<(String, String)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["action"].as_str().unwrap().to_owned(), c["object"].as_str().unwrap().to_owned()))
        .collect();
    planned.sort();
    // Both objects, as the remote cluster has them: unchanged there (at home they would be creates).
    let unchanged = |name: &str| ("unchanged".to_owned(), format!("ConfigMap/{remote_ns}/{name}"));
    assert_eq!(planned, [unchanged("planned"), unchanged("remote-only")], "{text}");
    crds.delete(&format!("markers.{group}"), &DeleteParams::default()).await?;
    Ok(())
}
