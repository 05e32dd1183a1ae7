//! Apply benchmarks against the real control plane, side by side in one run (see
//! BENCHMARKS.md):
//!
//! - P3: a cold apply of 1,000 objects by moor against `kubectl apply --server-side` on the
//!   same files (each into a fresh namespace), median of 3 rounds;
//! - P4: a no-op reconcile of 5,000 objects: wall time and API requests, counted on moor's
//!   client (every HTTP request it sends, discovery included).
//!
//! `cargo bench -p moor-e2e --bench apply` (starts a control plane when none is given).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use moor::apply::{RunOptions, Target};
use moor_e2e::{ApiserverLoad, Project, cluster};

/// 1,000 objects: ConfigMaps, Secrets and selector-less Services, ten to a file.
fn write_objects(dir: &Path, ns: &str, count: usize, kinds: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for file in 0..count / 10 {
        let mut text = String::new();
        for j in 0..10 {
            let i = file * 10 + j;
            let object = match kinds[i % kinds.len()] {
                "ConfigMap" => format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: {ns}\n  labels: {{app: bench, index: '{i}'}}\ndata:\n  key: value-{i}\n  other: some more text for object {i}\n"
                ),
                "Secret" => format!(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i}\n  namespace: {ns}\ntype: Opaque\nstringData:\n  token: token-{i}\n"
                ),
                _ => format!(
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\nspec:\n  ports:\n    - port: 80\n      targetPort: 8080\n"
                ),
            };
            text.push_str("---\n");
            text.push_str(&object);
        }
        std::fs::write(dir.join(format!("objects-{file:03}.yaml")), text).unwrap();
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn counted_target(counter: Arc<AtomicUsize>) -> Target {
    let kubeconfig = Kubeconfig::read_from(&cluster().kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let layer = tower::util::MapRequestLayer::new(move |req| {
        counter.fetch_add(1, Ordering::Relaxed);
        req
    });
    let client = kube::client::ClientBuilder::try_from(config.clone()).unwrap().with_layer(&layer).build();
    Target::from_client(client, config).await.unwrap()
}

async fn moor_apply(project: &Project, target: &Target) -> Duration {
    let builtin: Vec<&str> = moor::plugins::builtin_names().collect();
    let config = moor::config::Config::load(&project.dir.path().join("moor.toml"), &builtin).unwrap();
    let moor = moor::reconcile::Moor::new(&moor_e2e::plugin_cache()).unwrap();
    let started = Instant::now();
    let results = moor
        .apply_config(std::sync::Arc::new(config.clone()), target, None, RunOptions::default(), &|_| {})
        .await
        .results;
    let elapsed = started.elapsed();
    for r in &results {
        assert!(r.ok, "{}: {:?}", r.pipeline, r.error);
    }
    elapsed
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = cluster();
        let client = c.client().await.unwrap();
        let pipeline = "[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\nwait = false\n";

        // Compile the plugins once (a restart loads them from the disk cache): the
        // benchmarks measure applies, not cranelift.
        let warm = Project::new(&client, "warm").await.unwrap();
        warm.config(pipeline);
        write_objects(&warm.dir.path().join("tree"), &warm.ns, 10, &["ConfigMap"]);
        moor_apply(&warm, &counted_target(Arc::default()).await).await;

        // --- P3: cold apply of 1,000 objects
        let kinds = ["ConfigMap", "Secret", "Service"];
        let (mut moor_times, mut kubectl_times) = (Vec::new(), Vec::new());
        // The apiserver's own figures for each side: requests and their mean latency.
        let (mut moor_load, mut kubectl_load) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let project = Project::new(&client, "p3-moor").await.unwrap();
            project.config(pipeline);
            write_objects(&project.dir.path().join("tree"), &project.ns, 1_000, &kinds);
            let target = counted_target(Arc::default()).await;
            let before = ApiserverLoad::read(&client).await;
            moor_times.push(moor_apply(&project, &target).await);
            moor_load.push(ApiserverLoad::read(&client).await.since(&before));

            let ns = c.namespace(&client, "p3-kubectl").await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            write_objects(dir.path(), &ns, 1_000, &kinds);
            let before = ApiserverLoad::read(&client).await;
            let started = Instant::now();
            let out = c.kubectl().args(["apply", "--server-side", "--field-manager=bench", "-R", "-f"]).arg(dir.path()).output().unwrap();
            kubectl_times.push(started.elapsed());
            kubectl_load.push(ApiserverLoad::read(&client).await.since(&before));
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let (m, k) = (median(moor_times.clone()), median(kubectl_times.clone()));
        println!(
            "P3 cold apply, 1,000 objects (median of 3): moor {:.2} s, kubectl apply --server-side {:.2} s, moor is {:.1}x faster (moor {:?}, kubectl {:?})",
            m.as_secs_f64(),
            k.as_secs_f64(),
            k.as_secs_f64() / m.as_secs_f64(),
            moor_times.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>(),
            kubectl_times.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>(),
        );
        let shown = |load: &[(f64, f64)]| {
            load.iter().map(|(n, ms)| format!("{n:.0} requests at {ms:.1} ms")).collect::<Vec<_>>().join(", ")
        };
        println!("   the apiserver's figures: moor {}; kubectl {}", shown(&moor_load), shown(&kubectl_load));

        // --- P4: no-op reconcile of 5,000 objects
        let project = Project::new(&client, "p4").await.unwrap();
        project.config(pipeline);
        write_objects(&project.dir.path().join("tree"), &project.ns, 5_000, &["ConfigMap"]);
        let first = moor_apply(&project, &counted_target(Arc::default()).await).await;
        let mut rounds = Vec::new();
        for _ in 0..3 {
            let counter = Arc::new(AtomicUsize::new(0));
            let target = counted_target(counter.clone()).await;
            let discovery = counter.load(Ordering::Relaxed);
            let elapsed = moor_apply(&project, &target).await;
            rounds.push((elapsed, counter.load(Ordering::Relaxed), discovery));
        }
        for (elapsed, requests, discovery) in &rounds {
            println!(
                "P4 no-op reconcile, 5,000 objects: {:.3} s, {requests} API requests ({discovery} of them discovery, made once per process)",
                elapsed.as_secs_f64()
            );
        }
        println!("   (the first apply of the 5,000 objects took {:.2} s)", first.as_secs_f64());
    });
}
