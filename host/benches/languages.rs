//! The plugin author's languages, side by side (prints figures; see BENCHMARKS.md): for a
//! validator made by `moor plugin new --lang L --kind validator` in Rust, Python,
//! JavaScript and Go (KRM),
//!
//! 1. the author's loop: `moor plugin new`, then `./build.sh`, then `./test.sh`, timed;
//! 2. the module's size;
//! 3. the first load (compiled into an empty cache) and a load from the cache;
//! 4. a call with no objects (fresh instance: the instantiation dominates), median;
//! 5. a call over 1,000 objects, median.
//!
//! `cargo bench -p moor --bench languages` (installs componentize-py and componentize-qjs
//! through scripts/plugin-tools when missing).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use moor::plugins::{CallScope, Document, Limits, PluginSource, Runtime};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tools = Command::new(root.join("scripts/plugin-tools")).output().unwrap();
    assert!(tools.status.success());
    let path = format!("{}:{}", String::from_utf8(tools.stdout).unwrap().trim(), std::env::var("PATH").unwrap());
    let moor = env!("CARGO_BIN_EXE_moor");
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let objects: Vec<Document> = (0..1_000)
        .map(|i| Document {
            json: serde_json::json!({
                "apiVersion": "v1", "kind": if i % 10 == 0 { "Service" } else { "ConfigMap" },
                "metadata": {"name": format!("object-{i}"), "labels": {"app": "bench"}},
                "data": {"key": "value"},
            })
            .to_string(),
            file: format!("m{i:04}.yaml"),
            line: 1,
        })
        .collect();
    let config = serde_json::json!({"deny_kinds": ["Service"]});

    println!(
        "| language | new | build | test | size | first load | cached load | call, no objects | call, 1,000 objects |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for lang in ["rust", "python", "js", "go"] {
        let name = format!("bench-{lang}");
        let project = work.path().join(&name);
        // The project's own script, run as its author would.
        let script = |name: &str| {
            let mut cmd = Command::new(project.join(name));
            cmd.current_dir(&project)
                .env("PATH", &path)
                .env("MOOR", moor)
                .env("MOOR_CACHE", cache.path())
                .env("CARGO_TARGET_DIR", work.path().join("target"))
                .env_remove("RUSTC_WORKSPACE_WRAPPER");
            cmd
        };
        let new = timed(|| {
            run(Command::new(moor)
                .args(["plugin", "new", &name, "--lang", lang, "--kind", "validator", "--dir"])
                .arg(work.path()))
        });
        let build = timed(|| run(&mut script("build.sh")));
        let wasm = project.join(format!("{name}.wasm"));
        let size = std::fs::metadata(&wasm).unwrap().len();
        // The test compiles the module into the cache: measured on its own below.
        let fresh = tempfile::tempdir().unwrap();
        let first = timed(|| {
            Runtime::new(fresh.path())
                .unwrap()
                .load(&name, PluginSource::Inspect(wasm.clone()), Limits::default())
                .map(drop)
                .unwrap()
        });
        let test = timed(|| run(&mut script("test.sh")));
        let runtime = Runtime::new(fresh.path()).unwrap();
        let mut plugin = None;
        let cached = timed(|| {
            plugin = Some(runtime.load(&name, PluginSource::Inspect(wasm.clone()), Limits::default()).unwrap())
        });
        let plugin = plugin.unwrap();
        let call = |docs: &[Document]| {
            timed(|| {
                plugin.validator().unwrap().validate(&config, docs, &CallScope::default()).unwrap().unwrap();
            })
        };
        let empty = median((0..50).map(|_| call(&[])).collect());
        let full = median((0..10).map(|_| call(&objects)).collect());
        let found =
            plugin.validator().unwrap().validate(&config, &objects, &CallScope::default()).unwrap().unwrap().len();
        assert_eq!(found, 100, "{lang}: one error per Service");
        println!(
            "| {lang} | {:.2} s | {:.1} s | {:.1} s | {:.1} MB | {:.1} s | {:.0} ms | {:.2} ms | {:.1} ms |",
            new.as_secs_f64(),
            build.as_secs_f64(),
            test.as_secs_f64(),
            size as f64 / 1e6,
            first.as_secs_f64(),
            cached.as_secs_f64() * 1e3,
            empty.as_secs_f64() * 1e3,
            full.as_secs_f64() * 1e3,
        );
    }
}
