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
    let out = Command::new(env!("CARGO_BIN_EXE_moor"))
        .args(["build"])
        .arg(dir.join("moor.toml"))
        .env("MOOR_CACHE", cache_dir())
        .env("MOOR_TEST_AGE_KEY", testdata(key))
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
    let rendered = moor.render_pipeline(&prepared, pipeline, &secrets, &Default::default()).unwrap();
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
    let out = Command::new(env!("CARGO_BIN_EXE_moor"))
        .args(["build"])
        .arg(dir.path().join("moor.toml"))
        .env("MOOR_CACHE", cache_dir())
        .env("MOOR_LOG", "info")
        .env("MOOR_TEST_AGE_KEY", testdata("key.txt"))
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the probe fails on purpose: {all}");
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
