//! Proof that the test control plane is a working Kubernetes: controllers, scheduler and
//! kwok run Deployments to Available; server-side apply, CRDs, garbage collection and RBAC
//! behave as in any cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use moor_e2e::{cluster, eventually};
use serde_json::json;

fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test]
async fn a_deployment_becomes_available() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let ns = c.namespace(&client, "deploy").await?;
    let api: Api<Deployment> = Api::namespaced(client, &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    }))?;
    api.create(&PostParams::default(), &deployment).await?;
    eventually(60, "Deployment web Available with 3 ready replicas", || async {
        let d = api.get("web").await?;
        let status = d.status.unwrap_or_default();
        let available =
            status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Available" && c.status == "True");
        Ok((available && status.ready_replicas == Some(3)).then_some(()))
    })
    .await
}

#[tokio::test]
async fn server_side_apply_uses_field_managers_and_reports_conflicts() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let ns = c.namespace(&client, "ssa").await?;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let cm = |value: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"key": value}});

    api.patch("shared", &PatchParams::apply("moor"), &Patch::Apply(cm("from-moor"))).await?;
    let live = api.get("shared").await?;
    let managers: Vec<_> =
        live.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert_eq!(managers, vec!["moor".to_owned()]);

    let err = api.patch("shared", &PatchParams::apply("someone-else"), &Patch::Apply(cm("theirs"))).await.unwrap_err();
    assert_eq!(status_code(&err), Some(409), "{err}");
    assert!(err.to_string().contains("conflict"), "{err}");

    api.patch("shared", &PatchParams::apply("someone-else").force(), &Patch::Apply(cm("theirs"))).await?;
    assert_eq!(api.get("shared").await?.data.unwrap()["key"], "theirs");
    Ok(())
}

#[tokio::test]
async fn a_crd_becomes_established_and_its_resources_apply() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let ns = c.namespace(&client, "crd").await?;
    let group = format!("t{}.moor.dev", std::process::id());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                }}}
            }]
        }
    }))?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(&format!("widgets.{group}"), &PatchParams::apply("moor"), &Patch::Apply(&crd)).await?;
    eventually(30, "the Widget CRD to be Established", || async {
        let crd = crds.get(&format!("widgets.{group}")).await?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conditions.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(()))
    })
    .await?;

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, &ns, &resource);
    let widget =
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}});
    // Discovery may lag the Established condition by a moment.
    eventually(15, "the Widget to apply", || async {
        match widgets.patch("w", &PatchParams::apply("moor"), &Patch::Apply(&widget)).await {
            Ok(_) => Ok(Some(())),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    assert_eq!(widgets.get("w").await?.data["spec"]["size"], 3);
    Ok(())
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let ns = c.namespace(&client, "gc").await?;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let owner =
        api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "owner"}}))?).await?;
    let uid = owner.metadata.uid.clone().unwrap();
    let dependent = json!({"metadata": {"name": "dependent", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
    ]}});
    api.create(&PostParams::default(), &serde_json::from_value(dependent)?).await?;
    api.delete("owner", &DeleteParams::background()).await?;
    eventually(30, "the dependent ConfigMap to be collected", || async {
        Ok(api.get_opt("dependent").await?.is_none().then_some(()))
    })
    .await
}

#[tokio::test]
async fn a_service_account_with_rights_in_one_namespace_is_denied_in_another() -> anyhow::Result<()> {
    let c = cluster();
    let admin = c.client().await?;
    let home = c.namespace(&admin, "sa-home").await?;
    let other = c.namespace(&admin, "sa-other").await?;
    let apply = |api: &str, kind: &str, body: serde_json::Value| {
        let admin = admin.clone();
        let home = home.clone();
        let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        async move {
            let api: Api<DynamicObject> = Api::namespaced_with(admin, &home, &resource);
            let name = body["metadata"]["name"].as_str().unwrap().to_owned();
            api.patch(&name, &PatchParams::apply("moor"), &Patch::Apply(&body)).await
        }
    };
    apply(
        "v1",
        "ServiceAccount",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer"}}),
    )
    .await?;
    apply(
        "rbac.authorization.k8s.io/v1",
        "Role",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "configmaps"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]
        }),
    )
    .await?;
    apply(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "deployer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmaps"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": home}]
        }),
    )
    .await?;

    let user = format!("system:serviceaccount:{home}:deployer");
    let sa = c.client_as(&user, &["system:serviceaccounts", "system:authenticated"]).await?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    Api::<ConfigMap>::namespaced(sa.clone(), &home).patch("x", &PatchParams::apply("moor"), &Patch::Apply(&cm)).await?;
    let err = Api::<ConfigMap>::namespaced(sa, &other)
        .patch("x", &PatchParams::apply("moor"), &Patch::Apply(&cm))
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), Some(403), "{err}");
    assert!(err.to_string().contains(&user), "{err}");
    Ok(())
}
