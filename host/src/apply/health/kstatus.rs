//! Readiness of a live object by kstatus's rules (`sigs.k8s.io/cli-utils/pkg/kstatus`), as
//! Flux, Helm 4 and `kubectl wait` judge it: pure functions of the object.

use serde_json::Value;

/// What an object's status says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
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

/// Readiness of `live`, following kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus`) as Flux,
/// Helm 4 and `kubectl wait` do: first what every kind shares (deletion, observed
/// generation, `Stalled` and `Reconciling` conditions), then the rules of its kind.
pub fn check(group: &str, kind: &str, live: &Value) -> Health {
    if let Some(generic) = generic(live) {
        return generic;
    }
    match (group, kind) {
        ("apps", "Deployment") => deployment(live),
        ("apps", "ReplicaSet") => replica_set(live),
        ("apps", "StatefulSet") => stateful_set(live),
        ("apps", "DaemonSet") => daemon_set(live),
        ("batch", "Job") => job(live),
        ("", "Pod") => pod(live),
        ("", "PersistentVolumeClaim") => match live.pointer("/status/phase").and_then(Value::as_str) {
            Some("Bound") => Health::Ready,
            Some("Lost") => Health::Failed("claim lost its volume".into()),
            phase => Health::Progressing(format!("claim is {}", phase.unwrap_or("pending"))),
        },
        ("", "Namespace") => match live.pointer("/status/phase").and_then(Value::as_str) {
            Some("Terminating") => Health::Failed("namespace is terminating".into()),
            _ => Health::Ready,
        },
        ("", "Service") => service(live),
        ("policy", "PodDisruptionBudget") => {
            let (healthy, wanted) = (int(live, "/status/currentHealthy"), int(live, "/status/desiredHealthy"));
            if healthy < wanted {
                Health::Progressing(format!("budget not met: {healthy}/{wanted} pods healthy"))
            } else {
                Health::Ready
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if let Some(c) = condition(live, "NamesAccepted").filter(|c| status_of(c) == Some("False")) {
                Health::Failed(format!("names not accepted: {}", reason(c)))
            } else if condition_is(live, "Established", "True") {
                Health::Ready
            } else {
                Health::Progressing("not established yet".into())
            }
        }
        _ => custom(live),
    }
}

fn status_of(c: &Value) -> Option<&str> {
    c.get("status").and_then(Value::as_str)
}

/// What kstatus checks on every kind before its own rules, or `None` to go on.
fn generic(live: &Value) -> Option<Health> {
    if live.pointer("/metadata/deletionTimestamp").and_then(Value::as_str).is_some_and(|t| !t.is_empty()) {
        return Some(Health::Progressing("being deleted".into()));
    }
    let generation = live.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = live.pointer("/status/observedGeneration").and_then(Value::as_i64);
    if let (Some(generation), Some(observed)) = (generation, observed)
        && observed < generation
    {
        return Some(Health::Progressing("waiting for the controller to observe the new generation".into()));
    }
    if let Some(c) = condition(live, "Stalled").filter(|c| status_of(c) == Some("True")) {
        return Some(Health::Failed(format!("stalled: {}", reason(c))));
    }
    if let Some(c) = condition(live, "Reconciling").filter(|c| status_of(c) == Some("True")) {
        return Some(Health::Progressing(format!("reconciling: {}", reason(c))));
    }
    None
}

fn replicas(live: &Value) -> i64 {
    live.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn deployment(live: &Value) -> Health {
    if let Some(c) = condition(live, "Progressing")
        && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
    {
        return Health::Failed(format!("rollout failed: {}", reason(c)));
    }
    let want = replicas(live);
    let (total, updated) = (int(live, "/status/replicas"), int(live, "/status/updatedReplicas"));
    let (ready, available) = (int(live, "/status/readyReplicas"), int(live, "/status/availableReplicas"));
    if updated < want || total < want {
        return Health::Progressing(format!("{updated}/{want} replicas updated"));
    }
    if total > updated {
        return Health::Progressing(format!("{} old replica(s) pending termination", total - updated));
    }
    if available < want || ready < want {
        return Health::Progressing(format!("{available}/{want} replicas available, {ready} ready"));
    }
    if condition(live, "Available").is_some_and(|c| status_of(c) != Some("True")) {
        return Health::Progressing("deployment is not Available".into());
    }
    Health::Ready
}

fn replica_set(live: &Value) -> Health {
    if let Some(c) = condition(live, "ReplicaFailure").filter(|c| status_of(c) == Some("True")) {
        return Health::Progressing(format!("replica failure: {}", reason(c)));
    }
    let want = replicas(live);
    let (labeled, total) = (int(live, "/status/fullyLabeledReplicas"), int(live, "/status/replicas"));
    let (ready, available) = (int(live, "/status/readyReplicas"), int(live, "/status/availableReplicas"));
    if labeled < want || available < want || ready < want {
        Health::Progressing(format!("{available}/{want} replicas available, {ready} ready"))
    } else if total > want {
        Health::Progressing(format!("{} replica(s) pending termination", total - want))
    } else {
        Health::Ready
    }
}

fn stateful_set(live: &Value) -> Health {
    let strategy = live.pointer("/spec/updateStrategy/type").and_then(Value::as_str);
    let want = replicas(live);
    let (total, ready) = (int(live, "/status/replicas"), int(live, "/status/readyReplicas"));
    if total < want || ready < want {
        return Health::Progressing(format!("{ready}/{want} replicas ready"));
    }
    if total > want {
        return Health::Progressing(format!("{} replica(s) pending termination", total - want));
    }
    if strategy == Some("OnDelete") {
        return Health::Ready;
    }
    if let Some(partition) = live.pointer("/spec/updateStrategy/rollingUpdate/partition").and_then(Value::as_i64)
        && partition > 0
    {
        let updated = int(live, "/status/updatedReplicas");
        return if updated < want - partition {
            Health::Progressing(format!("{updated}/{} replicas updated (partition {partition})", want - partition))
        } else {
            Health::Ready
        };
    }
    let current = live.pointer("/status/currentRevision").and_then(Value::as_str);
    let update = live.pointer("/status/updateRevision").and_then(Value::as_str);
    if current != update {
        return Health::Progressing("waiting for the rolling update to finish".into());
    }
    if int(live, "/status/currentReplicas") < want {
        return Health::Progressing(format!("{}/{want} replicas current", int(live, "/status/currentReplicas")));
    }
    Health::Ready
}

fn daemon_set(live: &Value) -> Health {
    if live.pointer("/status/desiredNumberScheduled").is_none() {
        return Health::Progressing("waiting for the controller to schedule pods".into());
    }
    let want = int(live, "/status/desiredNumberScheduled");
    for (field, noun) in [
        ("/status/currentNumberScheduled", "scheduled"),
        ("/status/updatedNumberScheduled", "updated"),
        ("/status/numberAvailable", "available"),
        ("/status/numberReady", "ready"),
    ] {
        let n = int(live, field);
        if n < want {
            return Health::Progressing(format!("{n}/{want} pods {noun}"));
        }
    }
    Health::Ready
}

fn job(live: &Value) -> Health {
    if let Some(c) = condition(live, "Failed").filter(|c| status_of(c) == Some("True")) {
        Health::Failed(format!("job failed: {}", reason(c)))
    } else if condition_is(live, "Complete", "True") {
        Health::Ready
    } else {
        Health::Progressing("job not complete".into())
    }
}

fn pod(live: &Value) -> Health {
    match live.pointer("/status/phase").and_then(Value::as_str) {
        Some("Failed") => return Health::Failed("pod failed".into()),
        Some("Succeeded") => return Health::Ready,
        _ => {}
    }
    let crashing = live
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str) == Some("CrashLoopBackOff"))
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect::<Vec<_>>();
    if !crashing.is_empty() {
        return Health::Failed(format!("container(s) crash looping: {}", crashing.join(", ")));
    }
    if condition_is(live, "Ready", "True") {
        return Health::Ready;
    }
    match condition(live, "PodScheduled").filter(|c| c.get("reason").and_then(Value::as_str) == Some("Unschedulable")) {
        Some(c) => Health::Progressing(format!("pod cannot be scheduled: {}", reason(c))),
        None => Health::Progressing("pod not ready".into()),
    }
}

/// A LoadBalancer waits for its address; every other Service is ready at once (its
/// endpoints are the workloads' business, which may come later from an operator).
fn service(live: &Value) -> Health {
    if live.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
        return Health::Ready;
    }
    let addresses = live.pointer("/status/loadBalancer/ingress").and_then(Value::as_array).map_or(0, Vec::len);
    if addresses == 0 { Health::Progressing("waiting for the load balancer's address".into()) } else { Health::Ready }
}

/// Any other kind: its `Ready` condition when it has one, ready otherwise (after the
/// generic checks).
fn custom(live: &Value) -> Health {
    match condition(live, "Ready") {
        Some(c) if status_of(c) == Some("True") => Health::Ready,
        Some(c) => Health::Progressing(format!("Ready is not True: {}", reason(c))),
        None => Health::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cr(status: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"generation": 3}, "status": status})
    }

    fn state(group: &str, kind: &str, live: &Value) -> &'static str {
        match check(group, kind, live) {
            Health::Ready => "ready",
            Health::Progressing(_) => "progressing",
            Health::Failed(_) => "failed",
        }
    }

    #[test]
    fn a_deployment_past_its_deadline_fails_with_the_reason() {
        let live = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": {
            "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet \"web-1\" has timed out progressing."}]
        }});
        assert_eq!(
            check("apps", "Deployment", &live),
            Health::Failed(
                "rollout failed: ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing.".into()
            )
        );
    }

    #[test]
    fn custom_resources_follow_generation_and_the_ready_reconciling_and_stalled_conditions() {
        let cond = |t: &str, s: &str| json!({"type": t, "status": s, "reason": "R", "message": "m"});
        assert_eq!(state("example.com", "Widget", &cr(json!({}))), "ready");
        assert_eq!(state("example.com", "Widget", &cr(json!({"observedGeneration": 2}))), "progressing");
        assert_eq!(
            state(
                "example.com",
                "Widget",
                &cr(json!({"observedGeneration": 3, "conditions": [cond("Ready", "True")]}))
            ),
            "ready"
        );
        assert_eq!(state("example.com", "Widget", &cr(json!({"conditions": [cond("Ready", "False")]}))), "progressing");
        assert_eq!(
            state(
                "example.com",
                "Widget",
                &cr(json!({"conditions": [cond("Ready", "True"), cond("Reconciling", "True")]}))
            ),
            "progressing"
        );
        assert_eq!(
            check("example.com", "Widget", &cr(json!({"conditions": [cond("Stalled", "True")]}))),
            Health::Failed("stalled: R: m".into())
        );
        let deleting = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(state("example.com", "Widget", &deleting), "progressing");
    }

    #[test]
    fn services_are_ready_at_once_except_a_load_balancer_without_an_address() {
        let svc = |spec: Value, status: Value| json!({"spec": spec, "status": status});
        assert_eq!(state("", "Service", &svc(json!({"selector": {"app": "operator-made"}}), json!({}))), "ready");
        assert_eq!(state("", "Service", &svc(json!({"clusterIP": "None"}), json!({}))), "ready");
        assert_eq!(state("", "Service", &svc(json!({"type": "LoadBalancer"}), json!({}))), "progressing");
        let addressed =
            svc(json!({"type": "LoadBalancer"}), json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}));
        assert_eq!(state("", "Service", &addressed), "ready");
    }

    #[test]
    fn deployments_need_every_replica_updated_available_and_no_old_ones() {
        let d = |status: Value| json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": status});
        let full = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                          "conditions": [{"type": "Available", "status": "True"}]});
        assert_eq!(state("apps", "Deployment", &d(full.clone())), "ready");
        let mut surge = full.clone();
        surge["replicas"] = json!(3);
        assert_eq!(state("apps", "Deployment", &d(surge)), "progressing");
        let mut unavailable = full.clone();
        unavailable["availableReplicas"] = json!(1);
        assert_eq!(state("apps", "Deployment", &d(unavailable)), "progressing");
        let mut old_generation = full;
        old_generation["observedGeneration"] = json!(0);
        assert_eq!(state("apps", "Deployment", &d(old_generation)), "progressing");
    }

    #[test]
    fn replica_sets_stateful_sets_and_daemon_sets_count_their_pods() {
        let rs = json!({"spec": {"replicas": 2}, "status": {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1}});
        assert_eq!(state("apps", "ReplicaSet", &rs), "progressing");
        let sts = |status: Value| json!({"spec": {"replicas": 2}, "status": status});
        let done = json!({"replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "currentRevision": "a", "updateRevision": "a"});
        assert_eq!(state("apps", "StatefulSet", &sts(done)), "ready");
        let rolling = json!({"replicas": 2, "readyReplicas": 2, "currentReplicas": 1, "currentRevision": "a", "updateRevision": "b"});
        assert_eq!(state("apps", "StatefulSet", &sts(rolling)), "progressing");
        let ds = |ready: i64| json!({"status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": ready}});
        assert_eq!(state("apps", "DaemonSet", &ds(2)), "ready");
        assert_eq!(state("apps", "DaemonSet", &ds(1)), "progressing");
        assert_eq!(state("apps", "DaemonSet", &json!({"status": {}})), "progressing");
    }

    #[test]
    fn jobs_pods_claims_budgets_and_crds() {
        let with = |t: &str, s: &str| json!({"status": {"conditions": [{"type": t, "status": s}]}});
        assert_eq!(state("batch", "Job", &with("Complete", "True")), "ready");
        assert_eq!(state("batch", "Job", &with("Failed", "True")), "failed");
        assert_eq!(state("batch", "Job", &json!({})), "progressing");
        assert_eq!(state("", "Pod", &with("Ready", "True")), "ready");
        let crashing = json!({"status": {"phase": "Running", "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(check("", "Pod", &crashing), Health::Failed("container(s) crash looping: app".into()));
        assert_eq!(state("", "PersistentVolumeClaim", &json!({"status": {"phase": "Bound"}})), "ready");
        assert_eq!(state("", "PersistentVolumeClaim", &json!({"status": {"phase": "Pending"}})), "progressing");
        assert_eq!(
            state("policy", "PodDisruptionBudget", &json!({"status": {"currentHealthy": 1, "desiredHealthy": 2}})),
            "progressing"
        );
        assert_eq!(
            state("policy", "PodDisruptionBudget", &json!({"status": {"currentHealthy": 2, "desiredHealthy": 2}})),
            "ready"
        );
        assert_eq!(state("apiextensions.k8s.io", "CustomResourceDefinition", &with("Established", "True")), "ready");
        assert_eq!(
            state("apiextensions.k8s.io", "CustomResourceDefinition", &with("NamesAccepted", "False")),
            "failed"
        );
    }
}
