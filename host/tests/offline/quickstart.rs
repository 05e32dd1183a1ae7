//! The README's first command: `moor plan examples/quickstart/moor.toml` lists the four
//! quickstart objects.

use std::path::Path;
use std::process::Command;

/// `moor plan examples/<example>/moor.toml --output json`, offline whatever cluster the
/// environment points at.
fn plan(example: &str) -> serde_json::Value {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{example}/moor.toml"));
    let out = Command::new(env!("CARGO_BIN_EXE_moor"))
        .args(["plan", config.to_str().unwrap(), "--output", "json"])
        .env("MOOR_CACHE", crate::support::cache_dir())
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_quickstart_plan_lists_its_four_objects() {
    let plan = plan("quickstart");
    assert!(plan["cluster"].as_str().unwrap().starts_with("not reachable"), "{plan}");
    let mut objects: Vec<&str> =
        plan["pipelines"][0]["changes"].as_array().unwrap().iter().map(|c| c["object"].as_str().unwrap()).collect();
    objects.sort();
    assert_eq!(
        objects,
        [
            "ConfigMap/quickstart/hello",
            "Deployment/quickstart/hello",
            "Namespace/quickstart",
            "Service/quickstart/hello"
        ]
    );
}

/// `examples/kustomize`: the prod overlay, rendered by the standard `kustomize` plugin
/// (built by `scripts/go-plugins`, which `scripts/test` runs first).
#[test]
fn the_kustomize_example_plans_its_overlay() {
    let plan = plan("kustomize");
    let mut objects: Vec<&str> =
        plan["pipelines"][0]["changes"].as_array().unwrap().iter().map(|c| c["object"].as_str().unwrap()).collect();
    objects.sort();
    assert_eq!(objects.len(), 4, "{objects:?}");
    assert!(objects.contains(&"Deployment/web-prod/prod-web"), "{objects:?}");
    assert!(objects.iter().any(|o| o.starts_with("ConfigMap/web-prod/prod-web-settings-")), "{objects:?}");
}

/// `examples/helm`: the chart with its production values and inline values, rendered by the
/// standard `helm` plugin.
#[test]
fn the_helm_example_plans_its_chart() {
    let plan = plan("helm");
    let changes = plan["pipelines"][0]["changes"].as_array().unwrap();
    let mut objects: Vec<&str> = changes.iter().map(|c| c["object"].as_str().unwrap()).collect();
    objects.sort();
    assert_eq!(objects, ["Deployment/web-prod/web", "Namespace/web-prod", "Service/web-prod/web"]);
}
