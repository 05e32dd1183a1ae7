//! The `sops` step (FX-3) against the real control plane, on files the real sops CLI
//! (built by tests/cluster/build) encrypts during the test with a fresh age key, the key
//! given to the step from a Kubernetes Secret.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use moor_e2e::{Project, cluster};
use serde_json::json;

/// A fresh age identity: (the identity file, its recipient).
fn age_key(dir: &Path) -> (String, String) {
    let file = dir.join("key.txt");
    let out = Command::new(cluster().bin.join("age-keygen")).arg("-o").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    let recipient = text.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_owned();
    (text, recipient)
}

/// Encrypts `tree/<path>` in place with the sops CLI, for `recipient`, as Flux users do
/// (only `data` and `stringData`).
fn encrypt(p: &Project, path: &str, recipient: &str) {
    let file = p.dir.path().join("tree").join(path);
    let out = Command::new(cluster().bin.join("sops"))
        .args(["encrypt", "--in-place", "--age", recipient, "--encrypted-regex", "^(data|stringData)$"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "sops: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&file).unwrap().contains("ENC[AES256_GCM,"));
}

async fn key_secret(client: &kube::Client, ns: &str, name: &str, identity: &str) -> anyhow::Result<()> {
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"age.agekey": identity}}))?;
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await?;
    Ok(())
}

fn files(p: &Project, password: &str, token: &str) {
    p.file(
        "secret.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {{ns}}\nstringData:\n  password: {password}\n"),
    );
    p.file(
        "settings.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {{ns}}\ndata:\n  token: {token}\n"),
    );
}

const PIPELINE: &str = "[[pipeline]]\nname = \"app\"\nsource = \"local\"\n\
    render = [{ use = \"yaml\" }, { use = \"sops\", secrets = { age_key = { secret = \"{ns}/KEY\", key = \"age.agekey\" } } }]\n";

#[tokio::test(flavor = "multi_thread")]
async fn sops_encrypted_objects_are_decrypted_applied_and_never_shown() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "sops").await?;
    let (identity, recipient) = age_key(p.dir.path());
    key_secret(&client, &p.ns, "sops-age", &identity).await?;
    files(&p, "hunter2-first", "tok-first");
    encrypt(&p, "secret.yaml", &recipient);
    encrypt(&p, "settings.yaml", &recipient);
    let config = p.config(&PIPELINE.replace("KEY", "sops-age"));
    p.apply_ok("app").await;
    let secret = Api::<Secret>::namespaced(client.clone(), &p.ns).get("db").await?;
    assert_eq!(secret.data.unwrap()["password"].0, b"hunter2-first", "the Secret is applied decrypted");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &p.ns).get("settings").await?;
    assert_eq!(cm.data.unwrap()["token"], "tok-first");
    assert!(cm.metadata.annotations.unwrap_or_default().keys().all(|k| !k.contains("sops")));

    // A new encrypted revision: the diff says what changed, never the values.
    files(&p, "hunter2-second", "tok-second");
    encrypt(&p, "secret.yaml", &recipient);
    encrypt(&p, "settings.yaml", &recipient);
    let out = Command::new(env!("CARGO_BIN_EXE_moor-under-test"))
        .args(["diff", config.to_str().unwrap(), "--color", "never"])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("MOOR_CACHE", moor_e2e::plugin_cache())
        .output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("ConfigMap/{}/settings (configure)", p.ns)), "{text}");
    assert!(text.matches("<redacted> (changed)").count() >= 2, "{text}");
    for needle in ["hunter2", "tok-first", "tok-second", "aHVudGVy", identity.lines().last().unwrap()] {
        assert!(!text.contains(needle), "`{needle}` in the diff:\n{text}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_a_tampered_mac_or_no_decrypt_step_applies_nothing() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "sops-bad").await?;
    let (_, recipient) = age_key(p.dir.path());
    let other = tempfile::tempdir()?;
    let (wrong, _) = age_key(other.path());
    key_secret(&client, &p.ns, "wrong-age", &wrong).await?;
    files(&p, "hunter2", "tok");
    encrypt(&p, "secret.yaml", &recipient);
    encrypt(&p, "settings.yaml", &recipient);
    let nothing_applied = || async {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), &p.ns).get_opt("settings").await?;
        let secret = Api::<Secret>::namespaced(client.clone(), &p.ns).get_opt("db").await?;
        anyhow::Ok(cm.is_none() && secret.is_none())
    };

    p.config(&PIPELINE.replace("KEY", "wrong-age"));
    let error = p.apply_err("app").await;
    assert!(error.contains("cannot decrypt") && error.contains(&recipient), "{error}");
    assert!(error.contains("secret.yaml:1") || error.contains("settings.yaml:1"), "{error}");
    assert!(nothing_applied().await?);

    // Without a decrypting step, the host refuses before apply.
    p.config("[[pipeline]]\nname = \"app\"\nsource = \"local\"\n");
    let error = p.apply_err("app").await;
    assert!(error.contains("is still SOPS-encrypted after the render chain"), "{error}");
    assert!(nothing_applied().await?);

    // A changed MAC.
    let third = tempfile::tempdir()?;
    let (identity, recipient) = age_key(third.path());
    key_secret(&client, &p.ns, "right-age", &identity).await?;
    files(&p, "hunter2", "tok");
    encrypt(&p, "secret.yaml", &recipient);
    encrypt(&p, "settings.yaml", &recipient);
    let file = p.dir.path().join("tree/settings.yaml");
    let text = std::fs::read_to_string(&file)?;
    std::fs::write(&file, text.replacen("mac: ENC[AES256_GCM,data:", "mac: ENC[AES256_GCM,data:AAAA", 1))?;
    p.config(&PIPELINE.replace("KEY", "right-age"));
    let error = p.apply_err("app").await;
    assert!(error.contains("the MAC does not match"), "{error}");
    assert!(!error.contains("hunter2") && !error.contains("tok"), "{error}");
    assert!(nothing_applied().await?);
    Ok(())
}
