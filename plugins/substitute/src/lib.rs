//! `substitute` renderer: Flux's post-build variable substitution (`postBuild.substitute`
//! and `substituteFrom`) as a step of the render chain.
//!
//! Each object is written out as YAML, its `${var}` expressions replaced (see [`vars`] for
//! the syntax), and read back as kubectl reads YAML, so `replicas: ${replicas}` becomes a
//! number, as with Flux. Objects labelled or annotated `moor.dev/substitute: disabled` (or
//! Flux's `kustomize.toolkit.fluxcd.io/substitute: disabled`) are left alone.
//!
//! Config (`with`): `vars`, a table of values (the host adds the keys of the ConfigMaps and
//! Secrets the step's `vars_from` names; those in `vars` win), and `strict` (default
//! false): fail on a variable that is not set and has no default.

pub mod vars;

use std::collections::BTreeMap;

use moor_plugin_sdk::{Diagnostic, Info, Input, Object, Outcome, Renderer, export_renderer};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub vars: BTreeMap<String, Value>,
    pub strict: bool,
}

/// The marks that exempt an object.
const DISABLED: [&str; 2] = ["moor.dev/substitute", "kustomize.toolkit.fluxcd.io/substitute"];

pub struct Substitute;

impl Renderer for Substitute {
    type Config = Config;

    fn info() -> Info {
        Info::new("substitute", env!("CARGO_PKG_VERSION"))
            .description("replaces ${var} in objects, as Flux's post-build substitution does")
            .schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "vars": {
                        "type": "object",
                        "propertyNames": {"pattern": "^[_a-zA-Z][_a-zA-Z0-9]*$"},
                        "additionalProperties": {"type": ["string", "number", "boolean"]}
                    },
                    "strict": {"type": "boolean"}
                }
            }))
    }

    fn render(config: Config, input: Input) -> Outcome<Vec<Object>> {
        let objects = input.objects()?;
        let vars = config.vars.into_iter().map(|(k, v)| (k, scalar(v))).collect();
        let mut out = Vec::with_capacity(objects.len());
        let mut errors = Vec::new();
        for object in objects {
            match apply(&object, &vars, config.strict) {
                Ok(done) => out.push(done),
                Err(message) => errors.push(Diagnostic::error(message).on(&object)),
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }
}

export_renderer!(Substitute);

fn scalar(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// One object, substituted (or as it was, when it opts out).
pub fn apply(object: &Object, vars: &BTreeMap<String, String>, strict: bool) -> Result<Object, String> {
    if disabled(&object.value) {
        return Ok(object.clone());
    }
    let text = serde_yaml_ng::to_string(&object.value).map_err(|e| format!("cannot write the object as YAML: {e}"))?;
    let substituted = vars::substitute(&text, vars, strict).map_err(|e| e.to_string())?;
    if substituted == text {
        return Ok(object.clone());
    }
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options.strict_booleans = true;
    let value: Value = serde_saphyr::from_str_with_options(&substituted, options)
        .map_err(|e| format!("after substitution the object is not valid YAML: {e}"))?;
    if !value.is_object() {
        return Err("after substitution the object is no longer a mapping".into());
    }
    Ok(Object::new(value, object.file.clone(), object.line))
}

fn disabled(value: &Value) -> bool {
    ["/metadata/labels", "/metadata/annotations"].iter().any(|at| {
        DISABLED
            .iter()
            .any(|key| value.pointer(at).and_then(|m| m.get(*key)).and_then(Value::as_str) == Some("disabled"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn values_take_their_yaml_type_and_origin_is_kept() {
        let object = Object::new(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web-${cluster}"},
                   "spec": {"replicas": "${replicas:=1}", "paused": "${paused:=false}", "mode": "${mode}"}}),
            "apps/web.yaml",
            4,
        );
        let out = apply(&object, &vars(&[("cluster", "eu"), ("replicas", "3"), ("mode", "0755")]), false).unwrap();
        assert_eq!(out.value["metadata"]["name"], "web-eu");
        assert_eq!(out.value["spec"]["replicas"], 3);
        assert_eq!(out.value["spec"]["paused"], false);
        // As with Flux, the text is substituted and read again as kubectl reads YAML.
        assert_eq!(out.value["spec"]["mode"], 0o755);
        assert_eq!((out.file.as_str(), out.line), ("apps/web.yaml", 4));
    }

    #[test]
    fn opted_out_objects_and_strict_mode() {
        let flux = json!({"kind": "ConfigMap", "metadata": {"name": "a",
            "annotations": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}, "data": {"x": "${x}"}});
        let object = Object::new(flux.clone(), "a.yaml", 1);
        assert_eq!(apply(&object, &vars(&[]), true).unwrap().value, flux);
        let strict = Object::new(json!({"kind": "ConfigMap", "metadata": {"name": "${name}"}}), "b.yaml", 1);
        assert!(apply(&strict, &vars(&[]), true).unwrap_err().contains("`name` is not set"));
        assert_eq!(apply(&strict, &vars(&[]), false).unwrap().value["metadata"]["name"], Value::Null);
    }
}
