//! `policy` validator: required labels, denied kinds, allowed image registries, and no
//! privileged containers or hostPath volumes.
//!
//! Config (`with`): `require_labels`, `deny_kinds`, `allowed_registries`,
//! `allow_privileged` (default false), `allow_host_path` (default false) and `severity`
//! (`error`, the default, blocks the apply; `warning` only reports).

use moor_plugin_sdk::{Diagnostic, Info, Object, Severity, Validator, export_validator};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub require_labels: Vec<String>,
    pub deny_kinds: Vec<String>,
    pub allowed_registries: Vec<String>,
    pub allow_privileged: bool,
    pub allow_host_path: bool,
    pub severity: Level,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Error,
    Warning,
}

pub struct Policy;

impl Validator for Policy {
    type Config = Config;

    fn info() -> Info {
        let strings = serde_json::json!({"type": "array", "items": {"type": "string"}});
        Info::new("policy", env!("CARGO_PKG_VERSION"))
            .description("required labels, denied kinds, allowed registries, no privileged pods or hostPath")
            .schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "require_labels": strings,
                    "deny_kinds": strings,
                    "allowed_registries": strings,
                    "allow_privileged": {"type": "boolean"},
                    "allow_host_path": {"type": "boolean"},
                    "severity": {"enum": ["error", "warning"]}
                }
            }))
    }

    fn validate(config: Config, objects: Vec<Object>) -> Result<Vec<Diagnostic>, String> {
        Ok(objects.iter().flat_map(|o| check(&config, o)).collect())
    }
}

export_validator!(Policy);

/// Every finding about one object.
pub fn check(config: &Config, object: &Object) -> Vec<Diagnostic> {
    let mut messages = Vec::new();
    for label in &config.require_labels {
        if object.label(label).is_none() {
            messages.push(format!("missing required label `{label}`"));
        }
    }
    if config.deny_kinds.iter().any(|k| k == object.kind()) {
        messages.push(format!("kind `{}` is denied", object.kind()));
    }
    if let Some(spec) = pod_spec(object) {
        for container in containers(spec) {
            let name = container.get("name").and_then(Value::as_str).unwrap_or("?");
            if let Some(image) = container.get("image").and_then(Value::as_str)
                && !config.allowed_registries.is_empty()
                && !config.allowed_registries.iter().any(|r| image_allowed(image, r))
            {
                messages.push(format!(
                    "container `{name}` uses image `{image}` from a registry that is not allowed ({})",
                    config.allowed_registries.join(", ")
                ));
            }
            let privileged = container.pointer("/securityContext/privileged").and_then(Value::as_bool);
            if !config.allow_privileged && privileged == Some(true) {
                messages.push(format!("container `{name}` is privileged"));
            }
        }
        if !config.allow_host_path {
            for volume in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
                if volume.get("hostPath").is_some() {
                    let name = volume.get("name").and_then(Value::as_str).unwrap_or("?");
                    messages.push(format!("volume `{name}` mounts a hostPath"));
                }
            }
        }
    }
    let severity = match config.severity {
        Level::Error => Severity::Error,
        Level::Warning => Severity::Warning,
    };
    messages
        .into_iter()
        .map(|m| {
            let d = Diagnostic::error(m).on(object);
            Diagnostic { severity, ..d }
        })
        .collect()
}

/// The pod spec of a Pod or of a workload's pod template.
fn pod_spec(object: &Object) -> Option<&Value> {
    let pointer = match object.kind() {
        "Pod" => "/spec",
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => {
            "/spec/template/spec"
        }
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    };
    object.value.pointer(pointer)
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .filter_map(|key| spec.get(key).and_then(Value::as_array))
        .flatten()
}

/// `nginx` → `docker.io/library/nginx`; `ghcr.io/a/b:1` stays as it is.
pub fn normalize_image(image: &str) -> String {
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    match (first.is_empty(), is_host) {
        (true, _) => format!("docker.io/library/{rest}"),
        (false, true) => image.to_owned(),
        (false, false) => format!("docker.io/{image}"),
    }
}

/// Whether `image` is under `allowed` (a registry host or a repository prefix).
pub fn image_allowed(image: &str, allowed: &str) -> bool {
    let image = normalize_image(image);
    let allowed = allowed.trim_end_matches('/');
    image.strip_prefix(allowed).is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', ':', '@']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_matched_by_registry_and_prefix() {
        assert!(image_allowed("nginx:1.27", "docker.io"));
        assert!(image_allowed("nginx:1.27", "docker.io/library"));
        assert!(image_allowed("registry.k8s.io/pause:3.10", "registry.k8s.io"));
        assert!(!image_allowed("registry.k8s.io.evil.com/pause", "registry.k8s.io"));
        assert!(!image_allowed("ghcr.io/other/app", "ghcr.io/acme"));
        assert!(image_allowed("ghcr.io/acme/app@sha256:00", "ghcr.io/acme"));
    }
}
