//! `moor diff`: live against desired, as the server would make it, with secrets redacted.

use serde::Serialize;
use serde_json::Value;

use super::plan::{as_server_would, changes};
use super::{Action, ApplyError, Progress, Target, compare};
use crate::config::{PipelineSpec, Settings};
use crate::kube_api::api_for;
use crate::object::{Object, REDACTED};

/// One object's diff.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDiff {
    pub object: String,
    pub origin: String,
    /// What applying would do: created, configured, unchanged or pruned.
    pub change: Action,
    /// Unified diff of the YAML, live (`-`) against desired (`+`); empty when unchanged.
    pub diff: String,
}

/// Diffs a rendered pipeline against the cluster, and its inventory (`old`) for what a
/// prune would delete.
pub async fn diff(
    target: &Target,
    settings: &Settings,
    pipeline: &PipelineSpec,
    objects: Vec<Object>,
    old: &super::Inventory,
    progress: Progress<'_>,
) -> Result<Vec<ObjectDiff>, ApplyError> {
    let client = target.client_for(pipeline)?;
    let owner = super::prune::Owner { instance: &settings.instance, pipeline: &pipeline.label };
    let desired = super::wanted(target, &client, pipeline, owner, objects).await?.desired;
    let mut out = Vec::new();
    for d in &desired {
        progress(&format!("diffing {}", d.r));
        let name = d.r.to_string();
        let origin = d.object.origin();
        let Some(resolved) = &d.resolved else {
            out.push(ObjectDiff {
                object: name,
                origin,
                change: Action::Created,
                diff: unified(&Value::Null, &d.object.value, pipeline, &d.object.sensitive),
            });
            continue;
        };
        let api = api_for(&client, &resolved.resource, &d.r.namespace);
        let live = api.get_opt(&d.r.name).await.map_err(|e| ApplyError::object(d, e))?;
        let after = as_server_would(&api, pipeline, d).await.map_err(|e| ApplyError::object(d, e))?;
        let (change, before) = match live {
            None => (Action::Created, Value::Null),
            Some(live) => {
                let live = serde_json::to_value(live).unwrap_or_default();
                let change = if changes(&live, &after) { Action::Configured } else { Action::Unchanged };
                (change, compare::for_display(live))
            }
        };
        let diff = if change == Action::Unchanged {
            String::new()
        } else {
            unified(&before, &after, pipeline, &d.object.sensitive)
        };
        out.push(ObjectDiff { object: name, origin, change, diff });
    }
    if pipeline.prune {
        for r in super::prune::candidates(old, desired.iter().map(|d| &d.r)) {
            out.push(ObjectDiff {
                object: r.to_string(),
                origin: String::new(),
                change: Action::Pruned,
                diff: String::new(),
            });
        }
    }
    Ok(out)
}

/// Unified YAML diff of two objects after redaction (of Secret data, the pipeline's
/// `redact` pointers and the values a decrypting step revealed).
fn unified(before: &Value, after: &Value, pipeline: &PipelineSpec, sensitive: &[String]) -> String {
    let pointers: Vec<String> = pipeline.redact.iter().chain(sensitive).cloned().collect();
    let (before, after) = redact_pair(before, after, &pointers);
    let yaml = |v: &Value| if v.is_null() { String::new() } else { serde_yaml_ng::to_string(v).unwrap_or_default() };
    let (a, b) = (yaml(&before), yaml(&after));
    similar::TextDiff::from_lines(&a, &b).unified_diff().context_radius(3).header("live", "desired").to_string()
}

/// Replaces secret values on both sides, keeping whether each one changed.
pub fn redact_pair(before: &Value, after: &Value, pointers: &[String]) -> (Value, Value) {
    let (mut before, mut after) = (before.clone(), after.clone());
    let is_secret = |v: &Value| {
        v.get("kind").and_then(Value::as_str) == Some("Secret")
            && v.get("apiVersion").and_then(Value::as_str) == Some("v1")
    };
    let mut paths: Vec<String> = pointers.to_vec();
    if is_secret(&before) || is_secret(&after) {
        for field in ["data", "stringData"] {
            let keys: std::collections::BTreeSet<String> = [&before, &after]
                .iter()
                .filter_map(|v| v.get(field).and_then(Value::as_object))
                .flat_map(|m| m.keys().cloned())
                .collect();
            paths.extend(keys.into_iter().map(|k| format!("/{field}/{}", k.replace('~', "~0").replace('/', "~1"))));
        }
    }
    for pointer in paths {
        let old = before.pointer(&pointer).cloned();
        let new = after.pointer(&pointer).cloned();
        let changed = old != new;
        if let Some(v) = before.pointer_mut(&pointer) {
            *v = Value::String(REDACTED.into());
        }
        if let Some(v) = after.pointer_mut(&pointer) {
            *v =
                Value::String(if changed && old.is_some() { format!("{REDACTED} (changed)") } else { REDACTED.into() });
        }
    }
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_never_reach_the_diff() {
        let live = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "c2VjcmV0", "b": "c2FtZQ=="}});
        let desired = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "bmV3", "b": "c2FtZQ=="}, "stringData": {"c": "plain"}});
        let (b, a) = redact_pair(&live, &desired, &[]);
        let text = format!("{b}{a}");
        for secret in ["c2VjcmV0", "c2FtZQ==", "bmV3", "plain"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(a["data"]["a"], "<redacted> (changed)");
        assert_eq!(a["data"]["b"], "<redacted>");
    }

    #[test]
    fn fields_the_pipeline_marks_secret_are_redacted() {
        let live = json!({"kind": "ConfigMap", "data": {"password": "hunter2"}});
        let (b, a) = redact_pair(&live, &live, &["/data/password".into()]);
        assert_eq!((b["data"]["password"].as_str(), a["data"]["password"].as_str()), (Some(REDACTED), Some(REDACTED)));
    }
}
