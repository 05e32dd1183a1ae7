//! Whether a dependency holds, as pure functions of the objects a watch sees: `Ok` when it
//! holds, else why not, in words for the log and the status page.

use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::spec::Field;

/// `Ok` when the dependency holds, else why not.
pub type Verdict = Result<(), String>;

/// A Service holds with one ready endpoint in any of its EndpointSlices (an endpoint whose
/// `ready` condition is unset counts as ready, as the API documents).
pub fn service(slices: &[EndpointSlice]) -> Verdict {
    let ready = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true));
    if ready { Ok(()) } else { Err("no ready endpoints".into()) }
}

/// Jobs hold when at least one matches and every match succeeded at least once (the
/// original's rule: one completion is enough, later failures do not undo it).
pub fn jobs(jobs: &[Job]) -> Verdict {
    if jobs.is_empty() {
        return Err("no such job".into());
    }
    let pending: Vec<&str> = jobs
        .iter()
        .filter(|j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) == 0)
        .map(|j| j.metadata.name.as_deref().unwrap_or("?"))
        .collect();
    match pending.as_slice() {
        [] => Ok(()),
        [one] if jobs.len() == 1 => Err(format!("job {one} has not succeeded yet")),
        many => Err(format!("{} of {} jobs have not succeeded yet: {}", many.len(), jobs.len(), many.join(", "))),
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Pods hold with one ready pod (on `node`, when given).
pub fn pods(pods: &[Pod], node: Option<&str>) -> Verdict {
    let candidates: Vec<&Pod> = pods.iter().filter(|p| node.is_none() || node_of(p) == node).collect();
    let on = node.map(|n| format!(" on node {n}")).unwrap_or_default();
    if candidates.iter().any(|p| is_ready(p)) {
        Ok(())
    } else if candidates.is_empty() {
        Err(format!("no such pod{on}"))
    } else {
        Err(format!("{} pod(s){on}, none ready", candidates.len()))
    }
}

/// For `moor wait`: the DaemonSet exists and its pod on this node (one it controls, among
/// `on_node`, the pods of the namespace on this node) is ready.
pub fn daemonset_here(ds: Option<&DaemonSet>, on_node: &[Pod], node: &str) -> Verdict {
    let Some(uid) = ds.and_then(|ds| ds.metadata.uid.as_deref()) else { return Err("no such daemonset".into()) };
    let owned =
        |p: &&Pod| p.metadata.owner_references.iter().flatten().any(|o| o.uid == uid && o.controller == Some(true));
    match on_node.iter().find(owned) {
        Some(pod) if is_ready(pod) => Ok(()),
        Some(pod) => {
            Err(format!("its pod {} on node {node} is not ready", pod.metadata.name.as_deref().unwrap_or("?")))
        }
        None => Err(format!("no pod of it on node {node}")),
    }
}

/// For a pipeline's gate: the DaemonSet is rolled out: its status is of its current
/// generation, and every pod it schedules is updated and ready (at least one).
pub fn daemonset_rolled_out(ds: Option<&DaemonSet>) -> Verdict {
    let Some(ds) = ds else { return Err("no such daemonset".into()) };
    let Some(status) = &ds.status else { return Err("no status yet".into()) };
    if status.observed_generation < ds.metadata.generation {
        return Err("its controller has not seen the current generation yet".into());
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    if desired == 0 {
        return Err("it schedules no pods".into());
    }
    if status.number_ready < desired || updated < desired {
        return Err(format!("{} of {desired} pod(s) ready, {updated} updated", status.number_ready));
    }
    Ok(())
}

/// A container of `pod` has started: it runs (and, when the kubelet says, `started`), or
/// is a sidecar init container that does.
pub fn container(pod: Option<&Pod>, name: &str) -> Verdict {
    let Some(pod) = pod else { return Err("this pod is not found".into()) };
    let status = pod.status.as_ref();
    let all = status.into_iter().flat_map(|s| s.container_statuses.iter().chain(&s.init_container_statuses).flatten());
    match all.into_iter().find(|c| c.name == name) {
        None => Err("no status for it in this pod yet".into()),
        Some(c) if c.started != Some(false) && c.state.as_ref().is_some_and(|s| s.running.is_some()) => Ok(()),
        Some(_) => Err("it has not started".into()),
    }
}

/// The value at a dotted path, as text: strings as they are, anything else as JSON
/// (`true`, `3`), so `value = "true"` matches a boolean.
fn text_at<'v>(object: &'v serde_json::Value, key: &str) -> Option<std::borrow::Cow<'v, str>> {
    let value = key.split('.').try_fold(object, |v, part| v.get(part))?;
    Some(match value {
        serde_json::Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    })
}

/// Every field of a custom resource has its value.
pub fn fields(object: Option<&serde_json::Value>, fields: &[Field]) -> Verdict {
    let Some(object) = object else { return Err("not found".into()) };
    for field in fields {
        match text_at(object, &field.key) {
            None => return Err(format!("it has no `{}`", field.key)),
            Some(actual) if actual != field.value => {
                return Err(format!("`{}` is `{actual}`, not `{}`", field.key, field.value));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A file or socket exists and this process may read it.
pub fn socket(path: &Path) -> Verdict {
    use std::os::unix::ffi::OsStrExt;
    if std::fs::symlink_metadata(path).is_err() {
        return Err("does not exist".into());
    }
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| "the path holds a NUL byte")?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; access(2) only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::R_OK) } == 0 { Ok(()) } else { Err("is not readable".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_service_needs_a_ready_endpoint() {
        let slice = |ready: serde_json::Value| -> EndpointSlice {
            from(
                json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready}}]}),
            )
        };
        assert_eq!(service(&[]), Err("no ready endpoints".into()));
        assert!(service(&[slice(json!(false))]).is_err());
        assert!(service(&[slice(json!(false)), slice(json!(true))]).is_ok());
        assert!(service(&[slice(json!(null))]).is_ok(), "unset means ready");
    }

    #[test]
    fn jobs_hold_when_every_match_succeeded_once() {
        let job = |name: &str, succeeded: i32| -> Job {
            from(json!({"metadata": {"name": name}, "status": {"succeeded": succeeded, "failed": 3}}))
        };
        assert_eq!(jobs(&[]), Err("no such job".into()));
        assert_eq!(jobs(&[job("a", 0)]), Err("job a has not succeeded yet".into()));
        assert!(jobs(&[job("a", 1), job("b", 2)]).is_ok());
        assert_eq!(jobs(&[job("a", 1), job("b", 0)]), Err("1 of 2 jobs have not succeeded yet: b".into()));
    }

    fn pod(name: &str, node: &str, ready: bool) -> Pod {
        from(json!({
            "metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "uid": "u1", "controller": true}]},
            "spec": {"nodeName": node, "containers": []},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                       "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": ready, "restartCount": 0,
                                              "started": ready, "state": if ready { json!({"running": {}}) } else { json!({"waiting": {}}) }}]}
        }))
    }

    #[test]
    fn pods_hold_with_one_ready_pod_on_the_node_when_asked() {
        let both = [pod("a", "n1", false), pod("b", "n2", true)];
        assert!(pods(&both, None).is_ok());
        assert_eq!(pods(&both, Some("n1")), Err("1 pod(s) on node n1, none ready".into()));
        assert_eq!(pods(&both, Some("n3")), Err("no such pod on node n3".into()));
    }

    #[test]
    fn a_daemonset_needs_its_ready_pod_on_this_node() {
        let ds: DaemonSet = from(json!({"metadata": {"name": "ds", "uid": "u1"}}));
        assert_eq!(daemonset_here(None, &[], "n1"), Err("no such daemonset".into()));
        assert_eq!(daemonset_here(Some(&ds), &[], "n1"), Err("no pod of it on node n1".into()));
        assert!(daemonset_here(Some(&ds), &[pod("a", "n1", false)], "n1").unwrap_err().contains("not ready"));
        assert!(daemonset_here(Some(&ds), &[pod("a", "n1", true)], "n1").is_ok());
        let other: DaemonSet = from(json!({"metadata": {"name": "other", "uid": "u2"}}));
        assert!(daemonset_here(Some(&other), &[pod("a", "n1", true)], "n1").is_err());
    }

    #[test]
    fn a_daemonset_gate_needs_every_pod_updated_and_ready() {
        let ds = |generation: i64, observed: i64, desired: i32, ready: i32, updated: i32| -> DaemonSet {
            from(json!({"metadata": {"name": "ds", "generation": generation},
                        "status": {"observedGeneration": observed, "desiredNumberScheduled": desired, "numberReady": ready,
                                   "updatedNumberScheduled": updated, "currentNumberScheduled": desired, "numberMisscheduled": 0}}))
        };
        assert!(daemonset_rolled_out(Some(&ds(2, 2, 3, 3, 3))).is_ok());
        assert!(daemonset_rolled_out(Some(&ds(2, 1, 3, 3, 3))).unwrap_err().contains("generation"));
        assert_eq!(daemonset_rolled_out(Some(&ds(1, 1, 3, 2, 3))), Err("2 of 3 pod(s) ready, 3 updated".into()));
        assert!(daemonset_rolled_out(Some(&ds(1, 1, 0, 0, 0))).is_err());
    }

    #[test]
    fn a_container_must_run() {
        assert!(container(Some(&pod("p", "n", true)), "app").is_ok());
        assert_eq!(container(Some(&pod("p", "n", false)), "app"), Err("it has not started".into()));
        assert!(container(Some(&pod("p", "n", true)), "other").is_err());
        assert!(container(None, "app").is_err());
    }

    #[test]
    fn custom_resource_fields_compare_as_text() {
        let cr = json!({"spec": {"arbitrary-key": "not-ready", "replicas": 3, "on": true}});
        let field = |k: &str, v: &str| Field { key: k.into(), value: v.into() };
        assert_eq!(
            fields(Some(&cr), &[field("spec.arbitrary-key", "ready")]),
            Err("`spec.arbitrary-key` is `not-ready`, not `ready`".into())
        );
        assert!(fields(Some(&cr), &[field("spec.replicas", "3"), field("spec.on", "true")]).is_ok());
        assert_eq!(fields(Some(&cr), &[field("status.phase", "x")]), Err("it has no `status.phase`".into()));
        assert_eq!(fields(None, &[]), Err("not found".into()));
    }

    #[test]
    fn a_socket_must_exist_and_be_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        assert_eq!(socket(&path), Err("does not exist".into()));
        std::fs::write(&path, "").unwrap();
        assert!(socket(&path).is_ok());
    }
}
