//! The KRM flavor (issue #11): Go-built WASI preview 1 modules speaking the KRM Functions
//! Specification get the same sandbox as components, and their results become diagnostics
//! with `file:line`.

use std::time::{Duration, Instant};

use moor::plugins::{
    CallError, CallScope, Document, Limits, Plugin, PluginKind, PluginSource, RenderContext, RenderInput, Severity,
};
use serde_json::json;

use crate::support::*;

fn krm(name: &str, limits: Limits) -> Plugin {
    let path = moor_test_artifacts::path(name);
    runtime().load(name, PluginSource::Inspect(path.into()), limits).unwrap()
}

/// The misbehaving KRM function of tests/krm/krm-probe.
fn go_probe() -> Plugin {
    krm("krm-probe", Limits { timeout: Duration::from_secs(2), ..quick() })
}

fn act(action: &str) -> serde_json::Value {
    json!({ "action": action })
}

fn docs() -> Vec<Document> {
    vec![
        Document {
            json: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}}).to_string(),
            file: "app.yaml".into(),
            line: 1,
        },
        Document {
            json: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}}).to_string(),
            file: "app.yaml".into(),
            line: 5,
        },
    ]
}

/// The probe's notes: the results of a validator run.
fn messages(plugin: &Plugin, action: &str) -> String {
    let diagnostics =
        plugin.validator().unwrap().validate(&act(action), &docs(), &CallScope::default()).unwrap().unwrap();
    diagnostics.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_core_module_is_loaded_as_a_krm_function_that_serves_as_renderer_or_validator() {
    let plugin = go_probe();
    assert_eq!(plugin.info.flavor, "krm-function");
    assert!(plugin.serves(PluginKind::Renderer) && plugin.serves(PluginKind::Validator));
    assert!(!plugin.serves(PluginKind::Notifier) && !plugin.serves(PluginKind::Source));
    assert!(plugin.info.contract.contains("KRM Functions Specification"));
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    let plugin = go_probe();
    let started = Instant::now();
    let err = plugin
        .renderer()
        .unwrap()
        .render(&act("loop"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    // Usable again: a fresh instance per call.
    assert!(
        plugin
            .renderer()
            .unwrap()
            .render(&act("noop"), RenderInput::Objects(docs()), &RenderContext::default(), &CallScope::default())
            .unwrap()
            .is_ok()
    );
}

#[test]
fn a_memory_hog_hits_the_cap() {
    let plugin = go_probe();
    let err = plugin
        .renderer()
        .unwrap()
        .render(&act("hog"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
        .unwrap_err();
    // Go's runtime may report the refused growth itself (exit 2) or trap on it.
    assert!(matches!(err, CallError::Memory { .. }), "{err:?}");
}

#[test]
fn an_output_flood_is_refused() {
    let plugin =
        krm("krm-probe", Limits { output: 8 << 20, timeout: Duration::from_secs(20), memory: 256 << 20, ..quick() });
    let err = plugin
        .renderer()
        .unwrap()
        .render(&act("flood"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
        .unwrap_err();
    assert!(matches!(err, CallError::Output { .. }), "{err:?}");
}

#[test]
fn it_sees_the_snapshot_read_only_as_its_working_directory_nothing_outside_and_no_env() {
    let plugin = go_probe();
    let dir = tree(&[("apps/web/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")]);
    // A renderer first in its chain works in the pipeline's directory of the snapshot (the
    // probe fails with what it saw, so that the test can read it).
    let seen = plugin
        .renderer()
        .unwrap()
        .render(
            &act("tree-fail"),
            RenderInput::Tree { snapshot: dir.path(), path: "apps/web" },
            &RenderContext::default(),
            &CallScope::default(),
        )
        .unwrap();
    let seen = seen.unwrap_err()[0].message.clone();
    assert_eq!(seen, "wd: /snapshot/apps/web files: cm.yaml env: PWD=/snapshot/apps/web");
    let escape = plugin
        .renderer()
        .unwrap()
        .render(
            &act("escape"),
            RenderInput::Tree { snapshot: dir.path(), path: "apps/web" },
            &RenderContext::default(),
            &CallScope::default(),
        )
        .unwrap();
    let notes: Vec<String> = escape.unwrap_err().into_iter().map(|d| d.message).collect();
    assert_eq!(notes.len(), 4, "{notes:#?}");
    assert!(notes.iter().all(|n| n.starts_with("cannot ")), "it got out of the read-only snapshot: {notes:#?}");
    let env = messages(&plugin, "env");
    assert_eq!(env, "env:  args: krm-probe", "a validator sees no environment and no arguments");
}

#[test]
fn results_become_diagnostics_with_file_and_line_and_a_failure_is_the_functions_error() {
    let plugin = go_probe();
    let failed = plugin.validator().unwrap().validate(&act("fail"), &docs(), &CallScope::default()).unwrap().unwrap();
    let d = &failed[0];
    assert_eq!(d.severity, Severity::Error);
    assert_eq!((d.file.as_deref(), d.line), (Some("app.yaml"), Some(5)));
    assert_eq!(d.object.as_ref().map(|o| o.name.as_str()), Some("second"));
    let crashed = plugin
        .renderer()
        .unwrap()
        .render(&act("crash"), RenderInput::Objects(docs()), &RenderContext::default(), &CallScope::default())
        .unwrap()
        .unwrap_err();
    assert!(crashed[0].message.contains("exited with code 3"), "{:?}", crashed[0].message);
}

#[test]
fn a_kyaml_transformer_keeps_each_objects_file_and_line() {
    let plugin = krm("set-label", quick_go());
    let out = plugin
        .renderer()
        .unwrap()
        .render(
            &json!({"key": "team", "value": "blue"}),
            RenderInput::Objects(docs()),
            &RenderContext::default(),
            &CallScope::default(),
        )
        .unwrap()
        .unwrap();
    let origins: Vec<(String, u32)> = out.iter().map(|d| (d.file.clone(), d.line)).collect();
    assert_eq!(origins, [("app.yaml".to_owned(), 1), ("app.yaml".to_owned(), 5)]);
    for d in &out {
        let value: serde_json::Value = serde_json::from_str(&d.json).unwrap();
        assert_eq!(value["metadata"]["labels"]["team"], "blue", "{value}");
        assert!(value["metadata"].get("annotations").is_none(), "origin annotations leaked: {value}");
    }
}

fn quick_go() -> Limits {
    Limits { timeout: Duration::from_secs(5), ..Limits::default() }
}
