//! Helm repository sources (issue #11): a real Helm HTTP repository (charts packaged and
//! indexed by the native `helm package` and `helm repo index`, served by a static file
//! server on loopback), and a real OCI registry (CNCF distribution's `registry`, charts
//! pushed by the native `helm push`), feed the `helm` renderer; version ranges pick the
//! newest match, and a chart whose bytes differ from its digest is refused.

use std::path::Path;
use std::process::{Child, Command};

use moor_e2e::{cluster, free_port, plugin_cache, render_offline, repo_root};

/// A server on loopback, stopped when dropped.
pub(super) struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `command`, started in `dir`, once it listens on `port`.
pub(super) fn start(command: &mut Command, dir: &Path, port: u16) -> Served {
    let child = command
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let served = Served(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return served;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{command:?} does not listen on {port}");
}

fn serve(dir: &Path, port: u16) -> Served {
    start(Command::new("python3").args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"]), dir, port)
}

/// An OCI registry (distribution's) storing under `dir/storage`, anonymous.
pub(super) fn registry(dir: &Path, port: u16) -> Served {
    registry_with(dir, port, None)
}

/// An OCI registry storing under `dir/storage`; with `login`, only that user and password
/// may read and write (htpasswd, bcrypt).
pub(super) fn registry_with(dir: &Path, port: u16, login: Option<(&str, &str)>) -> Served {
    let config = dir.join("registry.yml");
    let storage = dir.join("storage");
    let mut text = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if let Some((user, password)) = login {
        let htpasswd = dir.join("htpasswd");
        let hash = bcrypt::hash(password, 4).unwrap();
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
        text.push_str(&format!("auth:\n  htpasswd:\n    realm: moor-test\n    path: {}\n", htpasswd.display()));
    }
    std::fs::write(&config, text).unwrap();
    start(Command::new(cluster().bin.join("registry")).arg("serve").arg(&config), dir, port)
}

/// Runs the native helm in `dir`; its output.
fn helm(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(cluster().bin.join("helm"))
        .args(args)
        .current_dir(dir)
        // Its registry logins and cache stay in the test's directory.
        .env("HELM_CONFIG_HOME", dir.join(".helm/config"))
        .env("HELM_CACHE_HOME", dir.join(".helm/cache"))
        .env("HELM_DATA_HOME", dir.join(".helm/data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The example chart at `version` with `replicas`, packaged by Helm into `into`; the archive.
fn package(work: &Path, version: &str, replicas: u32, into: &Path) -> std::path::PathBuf {
    let chart = work.join(format!("src-{version}/web"));
    super::renders::copy(&repo_root().join("examples/helm/charts/web"), &chart).unwrap();
    let yaml = std::fs::read_to_string(chart.join("Chart.yaml")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), yaml.replace("version: 0.1.0", &format!("version: {version}"))).unwrap();
    let values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
    std::fs::write(chart.join("values.yaml"), values.replace("replicaCount: 1", &format!("replicaCount: {replicas}")))
        .unwrap();
    helm(work, &["package", chart.to_str().unwrap(), "--destination", into.to_str().unwrap()]);
    into.join(format!("web-{version}.tgz"))
}

/// Renders pipeline `p` of a config whose source is `source` (TOML).
fn render(dir: &Path, source: &str) -> Result<moor::reconcile::RunReport, String> {
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
    render_offline(&moor, &prepared, config.pipeline("p").unwrap(), Default::default(), Default::default())
        .map_err(|e| e.to_string())
}

fn replicas(rendered: &moor::reconcile::RunReport) -> u64 {
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
        package(work.path(), version, replicas, &repo);
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

#[test]
fn a_chart_from_an_oci_registry_renders_in_the_version_asked_and_is_verified() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let _registry = registry(work.path(), port);
    let packages = work.path().join("packages");
    // Three versions pushed by Helm itself; the third has build metadata, which Helm writes
    // into the tag as `_`.
    let mut pushed = std::collections::BTreeMap::new();
    for (version, replicas) in [("0.1.0", 1), ("0.2.0", 4), ("0.3.0+build.7", 2)] {
        let archive = package(work.path(), version, replicas, &packages);
        let out = helm(
            work.path(),
            &["push", archive.to_str().unwrap(), &format!("oci://127.0.0.1:{port}/charts"), "--plain-http"],
        );
        let digest = out.lines().find_map(|l| l.strip_prefix("Digest: ")).expect("helm push prints the digest");
        pushed.insert(version, digest.trim().to_owned());
    }
    let source = |chart: &str, version: &str| {
        format!(
            "helm = {{ repo = \"oci://127.0.0.1:{port}/charts\", chart = \"{chart}\", version = \"{version}\", \
             insecure = true }}"
        )
    };

    let newest = render(work.path(), &source("web", "*")).unwrap();
    assert_eq!(replicas(&newest), 2);
    // The revision names the manifest's digest, as `helm push` printed it.
    assert_eq!(newest.revision, format!("0.3.0+build.7@{}", pushed["0.3.0+build.7"]));
    assert_eq!(newest.objects[0].file, "web-0.3.0+build.7.tgz");
    let pinned = render(work.path(), &source("web", "0.2.x")).unwrap();
    assert_eq!(replicas(&pinned), 4);
    assert_eq!(pinned.revision, format!("0.2.0@{}", pushed["0.2.0"]));

    let missing = render(work.path(), &source("web", "3.x")).unwrap_err();
    assert!(missing.contains("no version of `web` matches `3.x`"), "{missing}");
    let unknown = render(work.path(), &source("api", "*")).unwrap_err();
    assert!(unknown.contains(&format!("listing the tags of 127.0.0.1:{port}/charts/api")), "{unknown}");

    // The registry now serves other bytes for 0.2.0's archive than its manifest's digest:
    // refused, with the good archive gone from the cache.
    let cached: Vec<_> =
        std::fs::read_dir(work.path().join("cache/helm")).unwrap().map(|e| e.unwrap().path()).collect();
    std::fs::remove_dir_all(work.path().join("cache/helm")).unwrap();
    let good = std::fs::read(packages.join("web-0.2.0.tgz")).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&good));
    assert!(cached.iter().any(|p| p.ends_with(format!("{digest}.tgz"))), "the archive was cached by its digest");
    let blob = work.path().join(format!("storage/docker/registry/v2/blobs/sha256/{}/{digest}/data", &digest[..2]));
    let mut bytes = std::fs::read(&blob).expect("the chart's blob in the registry's storage");
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&blob, bytes).unwrap();
    let refused = render(work.path(), &source("web", "0.2.0")).unwrap_err();
    assert!(refused.contains("pulling") && refused.contains(&digest), "{refused}");
}
