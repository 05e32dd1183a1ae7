//! Objects as plugins see them (the object model shared with the host), and their
//! conversion to and from the contract's documents.

pub use moor_object::Object;

use crate::bindings::moor::plugin::types::{Document, ObjectRef};
use crate::{Diagnostic, Outcome};

/// What plugins need of an [`Object`] beyond the shared model.
pub trait ObjectExt {
    /// `apiVersion`, kind, namespace and name, for diagnostics.
    fn reference(&self) -> ObjectRef;
}

impl ObjectExt for Object {
    fn reference(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version().to_owned(),
            kind: self.kind().to_owned(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }
}

pub(crate) fn into_document(object: Object) -> Document {
    Document { json: object.value.to_string(), file: object.file, line: object.line }
}

pub(crate) fn from_document(doc: Document) -> Outcome<Object> {
    match serde_json::from_str(&doc.json) {
        Ok(value) => Ok(Object::new(value, doc.file, doc.line)),
        Err(e) => {
            Err(vec![Diagnostic::error(format!("host sent an object that is not JSON: {e}")).at(doc.file, doc.line)])
        }
    }
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
