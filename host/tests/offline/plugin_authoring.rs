//! The plugin author's loop: `moor plugin new` for every kind, build for wasm32-wasip2,
//! `moor plugin inspect`, `moor plugin test`.

use std::path::Path;
use std::process::Command;

fn moor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_moor"))
        .args(args)
        .env("MOOR_CACHE", crate::support::cache_dir())
        .output()
        .expect("moor runs")
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_new_plugin_of_every_kind_builds_inspects_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let sdk = root.join("plugins/sdk");
    let dir = tempfile::tempdir().unwrap();
    // One target directory for the four crates, kept between runs, so deps build once.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugin-new-test");
    let manifests = root.join("examples/quickstart/manifests");

    for (kind, name, with, expect) in [
        ("renderer", "add-label", r#"{"label": "reviewed"}"#, "reviewed: 'true'"),
        (
            "validator",
            "no-services",
            r#"{"deny_kinds": ["Service"]}"#,
            "kind `Service` is not allowed (Service/quickstart/hello) [no-services]",
        ),
        ("notifier", "say", r#"{"prefix": "> "}"#, ""),
        ("source", "make-ns", r#"{"namespace": "made"}"#, "file: namespace.yaml"),
    ] {
        let out = moor(&[
            "plugin",
            "new",
            name,
            "--kind",
            kind,
            "--dir",
            dir.path().to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let build = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .current_dir(dir.path().join(name))
            .env("CARGO_TARGET_DIR", &target)
            // Built as its author builds it: without CI's flags and lint wrapper.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .output()
            .unwrap();
        assert!(build.status.success(), "{kind}: {}", text(&build));
        let wasm = target.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));

        let out = moor(&["plugin", "inspect", wasm.to_str().unwrap(), "--output", "json"]);
        assert!(out.status.success(), "{}", text(&out));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((info["name"].as_str(), info["kind"].as_str()), (Some(name), Some(kind)), "{info}");

        let mut args =
            vec!["plugin", "test", wasm.to_str().unwrap(), "--with", with, "--input", manifests.to_str().unwrap()];
        if kind == "renderer" {
            args.push("--after-yaml");
        }
        let out = moor(&args);
        let shown = text(&out);
        assert!(shown.contains(expect), "{kind}: {shown}");
        // A summary, always, even when the plugin returns nothing to show.
        let summary = match kind {
            "renderer" => "summary: 4 objects in, 4 out; 0 errors, 0 warnings, 0 infos; ",
            "validator" => "summary: 4 objects in, 0 out; 1 error, 0 warnings, 0 infos; ",
            "notifier" => "summary: 0 out; 0 errors, 0 warnings, 0 infos; ",
            _ => "summary: 1 out; 0 errors, 0 warnings, 0 infos; ",
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.lines().any(|l| l.starts_with(summary) && l.ends_with(" ms")), "{kind}: {shown}");
        assert_eq!(out.status.success(), kind != "validator", "{kind}: {shown}");
    }
}
