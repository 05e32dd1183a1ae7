//! The Go renderers against their native tools (issue #11; figures in BENCHMARKS.md):
//!
//! 1. first compile of `kustomize.wasm` and `helm.wasm` into an empty cache: time, the
//!    compiled form's size, and the process's peak RSS after it;
//! 2. a render from the compiled cache (module loaded once, a fresh instance per call, as
//!    the controller does), median of 20, against the native `kustomize build` and
//!    `helm template` processes on the same input, median of 20: podinfo's dev overlay and
//!    its chart with `values-prod.yaml`.
//!
//! The native tools come from `tests/cluster/build`, the Go plugins from
//! `scripts/go-plugins`:
//!
//! `PATH=$(tests/cluster/build):$PATH cargo bench -p moor --bench go_renderers`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use moor::plugins::{CallScope, Limits, RenderContext, RenderInput, Runtime};

/// The median time of `rounds` runs of `f`.
fn median_of(rounds: usize, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/realworld/podinfo");
    let machine_cache = Path::new(&std::env::var("MOOR_CACHE").expect("MOOR_CACHE (source scripts/env.sh)")).to_owned();
    // An empty cache with the machine's Go plugins: the first load compiles.
    let cache = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(machine_cache.join("go-plugins"), cache.path().join("go-plugins")).unwrap();
    let runtime = Runtime::new(cache.path()).unwrap();
    let limits = Limits { timeout: Duration::from_secs(120), ..Limits::default() };

    let mut plugins = Vec::new();
    for name in ["kustomize", "helm"] {
        let started = Instant::now();
        let plugin = runtime.load(name, runtime.standard(name).unwrap(), limits).unwrap();
        let compile = started.elapsed();
        let compiled: u64 = walk_size(&cache.path().join("compiled"));
        println!(
            "{name}: first compile {:.1} s; compiled cache now {:.0} MB; peak RSS so far {:.0} MiB",
            compile.as_secs_f64(),
            compiled as f64 / 1e6,
            peak_rss_mib()
        );
        plugins.push(plugin);
    }
    let (kustomize, helm) = (&plugins[0], &plugins[1]);
    let context = RenderContext { pipeline: "podinfo".into(), namespace: "apps".into(), cluster: None };

    // Loading from the compiled cache, as a restarted controller does.
    let started = Instant::now();
    let reloaded = Runtime::new(cache.path()).unwrap();
    let again = reloaded.load("helm", reloaded.standard("helm").unwrap(), limits).unwrap();
    println!("helm: load from the compiled cache {}", ms(started.elapsed()));
    drop(again);

    let rounds = 20;
    let overlay = data.join("deploy");
    let wasm = median_of(rounds, || {
        let input = RenderInput::Tree { snapshot: &overlay, path: "overlays/dev" };
        let docs = kustomize
            .renderer()
            .unwrap()
            .render(&serde_json::json!({}), input, &context, &CallScope::default())
            .unwrap()
            .unwrap();
        assert!(docs.len() >= 8);
    });
    let native = median_of(rounds, || {
        let out = Command::new("kustomize").arg("build").arg(overlay.join("overlays/dev")).output().unwrap();
        assert!(out.status.success());
    });
    println!(
        "kustomize, podinfo deploy/overlays/dev: Moor {} a render, native `kustomize build` {} ({:.2}×)",
        ms(wasm),
        ms(native),
        wasm.as_secs_f64() / native.as_secs_f64()
    );

    let charts = data.join("charts");
    let config = serde_json::json!({"chart": "podinfo", "values": ["podinfo/values-prod.yaml"]});
    let wasm = median_of(rounds, || {
        let input = RenderInput::Tree { snapshot: &charts, path: "" };
        let docs = helm.renderer().unwrap().render(&config, input, &context, &CallScope::default()).unwrap().unwrap();
        assert!(docs.len() >= 5);
    });
    let native = median_of(rounds, || {
        let out = Command::new("helm")
            .current_dir(&charts)
            .args(["template", "podinfo", "podinfo", "--namespace", "apps", "--include-crds", "--skip-tests"])
            .args(["-f", "podinfo/values-prod.yaml"])
            .output()
            .unwrap();
        assert!(out.status.success());
    });
    println!(
        "helm, podinfo chart with values-prod.yaml: Moor {} a render, native `helm template` {} ({:.2}×)",
        ms(wasm),
        ms(native),
        wasm.as_secs_f64() / native.as_secs_f64()
    );
    println!("peak RSS of the bench process: {:.0} MiB", peak_rss_mib());
}

fn walk_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { walk_size(&path) } else { e.metadata().map(|m| m.len()).unwrap_or(0) }
        })
        .sum()
}
