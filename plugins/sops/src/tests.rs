//! Files encrypted by the real sops CLI (testdata/README.md), decrypted here.

use serde_json::{Value, json};

use super::decrypt::{self, Error, Metadata};

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{}/testdata/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap()
}

fn identities(file: &str) -> Vec<Box<dyn age::Identity + Send + Sync>> {
    let text = std::fs::read_to_string(format!("{}/testdata/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    age::IdentityFile::from_buffer(text.as_bytes()).unwrap().into_identities().unwrap()
}

/// Decrypts the documents of one file as the plugin does.
fn open(mut docs: Vec<Value>, key_file: &str) -> Result<Vec<Value>, Error> {
    let meta = Metadata::of(&docs[0]["sops"])?;
    let key = meta.data_key(&identities(key_file))?;
    for doc in &mut docs {
        doc.as_object_mut().unwrap().shift_remove("sops");
    }
    let mut refs: Vec<&mut Value> = docs.iter_mut().collect();
    decrypt::decrypt(&mut refs, &meta, &key)?;
    Ok(docs)
}

#[test]
fn a_secret_encrypted_by_sops_decrypts_to_its_plaintext() {
    let docs = open(documents("secret.enc.yaml"), "key.txt").unwrap();
    assert_eq!(docs[0]["stringData"], json!({"username": "admin", "password": "hunter2"}));
    assert_eq!(docs[0]["metadata"]["labels"]["app"], "db");
}

#[test]
fn the_documents_of_one_file_share_a_mac_and_keep_their_types() {
    let docs = open(documents("multi.enc.yaml"), "key.txt").unwrap();
    assert_eq!(docs[0]["data"], json!({"token": "abc123", "empty": ""}));
    assert_eq!(
        docs[1]["spec"],
        json!({"replicas": 3, "ratio": 0.25, "enabled": true, "list": ["one", "two"], "nested": {"deep": "value"}, "note_unencrypted": "visible"})
    );
    // One document alone is not the tree the MAC covers.
    let one = documents("multi.enc.yaml").into_iter().take(1).collect();
    assert_eq!(open(one, "key.txt").unwrap_err(), Error::Mac);
}

#[test]
fn a_wrong_key_names_the_recipients() {
    let e = open(documents("secret.enc.yaml"), "other-key.txt").unwrap_err();
    assert!(matches!(e, Error::NoKey { .. }));
    assert!(e.to_string().contains("age1gx2yy9mvkfzwlcznyyhmjcdk2z38j6ms4urdpae9pdqegk3n3a6qr9l8p6"), "{e}");
}

#[test]
fn a_changed_value_a_changed_plain_field_or_a_changed_mac_is_refused() {
    // A plain field the MAC covers.
    let mut docs = documents("secret.enc.yaml");
    docs[0]["metadata"]["labels"]["app"] = json!("evil");
    assert_eq!(open(docs, "key.txt").unwrap_err(), Error::Mac);
    // An encrypted value moved to another key: its path is its additional data.
    let mut docs = documents("secret.enc.yaml");
    let password = docs[0]["stringData"]["password"].clone();
    docs[0]["stringData"]["username"] = password;
    let e = open(docs, "key.txt").unwrap_err();
    assert!(matches!(&e, Error::Value { path, .. } if path == "stringData.username"), "{e}");
    assert!(!e.to_string().contains("hunter2"));
    // The MAC itself.
    let mut docs = documents("secret.enc.yaml");
    let mac = docs[0]["sops"]["mac"].as_str().unwrap().replacen("data:", "data:AA", 1);
    docs[0]["sops"]["mac"] = json!(mac);
    assert_eq!(open(docs, "key.txt").unwrap_err(), Error::Mac);
}

#[test]
fn unsupported_metadata_is_refused_clearly() {
    let mut docs = documents("secret.enc.yaml");
    docs[0]["sops"]["encrypted_comment_regex"] = json!("sops:enc");
    assert!(matches!(open(docs, "key.txt").unwrap_err(), Error::Metadata(m) if m.contains("comments")));
    let mut docs = documents("secret.enc.yaml");
    docs[0]["sops"]["key_groups"] = json!([{"age": []}]);
    assert!(open(docs, "key.txt").unwrap_err().to_string().contains("Shamir"));
}

fn testdata_bytes(file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn whole_files_of_each_format_decrypt_as_sops_writes_them_plain() {
    use crate::files::{Format, decrypt_file};
    let ids = identities("key.txt");
    let file = |name: &str, input: Format, output: Format| {
        let plain = decrypt_file(&testdata_bytes(&format!("kustomize/{name}")), input, output, &ids).unwrap();
        (String::from_utf8(plain.bytes).unwrap(), plain.revealed)
    };
    // dotenv: the comment line is left out; `\n` stays escaped.
    let (env, revealed) = file("base/app.enc.env", Format::Dotenv, Format::Dotenv);
    assert_eq!(env, "DB_USER=admin\nDB_PASSWORD=s3cr3t-pass\nMULTI=line one\\nline two\n");
    assert_eq!(revealed, ["admin", "s3cr3t-pass", "line one\nline two"]);
    let (yaml, _) = file("overlay/settings.enc.yaml", Format::Yaml, Format::Yaml);
    assert_eq!(
        serde_saphyr::from_str::<Value>(&yaml).unwrap(),
        json!({"api_key": "k-7f3e9a", "retries": 5, "endpoints": ["https://one.example", "https://two.example"]})
    );
    let (docker, _) = file("overlay/dockerconfig.enc.json", Format::Json, Format::Json);
    assert_eq!(
        serde_json::from_str::<Value>(&docker).unwrap(),
        json!({"auths": {"registry.example": {"auth": "dXNlcjpwYXNzd29yZA=="}}})
    );
    let (key, _) = file("overlay/tls.enc.key", Format::Binary, Format::Binary);
    assert_eq!(key, "-----BEGIN FAKE KEY-----\nMIIEpAIBAAKCAQEA-not-a-real-key\n-----END FAKE KEY-----\n");
    // Only the values `encrypted_regex` named were encrypted; the rest is kept as it was.
    let (patch, revealed) = file("overlay/patch.enc.yaml", Format::Yaml, Format::Yaml);
    let patch: Value = serde_saphyr::from_str(&patch).unwrap();
    assert_eq!(patch["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "lic-0042-secret");
    assert_eq!(revealed, ["lic-0042-secret"]);
    // A changed value fails the MAC, a wrong key names the recipient.
    let tampered = String::from_utf8(testdata_bytes("kustomize/base/app.enc.env")).unwrap().replace(
        "DB_USER=ENC[AES256_GCM,data:u7gPLKM=,iv:PXG8K21KB+zEBmwvkdEbaCdSFepthcFEZVRtHaw/Z9Y=,tag:MuVannmsoJi0C57pISGWNw==,type:str]\n",
        "",
    );
    assert_eq!(decrypt_file(tampered.as_bytes(), Format::Dotenv, Format::Dotenv, &ids).unwrap_err(), Error::Mac);
    let other = identities("other-key.txt");
    let e = decrypt_file(&testdata_bytes("kustomize/base/app.enc.env"), Format::Dotenv, Format::Dotenv, &other);
    assert!(matches!(e.unwrap_err(), Error::NoKey { .. }));
}

#[test]
fn the_files_a_kustomization_reads_are_found_through_its_bases_and_decrypted() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kustomize");
    let found = crate::sources::decrypt_sources(&root, "overlay", &identities("key.txt")).unwrap();
    let paths: Vec<&str> = found.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "overlay/settings.enc.yaml",
            "overlay/tls.enc.key",
            "overlay/dockerconfig.enc.json",
            "overlay/patch.enc.yaml",
            "base/app.enc.env"
        ]
    );
    let env = found.iter().find(|d| d.path == "base/app.enc.env").unwrap();
    assert!(String::from_utf8_lossy(&env.plain.bytes).contains("DB_PASSWORD=s3cr3t-pass"));
    // Nothing to decrypt in a tree without a kustomization.
    assert!(crate::sources::decrypt_sources(&root, "base/..", &identities("key.txt")).unwrap().is_empty());
    let e = crate::sources::decrypt_sources(&root, "overlay", &identities("other-key.txt")).unwrap_err();
    assert_eq!(e.file, "overlay/settings.enc.yaml");
    assert!(e.error.contains("no age identity"), "{}", e.error);
}

#[test]
fn a_secret_generated_from_an_encrypted_file_is_decrypted_in_the_format_of_its_key() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let value = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-files"},
        "data": {
            "settings.yaml": b64.encode(testdata_bytes("kustomize/overlay/settings.enc.yaml")),
            "tls.key": b64.encode(testdata_bytes("kustomize/overlay/tls.enc.key")),
            "plain": b64.encode("not encrypted"),
        }
    });
    let mut object = moor_plugin_sdk::Object::new(value, "gen.yaml", 1);
    assert!(crate::decrypt_secret_files(&mut object, &identities("key.txt")).is_empty());
    let text = |key: &str| String::from_utf8(b64.decode(object.value["data"][key].as_str().unwrap()).unwrap()).unwrap();
    assert!(text("settings.yaml").contains("api_key: k-7f3e9a"), "{}", text("settings.yaml"));
    assert!(text("tls.key").starts_with("-----BEGIN FAKE KEY-----\n"));
    assert_eq!(text("plain"), "not encrypted");
    let errors = crate::decrypt_secret_files(&mut object.clone(), &identities("other-key.txt"));
    assert!(errors.is_empty(), "already decrypted");
    let mut fresh = moor_plugin_sdk::Object::new(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
               "data": {"tls.key": b64.encode(testdata_bytes("kustomize/overlay/tls.enc.key"))}}),
        "gen.yaml",
        1,
    );
    let errors = crate::decrypt_secret_files(&mut fresh, &identities("other-key.txt"));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("Secret/s `data.tls.key`"), "{}", errors[0].message);
}
