//! Objects as the host handles them: a JSON value with its origin, and redaction of secret
//! data wherever objects are shown.

use serde::Serialize;
use serde_json::Value;

/// One Kubernetes object and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Object {
    pub value: Value,
    /// Origin file relative to the snapshot root; empty when a plugin generated it.
    pub file: String,
    /// 1-based line where it starts; 0 when unknown.
    pub line: u32,
}

impl Object {
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

    pub fn namespace(&self) -> Option<&str> {
        Some(self.str_at("/metadata/namespace")).filter(|n| !n.is_empty())
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version().rsplit_once('/').map(|(g, _)| g).unwrap_or("")
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
