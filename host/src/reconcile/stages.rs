//! Stages 2 to 4 of the offline half: the render chain, the objects it made, and the
//! validate chain. [`super::Moor::render`] (the offline half of every run) calls them in
//! that order.

use std::collections::BTreeMap;

use super::Finding;
use super::{StageError, StepCall, overlay, revealed};
use crate::object::{ObjKey, Object};
use crate::plugins::{Document, RenderContext, RenderInput, Renderer, Validator};
use crate::source::Snapshot;

/// Stage 2: the render chain. The first renderer reads the snapshot; each later one gets
/// the previous stage's objects, or, after a renderer that rewrote files of the tree (one
/// of the `tree-renderer` world), the tree with those files replaced ([`overlay`]). Values
/// that held SOPS ciphertext before a step and do not after it were decrypted: they are
/// marked sensitive, shown redacted from then on, and their plaintext (returned) is hidden
/// from what every later step says; so is what a rewrite revealed.
pub(super) fn render(
    snapshot: &Snapshot,
    path: &str,
    renderers: &mut [StepCall<Renderer<'_>>],
    context: &RenderContext,
) -> Result<(Vec<Object>, Vec<String>), StageError> {
    let mut docs: Option<Vec<Document>> = None;
    let mut tree: Option<overlay::Laid> = None;
    let mut last = "";
    let mut revealed: BTreeMap<ObjKey, Vec<String>> = BTreeMap::new();
    let mut plaintext = Vec::new();
    let mut overlaid = Vec::new();
    let count = renderers.len();
    for (index, step) in renderers.iter_mut().enumerate() {
        step.hide(&plaintext);
        let encrypted = docs.as_deref().map(revealed::ciphertexts).unwrap_or_default();
        let root = tree.as_ref().map_or(snapshot.root.as_path(), overlay::Laid::root);
        last = step.plugin().name();
        let input = match docs.take() {
            None => match step.run(|renderer, _, _| renderer.tree_rewriter()) {
                // A renderer of the `tree-renderer` world, given the tree: the next one
                // reads the tree with its files replaced.
                Some(rewriter) => {
                    let refused = |message: String| StageError::Rewrite { plugin: last.to_owned(), message };
                    if index + 1 == count {
                        return Err(refused(
                            "it rewrites files for the renderer after it, and none follows: add one (such as \
                             `kustomize`) after it"
                                .into(),
                        ));
                    }
                    let rewritten = step
                        .run(|_, with, scope| rewriter.rewrite(with, root, path, scope))
                        .map_err(StageError::RenderCall)?
                        .map_err(|diagnostics| render_failed(step, diagnostics))?;
                    let found = overlay::TreeOverlay::of(rewritten).map_err(refused)?;
                    plaintext.extend(found.revealed.iter().cloned());
                    overlaid.extend(found.revealed.iter().cloned());
                    if !found.files.is_empty() {
                        tree = Some(overlay::lay_out(root, &found).map_err(refused)?);
                    }
                    continue;
                }
                None => RenderInput::Tree { snapshot: root, path },
            },
            Some(docs) => RenderInput::Objects(docs),
        };
        let out = step
            .run(|renderer, with, scope| renderer.render(with, input, context, scope))
            .map_err(StageError::RenderCall)?
            .map_err(|diagnostics| render_failed(step, diagnostics))?;
        for decrypted in revealed::decrypted_values(&out, &encrypted) {
            plaintext.extend(decrypted.plaintext);
            revealed.entry(decrypted.key).or_default().extend(decrypted.pointers);
        }
        docs = Some(out);
    }
    let mut objects = normalize(docs.unwrap_or_default(), last, revealed)?;
    revealed::mark_sensitive(&mut objects, &overlaid);
    Ok((objects, plaintext))
}

/// A renderer's own diagnostics, as the stage's failure.
fn render_failed(step: &StepCall<Renderer<'_>>, diagnostics: Vec<crate::plugins::Diagnostic>) -> StageError {
    let findings = diagnostics.into_iter().map(|d| step.finding(d)).collect();
    StageError::Render { plugin: step.plugin().name().to_owned(), findings }
}

/// Stage 3: every object is a JSON object with `apiVersion`, `kind` and `metadata.name`,
/// appears once, and is not SOPS-encrypted any more (nothing encrypted is ever applied).
fn normalize(
    docs: Vec<Document>,
    plugin: &str,
    mut revealed: BTreeMap<ObjKey, Vec<String>>,
) -> Result<Vec<Object>, StageError> {
    let mut seen: BTreeMap<ObjKey, String> = BTreeMap::new();
    let mut objects = Vec::with_capacity(docs.len());
    for doc in docs {
        let at = Object::new(serde_json::Value::Null, doc.file.clone(), doc.line).origin();
        let value: serde_json::Value = serde_json::from_str(&doc.json)
            .map_err(|e| StageError::Object { plugin: plugin.into(), message: format!("{at}: not JSON: {e}") })?;
        let mut object = Object::new(value, doc.file, doc.line);
        if !object.value.is_object()
            || object.api_version().is_empty()
            || object.kind().is_empty()
            || object.name().is_empty()
        {
            return Err(StageError::Object {
                plugin: plugin.into(),
                message: format!("{at}: an object needs `apiVersion`, `kind` and `metadata.name`"),
            });
        }
        if object.is_sops_encrypted() {
            return Err(StageError::Encrypted { object: object.display_name(), origin: object.origin() });
        }
        if let Some(first) = seen.insert(object.key(), object.origin()) {
            return Err(StageError::Object {
                plugin: plugin.into(),
                message: format!("{} is defined twice, at {first} and at {}", object.display_name(), object.origin()),
            });
        }
        object.sensitive = revealed.remove(&object.key()).unwrap_or_default();
        objects.push(object);
    }
    Ok(objects)
}

/// Stage 4: the validate chain. Every validator sees every object; any error blocks.
pub(super) fn validate(objects: &[Object], validators: &[StepCall<Validator<'_>>]) -> Result<Vec<Finding>, StageError> {
    if validators.is_empty() {
        return Ok(Vec::new());
    }
    let docs: Vec<Document> =
        objects.iter().map(|o| Document { json: o.value.to_string(), file: o.file.clone(), line: o.line }).collect();
    let mut findings = Vec::new();
    for step in validators {
        match step
            .run(|validator, with, scope| validator.validate(with, &docs, scope))
            .map_err(StageError::ValidateCall)?
        {
            Ok(diagnostics) => findings.extend(diagnostics.into_iter().map(|d| step.finding(d))),
            Err(message) => {
                let message = step.redact(&message);
                return Err(StageError::Validator { plugin: step.plugin().name().to_owned(), message });
            }
        }
    }
    if findings.iter().any(Finding::is_error) {
        return Err(StageError::Blocked { findings });
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str, line: u32) -> Document {
        Document { json: json.into(), file: "app/all.yaml".into(), line }
    }

    const CM: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"web"}}"#;

    fn refusal(docs: Vec<Document>) -> String {
        normalize(docs, "yaml", BTreeMap::new()).expect_err("refused").to_string()
    }

    #[test]
    fn objects_keep_their_origin_and_what_was_revealed_in_them() {
        let key = Object::new(serde_json::from_str(CM).unwrap(), "", 0).key();
        let revealed = BTreeMap::from([(key, vec!["/data/password".to_owned()])]);
        let objects = normalize(vec![doc(CM, 3)], "yaml", revealed).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!((objects[0].file.as_str(), objects[0].line), ("app/all.yaml", 3));
        assert_eq!(objects[0].sensitive, ["/data/password"]);
    }

    #[test]
    fn an_object_defined_twice_is_refused_naming_both_places() {
        let message = refusal(vec![doc(CM, 1), doc(CM, 9)]);
        assert!(message.contains("defined twice"), "{message}");
        assert!(message.contains("app/all.yaml:1") && message.contains("app/all.yaml:9"), "{message}");
    }

    #[test]
    fn what_is_not_an_object_is_refused_naming_the_plugin_and_the_line() {
        for bad in ["{not json", r#"["a"]"#, r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#] {
            let message = refusal(vec![doc(bad, 4)]);
            assert!(message.contains("yaml") && message.contains("app/all.yaml:4"), "{bad}: {message}");
        }
    }

    #[test]
    fn an_object_still_encrypted_is_refused() {
        let sops = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"sops":{"mac":"x"}}"#;
        assert!(matches!(normalize(vec![doc(sops, 1)], "yaml", BTreeMap::new()), Err(StageError::Encrypted { .. })));
    }
}
