//! #16's control-plane faults in controller mode. Each must give a clear per-pipeline
//! error, a retry with backoff, nothing pruned wrongly, other pipelines unaffected, and
//! `/healthz` up.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use moor_e2e::{Controller, Project, cluster, eventually};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: '{{ns}}'\ndata:\n  value: {value}\n"
    )
}

/// Another field manager owns a field the pipeline sets, and the pipeline does not take
/// fields from others (`force = false`; by default it does, as Flux does): the pipeline
/// fails naming the object and the manager, and is retried with backoff until the other tool lets go; the
/// object is never deleted, and another pipeline runs on.
#[tokio::test(flavor = "multi_thread")]
async fn a_conflicting_field_manager_fails_only_its_pipeline_until_it_lets_go() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "fault-conflict").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    let theirs =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"value": "theirs"}});
    cms.patch("shared", &PatchParams::apply("other-tool"), &Patch::Apply(&theirs)).await?;
    p.file("fought/shared.yaml", &cm("shared", "ours"));
    p.file("calm/mine.yaml", &cm("mine", "ours"));
    let config = p.config(
        "[[pipeline]]\nname = \"fought\"\nsource = \"local\"\npath = \"fought\"\ninterval = \"1h\"\nretry_interval = \"4s\"\nforce = false\n\n\
         [[pipeline]]\nname = \"calm\"\nsource = \"local\"\npath = \"calm\"\ninterval = \"1h\"\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let fought = moor.runs("fought", 2, 60).await?;
    let run = &fought["last_run"];
    assert_eq!((run["ok"].as_bool(), run["stage"].as_str()), (Some(false), Some("plan")), "{fought}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("ConfigMap") && error.contains("shared"), "the error names the object: {error}");
    assert!(error.contains("conflict") && error.contains("other-tool"), "the error names the manager: {error}");
    assert_eq!(run["trigger"], "retry", "{fought}");
    assert!(fought["failures_in_a_row"].as_u64().unwrap_or(0) >= 2, "{fought}");
    assert_eq!(moor.pipeline("calm").await?["last_run"]["ok"], true);
    assert_eq!(moor.get_text("/healthz").await?.0, 200);
    let shared = cms.get("shared").await?;
    assert_eq!(shared.data.unwrap_or_default()["value"], "theirs", "the other tool's value was overwritten");

    // The other tool lets go of the field: the next retry applies.
    let released = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}});
    cms.patch("shared", &PatchParams::apply("other-tool"), &Patch::Apply(&released)).await?;
    eventually(30, "the retry after the other tool let go", || async {
        let run = moor.pipeline("fought").await?["last_run"].clone();
        Ok((run["ok"] == true).then_some(()))
    })
    .await?;
    assert_eq!(cms.get("shared").await?.data.unwrap_or_default()["value"], "ours");
    Ok(())
}
