//! Objects as the host handles them: the shared object model of host and plugins.

pub use moor_object::{ObjKey, Object, REDACTED, SOPS_CIPHERTEXT, decode_secret_data, redact};
