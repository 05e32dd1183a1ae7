//! Loading plugins: pins, non-components, foreign worlds, contract versions, the cache.

use moor::plugins::{CallScope, Limits, LoadError, PluginKind, PluginSource, Runtime};

use crate::support::*;

fn load_file(path: &std::path::Path, sha256: &str) -> Result<moor::plugins::Plugin, LoadError> {
    runtime().load("p", PluginSource::File { path: path.to_owned(), sha256: sha256.to_owned() }, Limits::default())
}

#[test]
fn a_wrong_sha256_pin_refuses_to_load() {
    let path = probe_path();
    let err = load_file(&path, &"0".repeat(64)).unwrap_err();
    assert!(matches!(err, LoadError::HashMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains("refusing to load"), "{text}");
    assert!(load_file(&path, &sha256_of(&path)).is_ok());
}

/// A core module is taken for a KRM function (issue #11); one that is no WASI command is
/// refused, saying how to build one.
#[test]
fn a_core_module_that_is_not_a_krm_command_is_refused() {
    let dir = tree(&[]);
    let file = dir.path().join("core.wasm");
    std::fs::write(&file, b"\0asm\x01\0\0\0").unwrap();
    let err = load_file(&file, &sha256_of(&file)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("core.wasm") && text.contains("exports no `_start`"), "{text}");
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = tree(&[("plugin.wasm", "#!/bin/sh\necho hi\n")]);
    let file = dir.path().join("plugin.wasm");
    let err = load_file(&file, &sha256_of(&file)).unwrap_err();
    assert!(err.to_string().contains("not WebAssembly at all"), "{err}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let dir = tree(&[]);
    let file = dir.path().join("empty.wasm");
    // The smallest valid component: it exports nothing.
    std::fs::write(&file, b"\0asm\x0d\0\x01\0").unwrap();
    let err = load_file(&file, &sha256_of(&file)).unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("empty.wasm") && text.contains("moor:plugin/render@0.1.0"), "{text}");
}

/// Rewrites the contract version the component claims, keeping the binary valid.
fn with_contract(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while let Some(at) = out[i..].windows(from.len()).position(|w| w == from.as_bytes()) {
        out[i + at..i + at + to.len()].copy_from_slice(to.as_bytes());
        i += at + to.len();
    }
    out
}

#[test]
fn a_plugin_for_a_newer_contract_is_refused_with_both_versions() {
    let dir = tree(&[]);
    let file = dir.path().join("future.wasm");
    let bytes = std::fs::read(probe_path()).unwrap();
    std::fs::write(&file, with_contract(&bytes, "moor:plugin/render@0.1.0", "moor:plugin/render@0.9.0")).unwrap();
    let err = load_file(&file, &sha256_of(&file)).unwrap_err();
    assert!(matches!(err, LoadError::Version { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("future.wasm") && text.contains("moor:plugin@0.9.0") && text.contains("needs a newer moor"),
        "{text}"
    );
}

#[test]
fn builtin_plugins_describe_themselves() {
    let yaml = builtin("yaml");
    assert_eq!(yaml.info.name, "yaml");
    assert_eq!(yaml.kind(), PluginKind::Renderer);
    assert_eq!(yaml.info.contract, "0.1.0");
    assert!(yaml.check_config(&serde_json::json!({"ignore": ["*.tmpl.yaml"]})).is_ok());
    let errors = yaml.check_config(&serde_json::json!({"ignore": "x", "bogus": 1})).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(builtin("policy").kind(), PluginKind::Validator);
    assert_eq!(builtin("hello-renderer").info.name, "hello-renderer");
    // The `status-notifier` world is found by its extra export; plain notifiers are not told starts.
    let github = builtin("github-status");
    assert!(
        github.notifier().unwrap().tells_starts()
            && github.info.capabilities.iter().any(|c| c.starts_with("run start"))
    );
    // So is the `tree-renderer` world: `sops` rewrites the tree it is given, `yaml` does not.
    let sops = builtin("sops");
    assert!(
        sops.renderer().unwrap().tree_rewriter().is_some()
            && sops.info.capabilities.iter().any(|c| c.starts_with("tree rewrite"))
    );
    assert!(
        yaml.renderer().unwrap().tree_rewriter().is_none()
            && !yaml.info.capabilities.iter().any(|c| c.starts_with("tree rewrite"))
    );
    let slack = builtin("slack");
    assert_eq!(slack.kind(), PluginKind::Notifier);
    assert!(
        !slack.notifier().unwrap().tells_starts()
            && !slack.info.capabilities.iter().any(|c| c.starts_with("run start"))
    );
}

#[test]
fn compiled_components_are_cached_on_disk_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let source = || PluginSource::Inspect(probe_path());
    let first = Runtime::new(cache.path()).unwrap();
    first.load("probe", source(), Limits::default()).unwrap();
    drop(first);
    let compiled: Vec<_> = walkdir::WalkDir::new(cache.path().join("compiled"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .map(|e| e.into_path())
        .collect();
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    let name = compiled[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name, format!("{}.cwasm", sha256_of(&probe_path())));
    let written = std::fs::metadata(&compiled[0]).unwrap().modified().unwrap();

    let second = Runtime::new(cache.path()).unwrap();
    second.load("probe", source(), Limits::default()).unwrap();
    assert_eq!(std::fs::metadata(&compiled[0]).unwrap().modified().unwrap(), written, "recompiled instead of reusing");
}

/// A component built for contract 0.1 (`moor plugin new deny-kinds --kind validator`, kept
/// as built: tests/data/contract-0.1/README.md) loads and runs, whatever the contract has
/// become since.
#[test]
fn a_component_built_for_contract_0_1_still_loads_and_validates() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/contract-0.1/deny-kinds.wasm");
    let plugin = load_file(&file, "7fea2b0231a5cabe783e933584430251fb8f0e4654f64f66c485ce3060136af1").unwrap();
    assert_eq!((plugin.info.name.as_str(), plugin.info.contract.as_str()), ("deny-kinds", "0.1.0"));
    assert_eq!(plugin.kind(), PluginKind::Validator);
    let docs = vec![moor::plugins::Document {
        json: serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}).to_string(),
        file: "app.yaml".into(),
        line: 7,
    }];
    let diagnostics = plugin
        .validator()
        .unwrap()
        .validate(&serde_json::json!({"deny_kinds": ["Service"]}), &docs, &CallScope::default())
        .unwrap()
        .unwrap();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    assert_eq!(
        (d.message.as_str(), d.file.as_deref(), d.line),
        ("kind `Service` is not allowed", Some("app.yaml"), Some(7))
    );
    assert_eq!(d.severity, moor::plugins::Severity::Error);
}
