//! Controller benchmarks against the real control plane (see BENCHMARKS.md):
//!
//! - P5, the shape of Flux's MTTP benchmark: 1,000 pipelines of 4 objects each from one git
//!   repository; the time from starting `moor run` until every pipeline applied, and the
//!   controller's peak RSS (VmHWM);
//! - P6: from a signed webhook to a 10-object change applied, 10 rounds, p50 and max.
//!
//! `cargo bench -p moor-e2e --bench controller` (starts a control plane when none is given).

use std::time::{Duration, Instant};

use moor_e2e::{Controller, Project, cluster, git, webhook_signature};

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

/// The largest resident mappings of a process, for finding where memory goes.
fn rss_by_mapping(pid: u32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut name = String::new();
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            name = fields.get(5).map_or("[anon]", |n| n).to_owned();
        } else if fields.first() == Some(&"Rss:") {
            *by.entry(name.clone()).or_default() += fields[1].parse::<u64>().unwrap_or(0);
        }
    }
    let mut by: Vec<(String, u64)> = by.into_iter().collect();
    by.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    by.iter().take(5).map(|(n, kib)| format!("{n} {:.0}", *kib as f64 / 1024.0)).collect::<Vec<_>>().join(", ")
}

async fn p5(client: &kube::Client) {
    const PIPELINES: usize = 1_000;
    let p = Project::new(client, "p5").await.unwrap();
    let repo = p.dir.path().join("repo");
    for i in 0..PIPELINES {
        let dir = repo.join(format!("apps/app-{i:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ns = &p.ns;
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i}-config\n  namespace: {ns}\ndata:\n  greeting: hello {i}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{i}-secret\n  namespace: {ns}\nstringData:\n  token: t-{i}\n\
             ---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app-{i}\n  namespace: {ns}\n\
             ---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app-{i}\n  namespace: {ns}\nspec:\n  ports:\n    - port: 80\n"
        );
        std::fs::write(dir.join("app.yaml"), text).unwrap();
    }
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "1,000 apps"]);
    let mut pipelines = format!(
        "[[source]]\nname = \"repo\"\ngit = {{ url = \"file://{}\", ref = \"main\" }}\npoll_interval = \"1m\"\n\n",
        repo.display()
    );
    for i in 0..PIPELINES {
        pipelines.push_str(&format!(
            "[[pipeline]]\nname = \"app-{i:04}\"\nsource = \"repo\"\npath = \"apps/app-{i:04}\"\ninterval = \"1h\"\n\n"
        ));
    }
    let config = p.config_with("workers = 8", "", &pipelines);

    let started = Instant::now();
    let moor = Controller::start(BIN, &config, &[], &[("MOOR_LOG", "warn")]).await.unwrap();
    let mut last_report = Instant::now();
    let took = loop {
        let status = moor.status().await.unwrap();
        let pipelines = status["pipelines"].as_array().unwrap();
        let done = pipelines.iter().filter(|p| p["last_run"]["ok"] == true).count();
        let failed: Vec<&serde_json::Value> = pipelines.iter().filter(|p| p["last_run"]["ok"] == false).collect();
        assert!(failed.is_empty(), "a pipeline failed: {}", failed[0]);
        if done == PIPELINES {
            break started.elapsed();
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("P5: {done}/{PIPELINES} applied after {:.1}s", started.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        assert!(started.elapsed() < Duration::from_secs(600), "P5 did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let rss = moor_e2e::peak_rss_mib(moor.child.id());
    eprintln!("P5: resident memory by mapping (MiB): {}", rss_by_mapping(moor.child.id()));
    println!(
        "P5: 1,000 pipelines x 4 objects (one git repository): all applied in {:.1}s; peak RSS {rss:.0} MiB (goals: <= 25 s, <= 100 MiB)",
        took.as_secs_f64()
    );
}

async fn p6(client: &kube::Client) {
    let p = Project::new(client, "p6").await.unwrap();
    let write = |round: usize| {
        let mut text = String::new();
        for j in 0..10 {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{j}\n  namespace: {{ns}}\ndata:\n  round: \"{round}\"\n"
            ));
        }
        p.file("objects.yaml", &text);
    };
    write(0);
    let config = p.config_with(
        "",
        "poll_interval = \"0s\"",
        "[[pipeline]]\nname = \"p6\"\nsource = \"local\"\ninterval = \"1h\"\nwebhook_secret = { env = \"P6_SECRET\" }\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[("P6_SECRET", "p6"), ("MOOR_LOG", "warn")]).await.unwrap();
    moor.runs("p6", 1, 60).await.unwrap();
    let body = r#"{"ref":"refs/heads/main"}"#;
    let signature = webhook_signature(b"p6", body.as_bytes());
    let mut samples = Vec::new();
    for round in 1..=10 {
        write(round);
        let runs = moor.pipeline("p6").await.unwrap()["runs"].as_u64().unwrap();
        let started = Instant::now();
        let (code, text) = moor.post("/hooks/p6", None, &[("x-hub-signature-256", &signature)], body).await.unwrap();
        assert_eq!(code, 202, "{text}");
        loop {
            let p = moor.pipeline("p6").await.unwrap();
            if p["runs"].as_u64().unwrap() > runs {
                assert_eq!(p["last_run"]["ok"], true, "{p}");
                assert_eq!(p["last_run"]["counts"]["applied"], 10, "{p}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "P6: webhook to a 10-object change applied (10 rounds): p50 {:.0} ms, max {:.0} ms (goal: p50 <= 2 s)",
        samples[samples.len() / 2].as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0
    );
}

fn main() {
    moor::init_tls();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = cluster().client().await.unwrap();
        if std::env::var("MOOR_BENCH_ONLY").as_deref() != Ok("p5") {
            p6(&client).await;
        }
        if std::env::var("MOOR_BENCH_ONLY").as_deref() != Ok("p6") {
            p5(&client).await;
        }
    });
}
