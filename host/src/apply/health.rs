//! Readiness of live objects (FX-8): built in for standard kinds, conditions for custom
//! resources. A failed rollout is reported at once, with its reason.

use serde_json::Value;

/// What an object's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Not yet; the text says what is missing.
    Progressing(String),
    /// It will not get better by waiting.
    Failed(String),
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn condition<'a>(v: &'a Value, kind: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")?.as_array()?.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_is(v: &Value, kind: &str, status: &str) -> bool {
    condition(v, kind).and_then(|c| c.get("status")).and_then(Value::as_str) == Some(status)
}

fn reason(c: &Value) -> String {
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
    let message = c.get("message").and_then(Value::as_str).unwrap_or("");
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_owned(),
        _ => message.to_owned(),
    }
}

/// Whether the controller has seen the latest spec.
fn observed(v: &Value) -> bool {
    int(v, "/status/observedGeneration") >= int(v, "/metadata/generation")
}

/// A rollout is done when the controller saw the latest spec and `want` are ready and updated.
fn rollout(live: &Value, want: i64, ready: i64, updated: i64, noun: &str) -> Health {
    if !observed(live) {
        Health::Progressing("waiting for the controller to observe the new generation".into())
    } else if ready < want || updated < want {
        Health::Progressing(format!("{ready}/{want} {noun} ready, {updated} updated"))
    } else {
        Health::Ready
    }
}

/// Readiness of `live`. `endpoints` is the number of ready endpoints of a Service (when
/// the caller looked them up).
pub fn check(group: &str, kind: &str, live: &Value, endpoints: Option<usize>) -> Health {
    let progressing = |what: String| Health::Progressing(what);
    match (group, kind) {
        ("apps", "Deployment") => {
            if let Some(c) = condition(live, "Progressing")
                && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
            {
                return Health::Failed(format!("rollout failed: {}", reason(c)));
            }
            let want = live.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let (updated, available) = (int(live, "/status/updatedReplicas"), int(live, "/status/availableReplicas"));
            let total = int(live, "/status/replicas");
            if !observed(live) {
                progressing("waiting for the controller to observe the new generation".into())
            } else if updated < want || total > updated || available < want {
                progressing(format!("{available}/{want} replicas available, {updated} updated"))
            } else {
                Health::Ready
            }
        }
        ("apps", "StatefulSet") => {
            let want = live.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            rollout(live, want, int(live, "/status/readyReplicas"), int(live, "/status/updatedReplicas"), "replicas")
        }
        ("apps", "DaemonSet") => {
            let (ready, updated) = (int(live, "/status/numberReady"), int(live, "/status/updatedNumberScheduled"));
            rollout(live, int(live, "/status/desiredNumberScheduled"), ready, updated, "pods")
        }
        ("batch", "Job") => {
            if let Some(c) =
                condition(live, "Failed").filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
            {
                Health::Failed(format!("job failed: {}", reason(c)))
            } else if condition_is(live, "Complete", "True") {
                Health::Ready
            } else {
                progressing("job not complete".into())
            }
        }
        ("", "Pod") => match live.pointer("/status/phase").and_then(Value::as_str) {
            Some("Failed") => Health::Failed("pod failed".into()),
            Some("Succeeded") => Health::Ready,
            _ if condition_is(live, "Ready", "True") => Health::Ready,
            _ => progressing("pod not ready".into()),
        },
        ("", "PersistentVolumeClaim") => match live.pointer("/status/phase").and_then(Value::as_str) {
            Some("Bound") => Health::Ready,
            Some("Lost") => Health::Failed("claim lost its volume".into()),
            phase => progressing(format!("claim is {}", phase.unwrap_or("pending"))),
        },
        ("", "Namespace") => match live.pointer("/status/phase").and_then(Value::as_str) {
            Some("Terminating") => Health::Failed("namespace is terminating".into()),
            _ => Health::Ready,
        },
        ("", "Service") => {
            let no_selector = live.pointer("/spec/selector").and_then(Value::as_object).is_none_or(|m| m.is_empty());
            let external = live.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            match endpoints {
                _ if no_selector || external => Health::Ready,
                Some(n) if n > 0 => Health::Ready,
                _ => progressing("service has no ready endpoints".into()),
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if condition_is(live, "Established", "True") {
                Health::Ready
            } else if let Some(c) =
                condition(live, "NamesAccepted").filter(|c| c.get("status").and_then(Value::as_str) == Some("False"))
            {
                Health::Failed(format!("names not accepted: {}", reason(c)))
            } else {
                progressing("not established yet".into())
            }
        }
        _ => custom(live),
    }
}

/// Any other kind: `Ready` or `Available` conditions when it has them, ready otherwise.
fn custom(live: &Value) -> Health {
    for kind in ["Ready", "Available"] {
        if let Some(c) = condition(live, kind) {
            return match c.get("status").and_then(Value::as_str) {
                Some("True") => Health::Ready,
                Some("False") if c.get("reason").and_then(Value::as_str).is_some_and(|r| r.contains("Fail")) => {
                    Health::Failed(reason(c))
                }
                _ => Health::Progressing(format!("{kind} is not True: {}", reason(c))),
            };
        }
    }
    Health::Ready
}

/// A pipeline's custom readiness rule for one kind, compiled.
pub struct Custom {
    group: Option<String>,
    kind: String,
    ready: (cel::Program, String),
    failed: Option<(cel::Program, String)>,
}

impl std::fmt::Debug for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custom").field("kind", &self.kind).field("ready", &self.ready.1).finish_non_exhaustive()
    }
}

impl Custom {
    /// Compiles a pipeline's checks (their syntax was checked when the config loaded).
    pub fn compile(checks: &[crate::config::HealthCheck]) -> Vec<Custom> {
        use crate::config::SpannedStr;
        let program = |text: &str| cel::Program::compile(text).ok().map(|p| (p, text.to_owned()));
        checks
            .iter()
            .filter_map(|c| {
                let (group, kind) = match c.kind.split_once('/') {
                    Some((g, k)) => (Some(g.to_owned()), k.to_owned()),
                    None => (None, c.kind.clone()),
                };
                Some(Custom {
                    group,
                    kind,
                    ready: program(c.ready.s())?,
                    failed: c.failed.as_ref().and_then(|f| program(f.s())),
                })
            })
            .collect()
    }

    pub fn applies_to(&self, group: &str, kind: &str) -> bool {
        self.kind == kind && self.group.as_deref().is_none_or(|g| g == group)
    }

    /// Evaluates the rule on `live`. An expression that cannot be evaluated yet (a field
    /// not there yet) means "not ready".
    pub fn check(&self, live: &Value) -> Health {
        let holds = |(program, _): &(cel::Program, String)| -> Result<bool, String> {
            let mut context = cel::Context::default();
            context.add_variable("object", live.clone()).map_err(|e| e.to_string())?;
            match program.execute(&context) {
                Ok(cel::Value::Bool(b)) => Ok(b),
                Ok(other) => Err(format!("evaluates to {other:?}, not a boolean")),
                Err(e) => Err(e.to_string()),
            }
        };
        if let Some(failed) = &self.failed
            && holds(failed) == Ok(true)
        {
            return Health::Failed(format!("`{}` holds", failed.1));
        }
        match holds(&self.ready) {
            Ok(true) => Health::Ready,
            Ok(false) => Health::Progressing(format!("waiting for `{}`", self.ready.1)),
            Err(e) => Health::Progressing(format!("waiting for `{}` ({e})", self.ready.1)),
        }
    }
}

/// Whether readiness of this kind needs the Service's endpoints.
pub fn needs_endpoints(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Service"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_past_its_deadline_fails_with_the_reason() {
        let live = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": {
            "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet \"web-1\" has timed out progressing."}]
        }});
        assert_eq!(
            check("apps", "Deployment", &live, None),
            Health::Failed(
                "rollout failed: ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing.".into()
            )
        );
    }

    #[test]
    fn custom_cel_checks_decide_readiness() {
        let checks = Custom::compile(&[crate::config::HealthCheck {
            kind: "example.com/Widget".into(),
            ready: toml::Spanned::new(0..0, "object.status.phase == 'Ready'".into()),
            failed: Some(toml::Spanned::new(0..0, "object.status.phase == 'Failed'".into())),
        }]);
        let check = &checks[0];
        assert!(check.applies_to("example.com", "Widget") && !check.applies_to("other.com", "Widget"));
        assert_eq!(check.check(&json!({"status": {"phase": "Ready"}})), Health::Ready);
        assert!(matches!(check.check(&json!({"status": {"phase": "Failed"}})), Health::Failed(_)));
        assert!(matches!(check.check(&json!({"spec": {}})), Health::Progressing(_)));
    }

    #[test]
    fn custom_resources_use_their_conditions() {
        assert_eq!(custom(&json!({})), Health::Ready);
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(custom(&ready), Health::Ready);
        let waiting =
            json!({"status": {"conditions": [{"type": "Available", "status": "False", "reason": "Scaling"}]}});
        assert!(matches!(custom(&waiting), Health::Progressing(_)));
    }
}
