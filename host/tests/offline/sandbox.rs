//! The sandbox holds: time, memory and output limits, no ambient authority, clear traps.

use std::time::{Duration, Instant};

use moor::plugins::{CallError, CallScope, Cap, RenderContext, RenderInput};
use moor::reconcile::{Moor, StageError};
use serde_json::json;

use crate::support::*;

fn act(action: &str) -> serde_json::Value {
    json!({ "action": action })
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    let plugin = probe(quick());
    let started = Instant::now();
    let err = plugin
        .renderer()
        .unwrap()
        .render(&act("loop"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("probe") && err.to_string().contains("500ms"), "{err}");
    assert!(elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    // The same plugin is usable again: every call is a fresh instance.
    assert!(
        plugin
            .renderer()
            .unwrap()
            .render(&act("noop"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
            .unwrap()
            .is_ok()
    );
}

#[test]
fn an_infinite_loop_fails_only_its_own_pipeline() {
    let dir = tree(&[("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")]);
    let probe = probe_path();
    let text = format!(
        r#"
[[source]]
name = "local"
path = "."

[[plugin]]
name = "probe"
path = "{}"
sha256 = "{}"
timeout = "300ms"

[[pipeline]]
name = "stuck"
source = "local"
render = [{{ use = "probe", with = {{ action = "loop" }} }}]

[[pipeline]]
name = "fine"
source = "local"
path = "app"
"#,
        probe.display(),
        sha256_of(&probe)
    );
    let config = config(dir.path(), &text).unwrap();
    let moor = Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(config.clone()));
    let stuck =
        render_offline(&moor, &prepared, config.pipeline("stuck").unwrap(), Default::default(), Default::default())
            .unwrap_err();
    assert!(matches!(*stuck.error, StageError::RenderCall(CallError::Timeout { .. })), "{stuck:?}");
    let fine =
        render_offline(&moor, &prepared, config.pipeline("fine").unwrap(), Default::default(), Default::default())
            .unwrap();
    assert_eq!(fine.objects.len(), 1);
}

#[test]
fn a_memory_hog_hits_the_cap() {
    let plugin = probe(quick());
    let err = plugin
        .renderer()
        .unwrap()
        .render(&act("hog"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
        .unwrap_err();
    assert!(matches!(err, CallError::Memory { limit, .. } if limit == 64 << 20), "{err:?}");
    assert_eq!(err.to_string(), "plugin `probe` hit its memory limit of 64 MiB");
}

#[test]
fn a_calls_cap_tightens_the_plugins_limits_and_never_loosens_them() {
    let plugin = probe(quick());
    let call = |action: &str, cap: Cap| {
        let scope = CallScope { cap, ..CallScope::default() };
        plugin.renderer().unwrap().render(&act(action), RenderInput::Objects(vec![]), &RenderContext::default(), &scope)
    };
    let tight = Cap { memory: Some(16 << 20), timeout: Some(Duration::from_millis(100)) };
    let err = call("hog", tight).unwrap_err();
    assert!(matches!(err, CallError::Memory { limit, .. } if limit == 16 << 20), "{err:?}");
    let started = Instant::now();
    let err = call("loop", tight).unwrap_err();
    assert!(matches!(err, CallError::Timeout { limit, .. } if limit == Duration::from_millis(100)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(450), "{:?}", started.elapsed());
    let loose = Cap { memory: Some(1 << 30), timeout: Some(Duration::from_secs(60)) };
    let err = call("hog", loose).unwrap_err();
    assert!(matches!(err, CallError::Memory { limit, .. } if limit == 64 << 20), "{err:?}");
}

#[test]
fn a_plugin_sees_no_files_outside_its_snapshot_no_env_and_no_network() {
    // SAFETY of the assertion: a variable the host surely has.
    assert!(std::env::var("PATH").is_ok());
    let outside = tree(&[("passwd", "root:x:0:0")]);
    let snapshot = tree(&[("ok.yaml", "a: 1\n")]);
    std::os::unix::fs::symlink(outside.path().join("passwd"), snapshot.path().join("escape")).unwrap();

    let plugin = probe(quick());
    let docs = plugin
        .renderer()
        .unwrap()
        .render(
            &act("snoop"),
            RenderInput::Tree { snapshot: snapshot.path(), path: "" },
            &RenderContext::default(),
            &CallScope::default(),
        )
        .unwrap()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&docs[0].json).unwrap();
    let data = &report["data"];
    assert_eq!(data["env"], "", "env leaked: {data}");
    assert_eq!(data["args"], "", "args leaked: {data}");
    let reads: Vec<serde_json::Value> = serde_json::from_str(data["reads"].as_str().unwrap()).unwrap();
    for read in &reads {
        assert!(read["file"].as_str().unwrap().starts_with("Err"), "read succeeded: {read}");
    }
    // `/` is not readable; only the snapshot mount exists.
    assert!(reads.iter().all(|r| r["dir"].as_str().unwrap().starts_with("Err")), "{reads:?}");
    assert!(data["write"].as_str().unwrap().starts_with("Err"), "{data}");
    assert!(data["connect"].as_str().unwrap().starts_with("Err"), "{data}");
    assert!(!snapshot.path().join("planted").exists());
}

#[test]
fn a_hundred_megabytes_of_output_is_refused() {
    let plugin = probe(moor::plugins::Limits { memory: 512 << 20, timeout: Duration::from_secs(20), ..quick() });
    let err = plugin
        .renderer()
        .unwrap()
        .render(&act("flood"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
        .unwrap_err();
    match err {
        CallError::Output { size, limit, .. } => {
            assert!(size > 100 << 20, "{size}");
            assert_eq!(limit, 64 << 20);
        }
        other => panic!("expected an output error, got {other:?}"),
    }
}

#[test]
fn a_trap_is_a_clear_error_naming_the_plugin() {
    let plugin = probe(quick());
    let err = plugin
        .renderer()
        .unwrap()
        .render(&act("trap"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
        .unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("plugin `probe` crashed:"), "{text}");
}

#[test]
fn chatty_plugins_are_capped_and_still_succeed() {
    // Megabytes of stdout and stderr: kept up to the cap, the rest dropped, no failure.
    let plugin = probe(moor::plugins::Limits { timeout: Duration::from_secs(30), ..quick() });
    let result = plugin
        .renderer()
        .unwrap()
        .render(&act("chatter"), RenderInput::Objects(vec![]), &RenderContext::default(), &CallScope::default())
        .unwrap();
    assert!(result.is_ok());
}

#[test]
fn a_secret_given_to_a_step_never_reaches_the_log_or_the_errors() {
    let dir = tree(&[("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")]);
    let probe = probe_path();
    let text = format!(
        "[[plugin]]\nname = \"probe\"\npath = \"{}\"\nsha256 = \"{}\"\n\n[[source]]\nname = \"local\"\npath = \".\"\n\n\
         [[pipeline]]\nname = \"leaky\"\nsource = \"local\"\n\
         render = [{{ use = \"probe\", with = {{ action = \"leak\" }}, secrets = {{ token = {{ env = \"PROBE_TOKEN\" }} }} }}]\n",
        probe.display(),
        sha256_of(&probe)
    );
    std::fs::write(dir.path().join("moor.toml"), text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moor"))
        .args(["build", dir.path().join("moor.toml").to_str().unwrap()])
        .env("MOOR_CACHE", cache_dir())
        .env("MOOR_LOG", "info")
        .env("PROBE_TOKEN", "hunter2-secret-value")
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the probe fails on purpose: {all}");
    assert!(!all.contains("hunter2"), "the secret leaked:\n{all}");
    for redacted in ["my token is ***", "stdout: token ***", "failed with token ***"] {
        assert!(all.contains(redacted), "{redacted:?} missing:\n{all}");
    }
}

#[test]
fn a_tenants_own_plugin_runs_pinned_under_the_tenants_limits_and_sees_nothing_of_the_host() {
    // The platform lets team-a bring its own plugins, with calls of at most 32 MiB and 1 s.
    let platform = tree(&[]);
    let text = "[[source]]\nname = \"s\"\npath = \".\"\n\n[[tenant]]\nname = \"team-a\"\nsource = { path = \"a\" }\n\
                namespaces = [\"team-a\"]\nservice_account = \"team-a/deployer\"\nown_plugins = true\n\
                limits = { memory = \"32MiB\", time = \"1s\" }\n";
    let mut config = config(platform.path(), text).unwrap();
    // Its repository holds the plugin, pinned by its config, which asks for far more.
    let probe = std::fs::read(probe_path()).unwrap();
    let team = tree(&[("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")]);
    std::fs::write(team.path().join("probe.wasm"), &probe).unwrap();
    let team_config = format!(
        "[[plugin]]\nname = \"probe\"\npath = \"probe.wasm\"\nsha256 = \"{}\"\nmemory = \"512MiB\"\ntimeout = \"60s\"\n\n\
         [[source]]\nname = \"s\"\npath = \".\"\n\n\
         [[pipeline]]\nname = \"hog\"\nsource = \"s\"\nrender = [{{ use = \"probe\", with = {{ action = \"hog\" }} }}]\n\n\
         [[pipeline]]\nname = \"loop\"\nsource = \"s\"\nrender = [{{ use = \"probe\", with = {{ action = \"loop\" }} }}]\n\n\
         [[pipeline]]\nname = \"snoop\"\nsource = \"s\"\nrender = [{{ use = \"probe\", with = {{ action = \"snoop\" }} }}]\n",
        sha256_of(&probe_path())
    );
    let admitted = config.parse_tenant(0, team.path(), "1a2b", team_config.clone()).unwrap();
    config.admit(admitted);
    let moor = Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(config.clone()));
    let run = |name: &str| {
        render_offline(&moor, &prepared, config.pipeline(name).unwrap(), Default::default(), Default::default())
    };

    let hog = run("team-a/hog").unwrap_err();
    assert!(
        matches!(&*hog.error, StageError::RenderCall(CallError::Memory { limit, .. }) if *limit == 32 << 20),
        "{hog:?}"
    );
    assert!(hog.to_string().contains("plugin `team-a/probe`"), "{hog}");
    let started = Instant::now();
    let stuck = run("team-a/loop").unwrap_err();
    assert!(
        matches!(&*stuck.error, StageError::RenderCall(CallError::Timeout { limit, .. }) if *limit == Duration::from_secs(1)),
        "{stuck:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let snoop = run("team-a/snoop").unwrap();
    let data = &snoop.objects[0].value["data"];
    assert_eq!(data["env"], "", "{data}");
    assert!(data["connect"].as_str().is_some_and(|c| c.starts_with("Err")), "{data}");

    // A different binary at the pinned path does not load.
    std::fs::write(team.path().join("probe.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let mut config = self::config(platform.path(), text).unwrap();
    config.admit(config.parse_tenant(0, team.path(), "3c4d", team_config).unwrap());
    let prepared = moor.prepare(std::sync::Arc::new(config.clone()));
    let e = render_offline(
        &moor,
        &prepared,
        config.pipeline("team-a/snoop").unwrap(),
        Default::default(),
        Default::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("sha256"), "{e}");
}
