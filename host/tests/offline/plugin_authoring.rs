//! The plugin author's loop in every language: `moor plugin new`, the project's `build.sh`
//! and `test.sh` (which runs `moor plugin test`), `moor plugin inspect`; and the example
//! plugins in Python and JavaScript, built and tested the same way.

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

/// The PATH prefix with componentize-py and componentize-qjs (scripts/plugin-tools installs
/// them once per machine, from PyPI and npm).
fn plugin_tools(root: &Path) -> String {
    let out = Command::new(root.join("scripts/plugin-tools")).output().expect("scripts/plugin-tools runs");
    assert!(out.status.success(), "scripts/plugin-tools: {}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs a project's `build.sh` then its `test.sh` (which runs `moor plugin test` and checks
/// the result), as its author would, without CI's flags and lint wrapper.
fn build_and_test(dir: &Path, tools: &str, target: &Path) {
    let path = format!("{tools}:{}", std::env::var("PATH").unwrap());
    for script in ["build.sh", "test.sh"] {
        let out = Command::new(dir.join(script))
            .current_dir(dir)
            .env("PATH", &path)
            .env("MOOR", env!("CARGO_BIN_EXE_moor"))
            .env("MOOR_CACHE", crate::support::cache_dir())
            .env("CARGO_TARGET_DIR", target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .output()
            .unwrap();
        assert!(out.status.success(), "{} {script}: {}", dir.display(), text(&out));
    }
}

#[test]
fn a_new_plugin_in_every_language_and_kind_builds_and_passes_its_own_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tools = plugin_tools(root);
    let dir = tempfile::tempdir().unwrap();
    // One target directory for the Rust projects, kept between runs, so deps build once.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugin-new-test");

    for (lang, kinds) in [
        ("rust", &["renderer", "validator", "notifier", "source"][..]),
        ("python", &["renderer", "validator"][..]),
        ("js", &["renderer", "validator"][..]),
        ("go", &["renderer", "validator"][..]),
    ] {
        for kind in kinds {
            let name = format!("{lang}-{kind}");
            let out =
                moor(&["plugin", "new", &name, "--kind", kind, "--lang", lang, "--dir", dir.path().to_str().unwrap()]);
            assert!(out.status.success(), "{}", text(&out));
            let project = dir.path().join(&name);
            assert!(project.join("README.md").exists() && project.join("testdata/testdata.yaml").exists());
            build_and_test(&project, &tools, &target);

            let wasm = project.join(format!("{name}.wasm"));
            let out = moor(&["plugin", "inspect", wasm.to_str().unwrap(), "--output", "json"]);
            assert!(out.status.success(), "{}", text(&out));
            let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let want = if lang == "go" { ("krm-function", "renderer") } else { ("component", *kind) };
            assert_eq!((info["flavor"].as_str(), info["kind"].as_str()), (Some(want.0), Some(want.1)), "{info}");
            assert_eq!(info["name"].as_str(), Some(name.as_str()), "{info}");
        }
    }

    let out =
        moor(&["plugin", "new", "x", "--kind", "source", "--lang", "python", "--dir", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Python plugins can be renderers or validators; write sources in Rust"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_python_and_javascript_example_plugins_build_and_pass_their_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tools = plugin_tools(root);
    let target = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for lang in ["python", "js"] {
        let mut examples: Vec<_> = std::fs::read_dir(root.join("examples/plugins").join(lang))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("build.sh").exists())
            .collect();
        examples.sort();
        for example in examples {
            build_and_test(&example, &tools, target.path());
            seen.push(format!("{lang}/{}", example.file_name().unwrap().to_string_lossy()));
        }
    }
    assert_eq!(
        seen,
        ["python/common-labels", "python/image-allowlist", "js/image-tags", "js/require-limits"],
        "a renderer and a validator in each language"
    );
    one_pipeline_with_plugins_in_every_language(root);
}

/// One pipeline whose chains mix the languages: renderers in Python, JavaScript and Go
/// (KRM) after `yaml`, validators in the same three, pinned by sha256 like any plugin.
fn one_pipeline_with_plugins_in_every_language(root: &Path) {
    let examples = root.join("examples/plugins");
    let plugins = [
        ("common-labels", examples.join("python/common-labels/common-labels.wasm")),
        ("image-allowlist", examples.join("python/image-allowlist/image-allowlist.wasm")),
        ("image-tags", examples.join("js/image-tags/image-tags.wasm")),
        ("require-limits", examples.join("js/require-limits/require-limits.wasm")),
        ("set-label", moor_test_artifacts::path("set-label").into()),
        ("require-label", moor_test_artifacts::path("require-label").into()),
    ];
    let mut config = String::new();
    for (name, path) in &plugins {
        let sha = crate::support::sha256_of(path);
        config.push_str(&format!("[[plugin]]\nname = {name:?}\npath = {:?}\nsha256 = {sha:?}\n\n", path.display()));
    }
    config.push_str(
        r#"[[source]]
name = "app"
path = "manifests"

[[pipeline]]
name = "web"
source = "app"
target_namespace = "shop"
render = [
  { use = "yaml" },
  { use = "common-labels", with = { labels = { team = "payments" } } },
  { use = "image-tags", with = { images = [{ name = "ghcr.io/acme/web", digest = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945" }] } },
  { use = "set-label", with = { key = "reviewed", value = "yes" } },
]
validate = [
  { use = "image-allowlist", with = { allowed = ["ghcr.io/acme/"] } },
  { use = "require-limits" },
  { use = "require-label", with = { key = "owner" } },
]
"#,
    );
    let deployment = |name: &str, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{owner: shop}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n        - name: {name}\n          image: {image}\n          resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{cpu: 500m, memory: 128Mi}}}}\n"
        )
    };
    let dir = crate::support::tree(&[
        ("moor.toml", &config),
        ("manifests/web.yaml", &deployment("web", "ghcr.io/acme/web:1.4.0")),
    ]);
    let file = dir.path().join("moor.toml");
    let plan = || {
        Command::new(env!("CARGO_BIN_EXE_moor"))
            .args(["plan", file.to_str().unwrap(), "--output", "json"])
            .env("MOOR_CACHE", crate::support::cache_dir())
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap()
    };

    // The image pinned by the JavaScript renderer passes the Python validator; limits and
    // the owner label pass the JavaScript and Go validators.
    let out = moor(&["build", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let built = String::from_utf8_lossy(&out.stdout);
    for want in [
        "team: payments",
        "reviewed: yes",
        "image: ghcr.io/acme/web@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ] {
        assert!(built.contains(want), "{want}: {built}");
    }
    assert!(plan().status.success(), "{}", text(&plan()));

    // An image from elsewhere: the Python validator blocks the pipeline, at the file and
    // line of the object; the others have nothing to say.
    std::fs::write(dir.path().join("manifests/cache.yaml"), deployment("cache", "docker.io/library/redis:7")).unwrap();
    let out = plan();
    assert!(!out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = &report["pipelines"][0]["findings"];
    assert_eq!(
        findings,
        &serde_json::json!([{
            "severity": "error",
            "message": "image docker.io/library/redis:7 is not from an allowed registry (ghcr.io/acme/)",
            "file": "cache.yaml",
            "line": 1,
            "object": "Deployment/cache",
            "plugin": "image-allowlist",
        }]),
        "{report}"
    );
}

/// `moor plugin test --as` runs a KRM function as either kind, and refuses to run a
/// component as another kind than its own, naming both.
#[test]
fn plugin_test_as_another_kind_is_refused_for_a_component() {
    let component = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/contract-0.1/deny-kinds.wasm");
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart/manifests");
    let out =
        moor(&["plugin", "test", component.to_str().unwrap(), "--as", "renderer", "--input", input.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("plugin `deny-kinds` is a validator; it cannot run as a renderer"), "{}", text(&out));

    let krm = moor_test_artifacts::path("require-label");
    let out = moor(&[
        "plugin",
        "test",
        krm,
        "--as",
        "validator",
        "--input",
        input.to_str().unwrap(),
        "--with",
        r#"{"key": "no-such-label"}"#,
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("error: missing label no-such-label"), "{}", text(&out));
}
