//! Plugins as OCI artifacts (issue #12): `moor plugin push` publishes a plugin to a real
//! registry (CNCF distribution's, on loopback, with a login), a pipeline runs it from
//! `[[plugin]] oci = "…@sha256:…"` with the credentials of a docker config file, and a
//! plugin whose bytes are not the ones its digest names, in the registry or in the cache,
//! is refused.

use std::path::Path;
use std::process::{Command, Output};

use moor_e2e::{free_port, plugin_cache};

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

const PASSWORD: &str = "a-registry-password";

/// `moor ARGS` with the cache `cache` (its compiled code shared with the machine's) and
/// the docker config directory `docker` (none: no credentials).
fn moor(cache: &Path, docker: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env("MOOR_CACHE", cache);
    match docker {
        Some(dir) => command.env("DOCKER_CONFIG", dir),
        None => command.env("DOCKER_CONFIG", cache.join("no-docker-config")),
    };
    let out = command.output().expect("moor runs");
    assert!(!text(&out).contains(PASSWORD), "the password is never printed: {}", text(&out));
    out
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A config that renders `tree/` with `yaml` and then the plugin `reference`.
fn config(dir: &Path, reference: &str) -> String {
    let text = format!(
        "[[plugin]]\nname = \"hello\"\noci = \"{reference}\"\ninsecure = true\n\n\
         [[source]]\nname = \"local\"\npath = \"tree\"\n\n\
         [[pipeline]]\nname = \"web\"\nsource = \"local\"\ntarget_namespace = \"apps\"\n\
         render = [{{ use = \"yaml\" }}, {{ use = \"hello\" }}]\n"
    );
    let file = dir.join("moor.toml");
    std::fs::write(&file, text).unwrap();
    file.to_string_lossy().into_owned()
}

#[test]
fn a_plugin_pushed_to_a_registry_runs_from_its_pinned_reference_and_a_tampered_one_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let port = free_port();
    let registry = super::helm_repo::registry_with(dir, port, Some(("moor", PASSWORD)));
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let login = format!(r#"{{"auths":{{"127.0.0.1:{port}":{{"username":"moor","password":"{PASSWORD}"}}}}}}"#);
    std::fs::write(docker.join("config.json"), login).unwrap();
    let docker = Some(docker.as_path());
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(plugin_cache().join("compiled"), cache.join("compiled")).unwrap();
    std::fs::create_dir_all(dir.join("tree")).unwrap();
    std::fs::write(dir.join("tree/cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n").unwrap();
    // The example renderer that labels every object hello=world, as a plugin file.
    let wasm = dir.join("hello.wasm");
    std::fs::write(&wasm, moor::plugins::builtin_bytes("hello-renderer").unwrap()).unwrap();

    let target = format!("127.0.0.1:{port}/plugins/hello:0.1.0");
    let denied = moor(&cache, None, &["plugin", "push", wasm.to_str().unwrap(), &target, "--insecure"]);
    assert!(!denied.status.success(), "no push without the login");
    let pushed = moor(&cache, docker, &["plugin", "push", wasm.to_str().unwrap(), &target, "--insecure"]);
    assert!(pushed.status.success(), "{}", text(&pushed));
    let reference = String::from_utf8(pushed.stdout).unwrap().trim().to_owned();
    let prefix = format!("127.0.0.1:{port}/plugins/hello:0.1.0@sha256:");
    assert!(reference.starts_with(&prefix) && reference.len() == prefix.len() + 64, "{reference}");

    let denied = moor(&cache, None, &["build", &config(dir, &reference)]);
    assert!(!denied.status.success() && text(&denied).contains("plugin `hello`"), "{}", text(&denied));
    let built = moor(&cache, docker, &["build", &config(dir, &reference)]);
    assert!(built.status.success(), "{}", text(&built));
    assert!(String::from_utf8_lossy(&built.stdout).contains("hello: world"), "{}", text(&built));
    // Pulled once: with the registry down, the pinned plugin still loads from the cache.
    drop(registry);
    let offline = moor(&cache, docker, &["build", &config(dir, &reference)]);
    assert!(offline.status.success(), "{}", text(&offline));
    let _registry = super::helm_repo::registry_with(dir, port, Some(("moor", PASSWORD)));
    let layer = std::fs::read_dir(cache.join("oci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wasm"))
        .unwrap();
    let digest = layer.file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(std::fs::read(&layer).unwrap(), std::fs::read(&wasm).unwrap(), "the layer is the file pushed");

    // A cached file that changed is refused: it is loaded pinned by the layer's digest.
    std::fs::write(&layer, b"\0asm not this").unwrap();
    let refused = moor(&cache, docker, &["build", &config(dir, &reference)]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("refusing to load it"), "{}", text(&refused));

    // The registry serving other bytes than the manifest's layer digest: refused on pull.
    std::fs::remove_dir_all(cache.join("oci")).unwrap();
    let blob = dir.join(format!("storage/docker/registry/v2/blobs/sha256/{}/{digest}/data", &digest[..2]));
    let mut bytes = std::fs::read(&blob).expect("the plugin's blob in the registry's storage");
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&blob, bytes).unwrap();
    let refused = moor(&cache, docker, &["build", &config(dir, &reference)]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains(&format!("pulling 127.0.0.1:{port}/plugins/hello@sha256:{digest}")),
        "{}",
        text(&refused)
    );
    assert!(!cache.join("oci").join(format!("{digest}.wasm")).exists(), "nothing tampered is kept");

    // A digest the registry does not have (another manifest) names nothing to run.
    let other = format!("{prefix}{}", "0".repeat(64));
    let refused = moor(&cache, docker, &["build", &config(dir, &other)]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("reading the manifest of"), "{}", text(&refused));
}
