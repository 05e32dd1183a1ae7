//! The `substitute` step (FX-11, issue #11): Flux's post-build substitution with values from
//! the step's `vars` and from the ConfigMaps and Secrets its `vars_from` names.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::PostParams;
use moor::apply::Action;
use moor_e2e::{Project, cluster};

#[tokio::test]
async fn vars_come_from_configmaps_secrets_and_the_step_and_take_their_yaml_types() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "subst").await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cluster-vars"},
        "data": {"cluster": "prod-eu", "replicas": "2", "tier": "from-configmap"},
    }))?;
    configmaps.create(&PostParams::default(), &cm).await?;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cluster-secrets"},
        "stringData": {"db_password": "s3cret-value-42"},
    }))?;
    Api::<Secret>::namespaced(client.clone(), &p.ns).create(&PostParams::default(), &secret).await?;

    p.file(
        "app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-${cluster}\n  namespace: {ns}\nspec:\n  replicas: ${replicas}\n  \
         selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        \
         - name: web\n          image: nginx\n          env:\n            - {name: TIER, value: \"${tier}\"}\n            \
         - {name: REGION, value: \"${cluster:5}\"}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {ns}\n\
         stringData:\n  password: ${db_password}\n",
    );
    // `vars_from` in order, an optional one missing; the step's `vars` win over both.
    p.config_with(
        "namespace = \"{ns}\"",
        "",
        "[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\nrender = [\n  { use = \"yaml\" },\n  \
         { use = \"substitute\", with = { strict = true, vars = { tier = \"from-step\" } }, vars_from = [\
         { configmap = \"cluster-vars\" }, { secret = \"cluster-secrets\" }, { configmap = \"absent\", optional = true }] },\n]\n",
    );
    let report = p.apply_ok(&p.ns).await;
    assert_eq!(report.count(Action::Created), 2, "{report:?}");

    let web = Api::<Deployment>::namespaced(client.clone(), &p.ns).get("web-prod-eu").await?;
    let spec = web.spec.unwrap();
    assert_eq!(spec.replicas, Some(2), "a number once substituted");
    let env: Vec<(String, String)> = spec.template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert_eq!(env, [("TIER".into(), "from-step".into()), ("REGION".into(), "eu".into())]);
    let db = Api::<Secret>::namespaced(client.clone(), &p.ns).get("db").await?;
    assert_eq!(db.data.unwrap()["password"].0, b"s3cret-value-42");

    // A `vars_from` that is not optional and does not exist fails the pipeline, naming it.
    p.config_with(
        "namespace = \"{ns}\"",
        "",
        "[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\nrender = [{ use = \"yaml\" }, \
         { use = \"substitute\", vars_from = [{ configmap = \"absent\" }] }]\n",
    );
    let error = p.apply_err(&p.ns).await;
    assert!(error.contains(&format!("ConfigMap `{}/absent` does not exist", p.ns)), "{error}");
    Ok(())
}
