//! Plugin benchmarks (prints figures; see BENCHMARKS.md):
//!
//! 1. call overhead: a no-op renderer call on a fresh instance and store, median of many;
//! 2. `yaml` renderer throughput on a generated tree of 5,000 manifests, against the same
//!    renderer code compiled natively into the host doing the same work (read, parse,
//!    emit JSON text, as the component returns).
//!
//! `cargo bench -p moor --bench plugins`

use std::time::{Duration, Instant};

use moor::plugins::{self, CallScope, Limits, PluginSource, RenderContext, RenderInput, Runtime};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(cache.path()).unwrap();

    // --- 1. call overhead
    let probe = runtime
        .load("probe", PluginSource::Inspect(moor_test_artifacts::path("probe").into()), Limits::default())
        .unwrap();
    let noop = serde_json::json!({"action": "noop"});
    let renderer = probe.renderer().unwrap();
    let call = || {
        renderer
            .render(&noop, RenderInput::Objects(Vec::new()), &RenderContext::default(), &CallScope::default())
            .unwrap()
            .unwrap()
    };
    for _ in 0..1_000 {
        call();
    }
    let mut samples: Vec<Duration> = (0..20_000)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect();
    samples.sort();
    println!(
        "call overhead (no-op renderer, fresh instance per call, {} calls): median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.9).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
    );

    if std::env::var_os("MOOR_BENCH_CALLS_ONLY").is_some() {
        return;
    }

    // --- 2. yaml renderer throughput
    let tree = tempfile::tempdir().unwrap();
    let mut bytes = 0;
    for i in 0..5_000 {
        let dir = tree.path().join(format!("team-{:02}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        let text = manifest(i);
        bytes += text.len();
        std::fs::write(dir.join(format!("m{i:04}.yaml")), text).unwrap();
    }
    let yaml = runtime
        .load("yaml", PluginSource::Builtin(plugins::builtin_bytes("yaml").unwrap()), Limits::default())
        .unwrap();
    let config = serde_json::json!({});
    let rounds = 7;
    let mut wasm = Vec::new();
    let mut native = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let docs = yaml
            .renderer()
            .unwrap()
            .render(
                &config,
                RenderInput::Tree { snapshot: tree.path(), path: "" },
                &RenderContext::default(),
                &CallScope::default(),
            )
            .unwrap()
            .unwrap();
        wasm.push(started.elapsed());
        assert_eq!(docs.len(), 5_000);

        // Natively, the same work: read, parse, and emit each object as JSON text.
        let started = Instant::now();
        let objects = moor_plugin_yaml::render_tree(&Default::default(), tree.path(), "").unwrap();
        let json: Vec<String> = objects.iter().map(|o| o.value.to_string()).collect();
        native.push(started.elapsed());
        assert_eq!(json.len(), 5_000);
    }
    wasm.sort();
    native.sort();
    let (w, n) = (percentile(&wasm, 0.5), percentile(&native, 0.5));
    println!(
        "yaml renderer, 5,000 manifests ({:.1} MB), median of {rounds}: wasm {:.0} ms ({:.0} manifests/s), native {:.0} ms ({:.0} manifests/s), wasm/native {:.2}x",
        bytes as f64 / 1e6,
        w.as_secs_f64() * 1e3,
        5_000.0 / w.as_secs_f64(),
        n.as_secs_f64() * 1e3,
        5_000.0 / n.as_secs_f64(),
        w.as_secs_f64() / n.as_secs_f64(),
    );

    // The same manifests in one file: what is left is parsing and copying, not file access.
    let single = tempfile::tempdir().unwrap();
    let all: Vec<String> = (0..5_000).map(manifest).collect();
    std::fs::write(single.path().join("all.yaml"), all.join("---\n")).unwrap();
    let one = time_wasm(&yaml, single.path(), rounds, 5_000);
    println!(
        "yaml renderer, the same 5,000 manifests in one file: wasm {:.0} ms, so about {:.0} µs per file goes to file access",
        one.as_secs_f64() * 1e3,
        (w.as_secs_f64() - one.as_secs_f64()) * 1e6 / 5_000.0,
    );
}

/// Median time of `rounds` renders of `dir` by the sandboxed yaml renderer.
fn time_wasm(yaml: &moor::plugins::Plugin, dir: &std::path::Path, rounds: usize, expect: usize) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let docs = yaml
                .renderer()
                .unwrap()
                .render(
                    &serde_json::json!({}),
                    RenderInput::Tree { snapshot: dir, path: "" },
                    &RenderContext::default(),
                    &CallScope::default(),
                )
                .unwrap()
                .unwrap();
            assert_eq!(docs.len(), expect);
            started.elapsed()
        })
        .collect();
    samples.sort();
    percentile(&samples, 0.5)
}

/// A Deployment, a Service or a ConfigMap, about 30 lines, varying with `i`.
fn manifest(i: usize) -> String {
    let ns = format!("team-{:02}", i % 50);
    match i % 3 {
        0 => format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: {ns}\n  labels:\n    app: app-{i}\n    team: {ns}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n      containers:\n        - name: web\n          image: registry.k8s.io/pause:3.10\n          args: [\"--port\", \"8080\"]\n          ports:\n            - containerPort: 8080\n          resources:\n            requests: {{cpu: 10m, memory: 16Mi}}\n            limits: {{cpu: 100m, memory: 64Mi}}\n"
        ),
        1 => format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\n  labels:\n    app: app-{i}\n  annotations:\n    moor.dev/note: \"generated for the benchmark\"\nspec:\n  selector:\n    app: app-{i}\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n    - name: metrics\n      port: 9090\n      targetPort: 9090\n"
        ),
        _ => format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg-{i}\n  namespace: {ns}\ndata:\n  greeting: hello number {i}\n  config.yaml: |\n    server:\n      port: 8080\n      timeout: 30s\n    features:\n      - a\n      - b\n      - c\n"
        ),
    }
}
