//! Kubernetes objects as Moor handles them, in the host and in plugins alike: a JSON value
//! with the file and line it came from, and redaction of secret data wherever objects are
//! shown.

use serde::Serialize;
use serde_json::{Map, Value};

/// One Kubernetes object and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Object {
    pub value: Value,
    /// Origin file relative to the snapshot root; empty when generated.
    pub file: String,
    /// 1-based line where the object starts; 0 when unknown.
    pub line: u32,
}

impl Object {
    pub fn new(value: Value, file: impl Into<String>, line: u32) -> Self {
        Object { value, file: file.into(), line }
    }

    fn str_at(&self, pointer: &str) -> &str {
        self.value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion")
    }

    pub fn kind(&self) -> &str {
        self.str_at("/kind")
    }

    pub fn name(&self) -> &str {
        self.str_at("/metadata/name")
    }

    /// The namespace, or `None` when unset.
    pub fn namespace(&self) -> Option<&str> {
        Some(self.str_at("/metadata/namespace")).filter(|n| !n.is_empty())
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version().rsplit_once('/').map(|(g, _)| g).unwrap_or("")
    }

    /// The object's labels (empty when it has none).
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn metadata_map(&mut self, field: &str) -> &mut Map<String, Value> {
        let root = ensure_object(&mut self.value);
        let metadata = ensure_object(root.entry("metadata").or_insert_with(|| Value::Object(Map::new())));
        ensure_object(metadata.entry(field).or_insert_with(|| Value::Object(Map::new())))
    }

    pub fn set_label(&mut self, key: &str, value: &str) {
        self.metadata_map("labels").insert(key.to_owned(), Value::String(value.to_owned()));
    }

    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.metadata_map("annotations").insert(key.to_owned(), Value::String(value.to_owned()));
    }

    /// `Kind/name` or `Kind/namespace/name`.
    pub fn display_name(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}/{}/{}", self.kind(), ns, self.name()),
            None => format!("{}/{}", self.kind(), self.name()),
        }
    }

    /// Identity of the object in a cluster: group, kind, namespace, name.
    pub fn key(&self) -> (String, String, String, String) {
        (self.group().into(), self.kind().into(), self.namespace().unwrap_or("").into(), self.name().into())
    }

    /// `file:line`, or `file`, or `generated`.
    pub fn origin(&self) -> String {
        match (self.file.as_str(), self.line) {
            ("", _) => "generated".into(),
            (f, 0) => f.into(),
            (f, l) => format!("{f}:{l}"),
        }
    }

    /// A copy safe to show anywhere: Secret `data` and `stringData` values are replaced,
    /// keys kept.
    pub fn redacted(&self) -> Value {
        let mut value = self.value.clone();
        redact(&mut value);
        value
    }
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value.as_object_mut().expect("just made an object")
}

/// Placeholder shown instead of secret values.
pub const REDACTED: &str = "<redacted>";

/// Replaces the values of a Secret's `data` and `stringData` in place.
pub fn redact(value: &mut Value) {
    let is_secret = value.get("kind").and_then(Value::as_str) == Some("Secret")
        && value.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if !is_secret {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(Value::Object(map)) = value.get_mut(field) {
            for v in map.values_mut() {
                *v = Value::String(REDACTED.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_and_other_objects_are_not() {
        let secret = Object::new(
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "c2VjcmV0"}, "stringData": {"p": "x"}}),
            "s.yaml",
            3,
        );
        assert_eq!(secret.redacted()["data"]["k"], REDACTED);
        assert_eq!(secret.redacted()["stringData"]["p"], REDACTED);
        let cm = Object::new(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}), "", 0);
        assert_eq!(cm.redacted()["data"]["k"], "v");
        assert_eq!((secret.origin(), cm.origin()), ("s.yaml:3".to_owned(), "generated".to_owned()));
    }
}
