//! What decrypting steps revealed (pure): which values held SOPS ciphertext before a
//! step and not after it, their plaintext in the forms a later step could quote it, and
//! the output values equal to what a tree overlay revealed.

use std::collections::BTreeMap;

use crate::object::{ObjKey, Object};
use crate::plugins::Document;

/// Marks the string values of `objects` that equal a value an overlay revealed (as a
/// decrypted patch puts them) as sensitive.
pub(super) fn mark_sensitive(objects: &mut [Object], revealed: &[String]) {
    let revealed: std::collections::BTreeSet<&str> =
        revealed.iter().map(String::as_str).filter(|v| v.len() >= 4).collect();
    if revealed.is_empty() {
        return;
    }
    for object in objects {
        let found: Vec<String> = object
            .string_values()
            .into_iter()
            .filter(|(_, s)| revealed.contains(s))
            .map(|(pointer, _)| pointer)
            .filter(|pointer| !object.sensitive.contains(pointer))
            .collect();
        object.sensitive.extend(found);
    }
}

/// The pointers of the SOPS ciphertext values of each object that has any (a Secret's
/// `data` holds it base64-encoded, so every Secret is looked into).
pub(super) fn ciphertexts(docs: &[Document]) -> BTreeMap<ObjKey, Vec<String>> {
    docs.iter()
        .filter(|d| d.json.contains(crate::object::SOPS_CIPHERTEXT) || d.json.contains("\"Secret\""))
        .filter_map(|d| serde_json::from_str(&d.json).ok().map(|v| Object::new(v, d.file.clone(), d.line)))
        .map(|o| (o.key(), o.encrypted_values()))
        .filter(|(_, pointers)| !pointers.is_empty())
        .collect()
}

/// What a step decrypted in one object: where, and the plaintext.
#[derive(Debug, PartialEq)]
pub(super) struct Decrypted {
    pub key: ObjKey,
    pub pointers: Vec<String>,
    /// Each value as text, and a Secret's `data` values also base64-decoded, since that
    /// is how a later step would quote them.
    pub plaintext: Vec<String>,
}

/// Of the `before` ciphertext pointers, those whose values a step's output no longer
/// holds encrypted, per object.
pub(super) fn decrypted_values(out: &[Document], before: &BTreeMap<ObjKey, Vec<String>>) -> Vec<Decrypted> {
    if before.is_empty() {
        return Vec::new();
    }
    out.iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(&d.json).ok())
        .filter_map(|value| {
            let object = Object::new(value, "", 0);
            let pointers = before.get(&object.key())?;
            let mut decrypted = Decrypted { key: object.key(), pointers: Vec::new(), plaintext: Vec::new() };
            let still = object.encrypted_values();
            for pointer in pointers.iter().filter(|p| !still.contains(p)) {
                let Some(value) = object.value.pointer(pointer) else { continue };
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if object.kind() == "Secret" && pointer.starts_with("/data/") {
                    let decoded = crate::object::decode_secret_data(&text).and_then(|d| String::from_utf8(d).ok());
                    decrypted.plaintext.extend(decoded.map(quotable).unwrap_or_default());
                }
                decrypted.plaintext.push(text);
                decrypted.pointers.push(pointer.clone());
            }
            Some(decrypted)
        })
        .collect()
}

/// How a step could quote a decrypted text: whole, and, for a file (a Secret's `data`
/// value decrypted from a SOPS file), each line and each line's value after `=` or `: `.
fn quotable(text: String) -> Vec<String> {
    let mut out = Vec::new();
    if text.contains('\n') {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some((_, value)) = line.split_once('=').or_else(|| line.split_once(": ")) {
                out.push(value.trim().trim_matches('"').to_owned());
            }
            out.push(line.to_owned());
        }
    }
    out.push(text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decrypted_file_is_hidden_whole_by_line_and_by_value() {
        let forms = quotable("A=one-two\nkey: \"three-four\"\n".into());
        for form in ["one-two", "A=one-two", "three-four", "key: \"three-four\"", "A=one-two\nkey: \"three-four\"\n"] {
            assert!(forms.iter().any(|f| f == form), "{form:?} missing from {forms:?}");
        }
        assert_eq!(quotable("single".into()), ["single"]);
    }

    #[test]
    fn values_equal_to_revealed_plaintext_are_marked_sensitive() {
        let value = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                       "data": {"a": "lic-0042", "b": "other", "c": "pw"}});
        let mut objects = [Object::new(value, "", 0)];
        mark_sensitive(&mut objects, &["lic-0042".into(), "pw".into()]);
        assert_eq!(objects[0].sensitive, ["/data/a"], "short values are not matched");
    }
}
