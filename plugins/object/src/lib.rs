//! Kubernetes objects as Moor handles them, in the host and in plugins alike: a JSON value
//! with the file and line it came from, and redaction of secret data wherever objects are
//! shown.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The identity of an object in a cluster: group, kind, namespace and name. The version is
/// carried along (to reach the object through the API) but is not part of the identity:
/// `apps/v1` and `apps/v1beta2` Deployments of one name are the same object. Equality,
/// hashing and order all ignore it, as kube-rs's `ObjectRef` ignores its `extra`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjKey {
    #[serde(rename = "g", default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(rename = "v")]
    pub version: String,
    #[serde(rename = "k")]
    pub kind: String,
    #[serde(rename = "ns", default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(rename = "n")]
    pub name: String,
}

impl ObjKey {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    fn identity(&self) -> (&str, &str, &str, &str) {
        (&self.group, &self.kind, &self.namespace, &self.name)
    }
}

impl PartialEq for ObjKey {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for ObjKey {}

impl Hash for ObjKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl PartialOrd for ObjKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.identity().cmp(&other.identity())
    }
}

/// `Kind/name` or `Kind/namespace/name`.
impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One Kubernetes object and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Object {
    pub value: Value,
    /// Origin file relative to the snapshot root; empty when generated.
    pub file: String,
    /// 1-based line where the object starts; 0 when unknown.
    pub line: u32,
    /// JSON pointers of values a decrypting step revealed (the host sets them, comparing a
    /// step's input and output); shown redacted wherever the object is, as Secret data is.
    #[serde(skip)]
    pub sensitive: Vec<String>,
}

impl Object {
    pub fn new(value: Value, file: impl Into<String>, line: u32) -> Self {
        Object { value, file: file.into(), line, sensitive: Vec::new() }
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

    /// Identity of the object in a cluster.
    pub fn key(&self) -> ObjKey {
        let version = self.api_version().rsplit_once('/').map_or(self.api_version(), |(_, v)| v);
        ObjKey {
            group: self.group().into(),
            version: version.into(),
            kind: self.kind().into(),
            namespace: self.namespace().unwrap_or("").into(),
            name: self.name().into(),
        }
    }

    /// `file:line`, or `file`, or `generated`.
    pub fn origin(&self) -> String {
        match (self.file.as_str(), self.line) {
            ("", _) => "generated".into(),
            (f, 0) => f.into(),
            (f, l) => format!("{f}:{l}"),
        }
    }

    /// A copy safe to show anywhere: Secret `data` and `stringData` values, and the
    /// `sensitive` ones, are replaced, keys kept.
    pub fn redacted(&self) -> Value {
        let mut value = self.value.clone();
        redact(&mut value);
        for pointer in &self.sensitive {
            if let Some(v) = value.pointer_mut(pointer) {
                *v = Value::String(REDACTED.into());
            }
        }
        value
    }

    /// JSON pointers of the string values that hold SOPS ciphertext (`ENC[AES256_GCM,…]`),
    /// and of a Secret's `data` values that hold it once base64-decoded (what a kustomize
    /// `secretGenerator` makes of an encrypted file).
    pub fn encrypted_values(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .string_values()
            .into_iter()
            .filter(|(_, s)| s.starts_with(SOPS_CIPHERTEXT))
            .map(|(pointer, _)| pointer)
            .collect();
        if self.kind() == "Secret"
            && let Some(Value::Object(data)) = self.value.get("data")
        {
            let cipher = SOPS_CIPHERTEXT.as_bytes();
            for (key, value) in data {
                let Some(bytes) = value.as_str().and_then(decode_secret_data) else { continue };
                if bytes.windows(cipher.len()).any(|w| w == cipher) {
                    out.push(format!("/data/{}", key.replace('~', "~0").replace('/', "~1")));
                }
            }
        }
        out
    }

    /// Every string value, with its JSON pointer, in document order.
    pub fn string_values(&self) -> Vec<(String, &str)> {
        fn walk<'v>(value: &'v Value, at: &mut String, out: &mut Vec<(String, &'v str)>) {
            match value {
                Value::String(s) => out.push((at.clone(), s)),
                Value::Object(map) => {
                    for (k, v) in map {
                        let len = at.len();
                        at.push('/');
                        at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                        walk(v, at, out);
                        at.truncate(len);
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        let len = at.len();
                        at.push_str(&format!("/{i}"));
                        walk(v, at, out);
                        at.truncate(len);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.value, &mut String::new(), &mut out);
        out
    }

    /// Whether it still carries SOPS metadata (a top-level `sops` with a `mac`) or ciphertext.
    pub fn is_sops_encrypted(&self) -> bool {
        self.value.get("sops").is_some_and(|s| s.get("mac").is_some() || s.get("lastmodified").is_some())
            || !self.encrypted_values().is_empty()
    }
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value.as_object_mut().expect("just made an object")
}

/// A Secret's `data` value decoded, as the apiserver decodes it: base64 whose line breaks
/// (kustomize wraps long values) are ignored.
pub fn decode_secret_data(value: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).ok()
}

/// How a value SOPS encrypted begins.
pub const SOPS_CIPHERTEXT: &str = "ENC[AES256_GCM,";

/// Placeholder shown instead of secret values.
pub const REDACTED: &str = "<redacted>";

/// `text` with each of `values` (of 4 bytes or more) replaced by `***`: a message that
/// may quote secret values (a plugin's log or error, a server's answer).
pub fn redact_text<'a>(text: &str, values: impl IntoIterator<Item = &'a String>) -> String {
    values.into_iter().filter(|v| v.len() >= 4).fold(text.to_owned(), |t, v| t.replace(v.as_str(), "***"))
}

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
    fn an_object_key_is_the_same_object_whatever_the_version() {
        let v1 = Object::new(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a"}}),
            "",
            0,
        );
        let beta = Object::new(
            json!({"apiVersion": "apps/v1beta2", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a"}}),
            "",
            0,
        );
        let (k1, k2) = (v1.key(), beta.key());
        assert_eq!(k1, k2);
        assert_eq!(k1.cmp(&k2), Ordering::Equal);
        assert_eq!(std::collections::HashSet::from([k1.clone(), k2.clone()]).len(), 1);
        assert_eq!((k1.api_version(), k2.version.as_str()), ("apps/v1".to_owned(), "v1beta2"));
        assert_eq!(k1.to_string(), "Deployment/a/web");
        let core =
            Object::new(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}), "", 0).key();
        assert_eq!(
            (core.group.as_str(), core.api_version().as_str(), core.to_string().as_str()),
            ("", "v1", "Namespace/a")
        );
        let other = Object::new(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "b"}}),
            "",
            0,
        );
        assert_ne!(k1, other.key());
    }

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

    #[test]
    fn ciphertext_is_found_in_values_and_in_secret_data_once_decoded() {
        // "ENC[AES256_GCM,data:x]" and "sops_mac=ENC[AES256_GCM,data:x]\n", base64-encoded.
        let secret = Object::new(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"a": "RU5DW0FFUzI1Nl9H\nQ00sZGF0YTp4XQ==\n", "b/c": "c29wc19tYWM9RU5DW0FFUzI1Nl9HQ00sZGF0YTp4XQo=", "plain": "aGk="},
                   "stringData": {"d": "ENC[AES256_GCM,data:y]"}}),
            "",
            0,
        );
        assert_eq!(secret.encrypted_values(), ["/stringData/d", "/data/a", "/data/b~1c"]);
        assert!(secret.is_sops_encrypted());
        let cm = Object::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "RU5DW0FFUzI1Nl9HQ00sZGF0YTp4XQ=="}}),
            "",
            0,
        );
        assert!(!cm.is_sops_encrypted(), "only a Secret's data is base64");
    }
}
