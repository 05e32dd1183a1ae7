//! The conventions kubectl and controller users expect (issue #10, part 4): log formats,
//! no colour codes off a terminal, completions, `moor version`.

use std::path::Path;
use std::process::{Command, Output};

fn moor(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moor"));
    cmd.args(args).env("MOOR_CACHE", crate::support::cache_dir()).env("KUBECONFIG", "/nonexistent");
    cmd.env_remove("MOOR_LOG_FORMAT").env_remove("KUBERNETES_SERVICE_HOST");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn quickstart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart/moor.toml").to_string_lossy().into_owned()
}

#[test]
fn logs_are_json_when_asked_and_in_a_cluster_and_never_carry_colour_codes_off_a_terminal() {
    let config = quickstart();
    let debug = [("MOOR_LOG", "moor=debug")];
    let text = moor(&["plan", &config], &debug);
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "colour codes in a log file:\n{stderr}");

    for (args, env) in [
        (vec!["--log-format", "json", "plan", config.as_str()], vec![debug[0]]),
        (vec!["plan", config.as_str()], vec![debug[0], ("MOOR_LOG_FORMAT", "json")]),
        // In a pod, JSON is the default.
        (vec!["plan", config.as_str()], vec![debug[0], ("KUBERNETES_SERVICE_HOST", "10.0.0.1")]),
    ] {
        let out = moor(&args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
        assert!(!lines.is_empty(), "no JSON lines for {args:?} {env:?}:\n{stderr}");
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        }
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = moor(&["completion", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("moor") && script.contains("allow-mass-prune") && script.contains("kubeconfig"),
            "{shell}"
        );
    }
}

#[test]
fn version_names_moor_the_contract_and_each_built_in_plugin() {
    let out = moor(&["version"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with(&format!("moor {}\n", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains(&format!("contract moor:plugin@{}\n", moor::plugins::CONTRACT_VERSION)), "{text}");
    for name in moor::plugins::builtin_names() {
        assert!(text.contains(&format!("plugin {name} ")), "{name} missing:\n{text}");
    }
    let json = moor(&["version", "--output", "json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["builtin_plugins"]["yaml"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_contract_version_is_the_one_of_the_wit_package() {
    let wit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/plugin.wit")).unwrap();
    assert!(wit.contains(&format!("package moor:plugin@{};", moor::plugins::CONTRACT_VERSION)));
}

#[test]
fn a_file_that_is_not_a_manifest_is_skipped_with_a_warning_naming_it() {
    let dir = crate::support::tree(&[
        ("moor.toml", "[[source]]\nname = \"s\"\npath = \"tree\"\n[[pipeline]]\nname = \"p\"\nsource = \"s\"\n"),
        ("tree/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept}\n"),
        ("tree/values.yaml", "replicas: 2\n"),
        ("tree/list.json", "[{\"apiVersion\": \"v1\"}]\n"),
    ]);
    let out = moor(&["build", dir.path().join("moor.toml").to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: kept"));
    assert!(stderr.contains("values.yaml:1: not a Kubernetes manifest (no apiVersion and kind), skipped"), "{stderr}");
    assert!(stderr.contains("list.json:1: not a Kubernetes manifest (a list, not an object), skipped"), "{stderr}");
}
