//! What the tests of the Go renderers share: the real-world input, and objects compared
//! as canonical JSON.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub fn podinfo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/realworld/podinfo")
}

/// Objects as canonical JSON (keys sorted), as a set.
pub fn canonical(objects: impl IntoIterator<Item = serde_json::Value>) -> BTreeSet<String> {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: std::collections::BTreeMap<String, serde_json::Value> =
                    m.into_iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::to_value(sorted).unwrap()
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    objects.into_iter().map(|o| sort(o).to_string()).collect()
}

/// The objects of a YAML stream (a native tool's output), read as kubectl reads them
/// (YAML 1.1 octals: a chart's `defaultMode: 0755` is 493), as the yaml renderer does.
pub fn yaml_stream(text: &[u8]) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(text).unwrap();
    let options = moor_plugin_yaml::as_kubectl_reads();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple_with_options(text, options).unwrap();
    docs.into_iter().filter(|v| !v.is_null()).collect()
}

pub fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() { copy(&path, &target)? } else { std::fs::copy(&path, &target).map(|_| ())? }
    }
    Ok(())
}
