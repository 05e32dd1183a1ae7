//! Kubernetes objects as plugins see them: a JSON value plus its origin file and line.

use serde_json::{Map, Value};

use crate::bindings::moor::plugin::types::{Document, ObjectRef};
use crate::{Diagnostic, Outcome};

/// One Kubernetes object and where it came from.
#[derive(Debug, Clone, PartialEq)]
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

    /// `apiVersion`, kind, namespace and name, for diagnostics.
    pub fn reference(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version().to_owned(),
            kind: self.kind().to_owned(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }

    #[doc(hidden)]
    pub fn into_document(self) -> Document {
        Document { json: self.value.to_string(), file: self.file, line: self.line }
    }

    #[doc(hidden)]
    pub fn from_document(doc: Document) -> Outcome<Object> {
        match serde_json::from_str(&doc.json) {
            Ok(value) => Ok(Object { value, file: doc.file, line: doc.line }),
            Err(e) => Err(vec![
                Diagnostic::error(format!("host sent an object that is not JSON: {e}")).at(doc.file, doc.line),
            ]),
        }
    }
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value.as_object_mut().expect("just made an object")
}

/// Display helpers for [`ObjectRef`].
pub trait ObjectRefExt {
    /// `Kind/namespace/name` or `Kind/name`.
    fn display(&self) -> String;
}

impl ObjectRefExt for ObjectRef {
    fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind, ns, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}
