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
