//! Helm repository sources (issue #11): a real Helm HTTP repository (charts packaged and
//! indexed by the native `helm package` and `helm repo index`, served by a static file
//! server on loopback) feeds the `helm` renderer; version ranges pick the newest match,
//! and a chart whose bytes differ from the index's digest is refused.

use std::path::Path;
use std::process::{Child, Command};

use moor_e2e::{cluster, free_port, plugin_cache, repo_root};

/// A static file server on loopback (Python's), stopped when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, port: u16) -> Served {
    let child = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 serves the repository");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Served(child)
}

fn helm(dir: &Path, args: &[&str]) {
    let out = Command::new(cluster().bin.join("helm")).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Renders pipeline `p` of a config whose source is `source` (TOML).
fn render(dir: &Path, source: &str) -> Result<moor::reconcile::Rendered, String> {
    let text = format!(
        "[[source]]\nname = \"repo\"\n{source}\n[[pipeline]]\nname = \"p\"\nsource = \"repo\"\ntarget_namespace = \"apps\"\n\
         render = [{{ use = \"helm\" }}]\n"
    );
    let builtin: Vec<&str> = moor::plugins::builtin_names().collect();
    let config = moor::config::Config::parse(&dir.join("moor.toml"), text, &builtin).map_err(|e| e.to_string())?;
    // A cache of its own (the chart archives), with the machine's compiled plugins.
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for shared in ["go-plugins", "compiled"] {
        let _ = std::os::unix::fs::symlink(plugin_cache().join(shared), cache.join(shared));
    }
    let moor = moor::reconcile::Moor::new(&cache).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(config.clone()));
    let context = Default::default();
    moor.render_pipeline(&prepared, config.pipeline("p").unwrap(), &Default::default(), &context)
        .map_err(|e| e.to_string())
}

fn replicas(rendered: &moor::reconcile::Rendered) -> u64 {
    let deployment = rendered.objects.iter().find(|o| o.kind() == "Deployment").expect("a Deployment");
    deployment.value["spec"]["replicas"].as_u64().unwrap()
}

#[test]
fn a_chart_from_an_http_helm_repository_renders_in_the_version_asked_and_is_verified() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    // Two versions of the example chart, packaged and indexed by Helm itself.
    for (version, replicas) in [("0.1.0", 1), ("0.2.0", 4)] {
        let chart = work.path().join(format!("src-{version}/web"));
        super::renders::copy(&repo_root().join("examples/helm/charts/web"), &chart).unwrap();
        let yaml = std::fs::read_to_string(chart.join("Chart.yaml")).unwrap();
        std::fs::write(chart.join("Chart.yaml"), yaml.replace("version: 0.1.0", &format!("version: {version}")))
            .unwrap();
        let values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
        std::fs::write(
            chart.join("values.yaml"),
            values.replace("replicaCount: 1", &format!("replicaCount: {replicas}")),
        )
        .unwrap();
        helm(work.path(), &["package", chart.to_str().unwrap(), "--destination", repo.to_str().unwrap()]);
    }
    helm(&repo, &["repo", "index", "."]);
    let port = free_port();
    let _server = serve(&repo, port);
    let url = format!("http://127.0.0.1:{port}");

    let source = |version: &str| format!("helm = {{ repo = \"{url}\", chart = \"web\", version = \"{version}\" }}");
    let newest = render(work.path(), &source("*")).unwrap();
    assert_eq!(replicas(&newest), 4);
    assert!(newest.revision.starts_with("0.2.0@sha256:"), "{}", newest.revision);
    assert_eq!(newest.objects[0].file, "web-0.2.0.tgz");
    let pinned = render(work.path(), &source("0.1.x")).unwrap();
    assert_eq!(replicas(&pinned), 1);
    assert!(work.path().join("cache/helm").read_dir().unwrap().count() == 2, "both archives cached");

    let missing = render(work.path(), &source("3.x")).unwrap_err();
    assert!(missing.contains("no version of `web` matches `3.x`"), "{missing}");

    // The server now serves other bytes than the index promises: refused, even with the
    // good archive of that digest gone from the cache.
    std::fs::remove_dir_all(work.path().join("cache/helm")).unwrap();
    let archive = repo.join("web-0.2.0.tgz");
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&archive, bytes).unwrap();
    let refused = render(work.path(), &source("0.2.0")).unwrap_err();
    assert!(refused.contains("is not the digest") && refused.contains("refusing the chart"), "{refused}");
}
