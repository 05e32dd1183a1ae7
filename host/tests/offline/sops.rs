//! The `sops` step (FX-3) on files the real sops CLI encrypted (plugins/sops/testdata):
//! objects decrypted, their revealed values redacted in `moor build`, and nothing
//! encrypted let through without a decrypting step.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn testdata(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sops/testdata").join(file)).unwrap()
}

const WITH_SOPS: &str = "[[source]]\nname = \"s\"\npath = \"tree\"\n\n[[pipeline]]\nname = \"app\"\nsource = \"s\"\n\
    render = [{ use = \"yaml\" }, { use = \"sops\", secrets = { age_key = { env = \"MOOR_TEST_AGE_KEY\" } } }]\n";

/// A project with the two encrypted files under `tree/`, and `moor.toml`.
fn project(config: &str, tamper: impl Fn(String) -> String) -> tempfile::TempDir {
    let secret = tamper(testdata("secret.enc.yaml"));
    tree(&[
        ("tree/secret.enc.yaml", &secret),
        ("tree/multi.enc.yaml", &testdata("multi.enc.yaml")),
        ("moor.toml", config),
    ])
}

fn build(dir: &Path, key: &str) -> (bool, String, String) {
    moor(dir, &["build"], key, &[])
}

/// `moor <args> dir/moor.toml` offline, with the identity in `key` as `MOOR_TEST_AGE_KEY`
/// and `env` besides: whether it succeeded, its stdout and its stderr.
fn moor(dir: &Path, args: &[&str], key: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moor"))
        .args(args)
        .arg(dir.join("moor.toml"))
        .env("MOOR_CACHE", cache_dir())
        .env("KUBECONFIG", "/nonexistent")
        .env("MOOR_TEST_AGE_KEY", testdata(key))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

const PLAINTEXTS: [&str; 4] = ["hunter2", "admin", "abc123", "visible"];

#[test]
fn a_sops_step_decrypts_and_moor_build_shows_no_decrypted_value() {
    let dir = project(WITH_SOPS, |s| s);
    // Through the library, with the (test) identity in the step's `with` table.
    let inline = format!("with = {{ age_key = {:?} }}", testdata("key.txt"));
    let cfg =
        config(dir.path(), &WITH_SOPS.replace("secrets = { age_key = { env = \"MOOR_TEST_AGE_KEY\" } }", &inline))
            .unwrap();
    let moor = moor::reconcile::Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(cfg.clone()));
    let pipeline = cfg.pipeline("app").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let secrets = runtime.block_on(moor::secrets::SecretValues::for_pipeline(None, &cfg, pipeline)).unwrap();
    let rendered = render_offline(&moor, &prepared, pipeline, secrets, Default::default()).unwrap();
    let by_name = |name: &str| rendered.objects.iter().find(|o| o.name() == name).unwrap();
    assert_eq!(by_name("db-credentials").value["stringData"]["password"], "hunter2");
    assert!(by_name("db-credentials").value.get("sops").is_none(), "the sops section is gone");
    assert_eq!(by_name("app-settings").value["data"]["token"], "abc123");
    assert_eq!(by_name("w").value["spec"]["replicas"], 3);
    assert_eq!(by_name("app-settings").sensitive, ["/data/token"], "what was decrypted is marked");

    let (ok, stdout, stderr) = build(dir.path(), "key.txt");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("name: app-settings") && stdout.contains("token: <redacted>"), "{stdout}");
    assert!(stdout.contains("replicas: <redacted>"), "{stdout}");
    for plain in PLAINTEXTS {
        assert!(!stdout.contains(plain) && !stderr.contains(plain), "{plain} shown:\n{stdout}\n{stderr}");
    }
}

#[test]
fn an_encrypted_object_without_a_decrypting_step_fails_before_apply_naming_it() {
    let config = WITH_SOPS.replace(", { use = \"sops\", secrets = { age_key = { env = \"MOOR_TEST_AGE_KEY\" } } }", "");
    let dir = project(&config, |s| s);
    let (ok, stdout, stderr) = build(dir.path(), "key.txt");
    assert!(!ok && stdout.is_empty());
    assert!(stderr.contains("(multi.enc.yaml:1) is still SOPS-encrypted after the render chain"), "{stderr}");
}

#[test]
fn a_wrong_key_or_a_tampered_file_fails_the_step_naming_the_object_and_leaks_nothing() {
    let dir = project(WITH_SOPS, |s| s);
    let (ok, _, stderr) = build(dir.path(), "other-key.txt");
    assert!(!ok);
    assert!(stderr.contains("secret.enc.yaml:1") && stderr.contains("cannot decrypt Secret"), "{stderr}");
    assert!(stderr.contains("no age identity given opens the data key"), "{stderr}");

    let dir = project(WITH_SOPS, |s| s.replace("app: db", "app: evil"));
    let (ok, _, stderr) = build(dir.path(), "key.txt");
    assert!(!ok);
    assert!(stderr.contains("the MAC does not match"), "{stderr}");
    for plain in PLAINTEXTS {
        assert!(!stderr.contains(plain), "{plain} in {stderr}");
    }
    let key = testdata("key.txt");
    let identity = key.lines().find(|l| l.starts_with("AGE-SECRET-KEY")).unwrap();
    assert!(!stderr.contains(identity), "the identity is never shown");
}

#[test]
fn a_later_step_quoting_decrypted_values_has_them_hidden_from_its_log_and_diagnostics() {
    let probe = probe_path();
    let plugin =
        format!("[[plugin]]\nname = \"probe\"\npath = \"{}\"\nsha256 = \"{}\"\n\n", probe.display(), sha256_of(&probe));
    let chain = "{ use = \"sops\", secrets = { age_key = { env = \"MOOR_TEST_AGE_KEY\" } } }";
    let config =
        plugin + &WITH_SOPS.replace(chain, &format!("{chain}, {{ use = \"probe\", with = {{ action = \"quote\" }} }}"));
    let dir = project(&config, |s| s);
    let (ok, stdout, stderr) = moor(dir.path(), &["build"], "key.txt", &[("MOOR_LOG", "info")]);
    let all = format!("{stdout}{stderr}");
    assert!(!ok, "the probe fails on purpose: {all}");
    // The probe quoted every value it was given: the plain ones stay, the decrypted ones
    // (of 4 bytes or more) are hidden wherever it said them.
    for said in ["quoted: ", "stdout: quoted ", "refused quoted "] {
        assert!(all.contains(said), "{said:?} missing:\n{all}");
    }
    assert!(all.contains("db-credentials") && all.contains("Opaque"), "{all}");
    for plain in PLAINTEXTS {
        assert!(!all.contains(plain), "{plain} shown:\n{all}");
    }
    assert!(all.contains("***"), "{all}");
}

/// The kustomize tree of plugins/sops/testdata (an overlay whose base generates a Secret
/// from an encrypted dotenv file, and which itself generates one from three encrypted
/// files and applies an encrypted patch), under `tree/`, with `render` as its chain.
fn kustomize_project(render: &str) -> tempfile::TempDir {
    kustomize_project_with(render, |_, text| text)
}

/// [`kustomize_project`] with each file as `edit(path, text)` makes it.
fn kustomize_project_with(render: &str, edit: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    let files = [
        "base/kustomization.yaml",
        "base/deployment.yaml",
        "base/app.enc.env",
        "overlay/kustomization.yaml",
        "overlay/settings.enc.yaml",
        "overlay/tls.enc.key",
        "overlay/dockerconfig.enc.json",
        "overlay/patch.enc.yaml",
    ];
    let contents: Vec<(String, String)> =
        files.iter().map(|f| (format!("tree/{f}"), edit(f, testdata(&format!("kustomize/{f}"))))).collect();
    let config = format!(
        "[[source]]\nname = \"s\"\npath = \"tree\"\n\n[[pipeline]]\nname = \"app\"\nsource = \"s\"\npath = \"overlay\"\nrender = [{render}]\n"
    );
    let mut all: Vec<(&str, &str)> = contents.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    all.push(("moor.toml", &config));
    tree(&all)
}

const SOPS_STEP: &str = "{ use = \"sops\", secrets = { age_key = { env = \"MOOR_TEST_AGE_KEY\" } } }";

/// What the kustomize tree's encrypted files hold.
const SOURCE_PLAINTEXTS: [&str; 5] = ["s3cr3t-pass", "k-7f3e9a", "lic-0042-secret", "not-a-real-key", "line one"];

#[test]
fn a_sops_step_before_kustomize_decrypts_what_its_generators_and_patches_read() {
    let dir = kustomize_project(&format!("{SOPS_STEP}, {{ use = \"kustomize\" }}"));
    // Through the library, with the (test) identity in the step's `with` table: the
    // generated Secrets and the patched Deployment hold plaintext.
    let inline = format!("with = {{ age_key = {:?} }}", testdata("key.txt"));
    let text = std::fs::read_to_string(dir.path().join("moor.toml")).unwrap();
    let cfg =
        config(dir.path(), &text.replace("secrets = { age_key = { env = \"MOOR_TEST_AGE_KEY\" } }", &inline)).unwrap();
    let moor = moor::reconcile::Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(cfg.clone()));
    let pipeline = cfg.pipeline("app").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let secrets = runtime.block_on(moor::secrets::SecretValues::for_pipeline(None, &cfg, pipeline)).unwrap();
    let rendered = render_offline(&moor, &prepared, pipeline, secrets, Default::default()).unwrap();
    let named = |prefix: &str| rendered.objects.iter().find(|o| o.name().starts_with(prefix)).unwrap();
    let data = |prefix: &str, key: &str| {
        let value = named(prefix).value["data"][key].as_str().unwrap();
        String::from_utf8(moor::object::decode_secret_data(value).unwrap()).unwrap()
    };
    assert_eq!(data("app-env-", "DB_PASSWORD"), "s3cr3t-pass");
    assert_eq!(data("app-env-", "MULTI"), "line one\\nline two", "as kustomize reads a dotenv value");
    assert!(named("app-env-").value["data"].get("sops_mac").is_none(), "no SOPS metadata became a key");
    assert!(data("app-files-", "settings.yaml").contains("api_key: k-7f3e9a"));
    assert!(data("app-files-", "tls.key").starts_with("-----BEGIN FAKE KEY-----"));
    assert!(data("app-files-", ".dockerconfigjson").contains("dXNlcjpwYXNzd29yZA=="));
    let web = named("web");
    let env = "/spec/template/spec/containers/0/env/0/value";
    assert_eq!(web.value.pointer(env).unwrap(), "lic-0042-secret");
    assert!(web.sensitive.iter().any(|p| p == env), "the decrypted patch value is marked: {:?}", web.sensitive);
    assert!(web.value.get("sops").is_none());

    // `moor build` shows none of it, and no decrypted file is left on disk.
    let (ok, stdout, stderr) = build(dir.path(), "key.txt");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("name: web") && stdout.contains("value: <redacted>"), "{stdout}");
    for plain in SOURCE_PLAINTEXTS {
        assert!(!stdout.contains(plain) && !stderr.contains(plain), "{plain} shown:\n{stdout}\n{stderr}");
    }
    let left: Vec<_> =
        walk_files(cache_dir()).into_iter().filter(|p| p.to_string_lossy().contains(".overlay-")).collect();
    assert!(left.is_empty(), "overlays left behind: {left:?}");
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk_files(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn a_sops_step_after_kustomize_decrypts_secrets_it_generated_from_whole_encrypted_files() {
    // Only the `files` generator: its Secret's values are whole SOPS files, which the step
    // decrypts into the format each key names, as Flux does.
    let only_files = |path: &str, text: String| match path {
        "base/kustomization.yaml" => "resources:\n  - deployment.yaml\n".to_owned(),
        "overlay/kustomization.yaml" => text[..text.find("patches:").unwrap()].to_owned(),
        _ => text,
    };
    let chain = format!("{{ use = \"kustomize\" }}, {SOPS_STEP}");
    let dir = kustomize_project_with(&chain, only_files);
    let (ok, stdout, stderr) = moor(dir.path(), &["plan", "--output", "json"], "key.txt", &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Secret/app-files-"), "{stdout}");
    for plain in SOURCE_PLAINTEXTS {
        assert!(!stdout.contains(plain) && !stderr.contains(plain), "{plain} shown:\n{stdout}\n{stderr}");
    }
    // Without the step, the generated Secret is refused, named.
    let dir = kustomize_project_with("{ use = \"kustomize\" }", only_files);
    let (ok, _, stderr) = build(dir.path(), "key.txt");
    assert!(!ok);
    assert!(stderr.contains("Secret/app-files-") && stderr.contains("is still SOPS-encrypted"), "{stderr}");
}

#[test]
fn kustomize_without_a_decrypting_step_generates_secrets_that_are_refused_before_apply() {
    let dir = kustomize_project("{ use = \"kustomize\" }");
    let (ok, stdout, stderr) = build(dir.path(), "key.txt");
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("is still SOPS-encrypted after the render chain"), "{stderr}");
}

#[test]
fn a_wrong_key_for_a_generator_file_names_the_file_and_a_sops_step_alone_on_the_tree_is_refused() {
    let dir = kustomize_project(&format!("{SOPS_STEP}, {{ use = \"kustomize\" }}"));
    let (ok, _, stderr) = build(dir.path(), "other-key.txt");
    assert!(!ok);
    assert!(stderr.contains("cannot decrypt overlay/settings.enc.yaml"), "{stderr}");
    assert!(stderr.contains("no age identity given opens the data key"), "{stderr}");
    let dir = kustomize_project(SOPS_STEP);
    let (ok, _, stderr) = build(dir.path(), "key.txt");
    assert!(!ok);
    assert!(stderr.contains("plugin `sops` cannot rewrite the tree") && stderr.contains("none follows"), "{stderr}");
    for plain in SOURCE_PLAINTEXTS {
        assert!(!stderr.contains(plain), "{plain} in {stderr}");
    }
}

/// `moor plugin test` of a `tree-renderer` on a directory shows the files it rewrote, by
/// size only: not what they now hold.
#[test]
fn plugin_test_of_sops_on_a_tree_lists_the_rewritten_files_and_shows_none_of_them() {
    let dir = kustomize_project("{ use = \"kustomize\" }");
    let with = serde_json::json!({ "age_key": testdata("key.txt") }).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_moor"))
        .args(["plugin", "test", "sops", "--with", &with, "--input"])
        .arg(dir.path().join("tree/overlay"))
        .env("MOOR_CACHE", cache_dir())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for file in ["settings.enc.yaml", "tls.enc.key", "dockerconfig.enc.json", "patch.enc.yaml"] {
        assert!(stdout.contains(&format!("file: {file} (")) && stdout.contains("rewritten)"), "{file}: {stdout}");
    }
    for plain in SOURCE_PLAINTEXTS {
        assert!(!stdout.contains(plain) && !stderr.contains(plain), "{plain} shown:\n{stdout}\n{stderr}");
    }
}
