//! The fuzz targets' bodies. `fuzz/fuzz_targets/*.rs` hand each of them libFuzzer's raw
//! input (`scripts/fuzz`), and `tests/replay.rs` runs them on every file of the seed corpus
//! (`fuzz/corpus/<target>`) and of the crashes kept as regressions
//! (`fuzz/regressions/<target>`), so both run the same code on stable in `cargo test`.
//!
//! Each body asserts what must hold for any input: no panic, and where there is a round
//! trip or a yes/no answer, that it is right.

use std::io::Write;

use arbitrary::{Arbitrary, Unstructured};
use moor::apply::inventory::Inventory;
use moor::plugins::Document;
use moor::plugins::krm::resource_list::Request;

/// A target: its name (the directory under `fuzz/corpus`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("config", config),
    ("inventory", inventory),
    ("resource_list", resource_list),
    ("webhook_signature", webhook_signature),
    ("yaml", yaml),
];

/// The input as text the way libfuzzer-sys's `|text: &str|` gives it: its longest valid
/// UTF-8 prefix.
fn text(bytes: &[u8]) -> &str {
    <&str>::arbitrary_take_rest(Unstructured::new(bytes)).unwrap_or_default()
}

/// The TOML config loader: any text gives a config or an error, never a panic.
pub fn config(bytes: &[u8]) {
    let builtin: Vec<&str> = moor::plugins::builtin_names().collect();
    let _ = moor::config::Config::parse(std::path::Path::new("/fuzz/moor.toml"), text(bytes).to_owned(), &builtin);
}

/// The inventory decoder (gzip, then JSON), on the raw bytes and on gzip of the bytes:
/// what decodes encodes back to the same inventory.
pub fn inventory(bytes: &[u8]) {
    let _ = Inventory::decode(bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    if let Ok(inventory) = Inventory::decode(&gz.finish().unwrap()) {
        let again = Inventory::decode(&inventory.encode().unwrap()).unwrap();
        assert_eq!(again, inventory);
    }
}

/// The KRM ResourceList decoder: a function's output, whatever it is, gives objects and
/// results or an error.
pub fn resource_list(stdout: &[u8]) {
    let docs = [Document {
        json: r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#.into(),
        file: "app/a.yaml".into(),
        line: 3,
    }];
    let request = Request::new(&docs, &serde_json::json!({})).unwrap();
    let _ = request.response(stdout, "app");
    let _ = request.response(stdout, "");
}

/// The webhook signature check: only the right HMAC passes.
pub fn webhook_signature(bytes: &[u8]) {
    let Ok((secret, body, signature)) = <(&[u8], &[u8], &str)>::arbitrary_take_rest(Unstructured::new(bytes)) else {
        return;
    };
    let _ = moor::http::verify_signature(secret, body, Some(signature));
    if !secret.is_empty() {
        let good = sign(secret, body);
        assert!(moor::http::verify_signature(secret, body, Some(&good)).is_ok());
        if signature != good && !signature.eq_ignore_ascii_case(&good) {
            assert!(moor::http::verify_signature(secret, body, Some(signature)).is_err(), "{signature} passed");
        }
    }
}

/// A `sha256=<hex>` signature of `body` made with `secret`, as GitHub makes it: computed
/// here, apart from the check under test.
fn sign(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The yaml renderer's parser entry, for YAML and JSON files: objects or diagnostics.
pub fn yaml(bytes: &[u8]) {
    let text = text(bytes);
    let _ = moor_plugin_yaml::parse_file("fuzz.yaml", text);
    let _ = moor_plugin_yaml::parse_file("fuzz.json", text);
}
