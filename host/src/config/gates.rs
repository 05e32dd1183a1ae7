//! A pipeline's `wait_for` gates as written, checked once into the dependencies `moor
//! wait` follows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::wait::Dependency;
use crate::wait::spec::{self, CustomResource, Jobs, Labels, SpecError};

/// One gate of `wait_for`: `{ service = "ns:name" }`, `{ job = "ns:name" }`,
/// `{ job = { labels = { app = "migrate" }, namespace = "ns" } }`, `{ pod = { labels = {…} } }`,
/// `{ daemonset = "ns:name" }` (rolled out), `{ socket = "/path" }`, or
/// `{ custom_resource = { api_version, kind, name, namespace, fields = [{ key, value }] } }`.
/// Names without a namespace are in the pipeline's `target_namespace`, else `[moor] namespace`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WaitFor {
    Service(String),
    Job(JobWait),
    Pod(PodWait),
    Daemonset(String),
    Socket(PathBuf),
    CustomResource(CustomResourceWait),
}

/// A job by `[namespace:]name`, or every job with the labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "`[namespace:]name`, or a table with `labels` and an optional `namespace`")]
pub enum JobWait {
    Name(String),
    Labels { labels: BTreeMap<String, String>, namespace: Option<String> },
}

/// A ready pod with the labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodWait {
    pub labels: BTreeMap<String, String>,
    pub namespace: Option<String>,
}

/// A custom resource whose fields (dotted paths) have values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomResourceWait {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub fields: Vec<crate::wait::spec::Field>,
}

/// A pipeline's `wait_for` gate as a dependency; why not, when it names something badly.
pub(super) fn gate(gate: &WaitFor, default_ns: &str) -> Result<Dependency, String> {
    let ns = |namespace: &Option<String>| namespace.clone().unwrap_or_else(|| default_ns.to_owned());
    let text = |e: SpecError| e.message;
    Ok(match gate {
        WaitFor::Service(s) => Dependency::Service(spec::named("service", s, default_ns).map_err(text)?),
        WaitFor::Job(JobWait::Name(j)) => {
            Dependency::Job(Jobs::Named(spec::named("job", j, default_ns).map_err(text)?))
        }
        WaitFor::Job(JobWait::Labels { labels, namespace }) => {
            if labels.is_empty() {
                return Err("`labels` is empty: it would match every job".into());
            }
            Dependency::Job(Jobs::Labelled { namespace: ns(namespace), labels: Labels(labels.clone()) })
        }
        WaitFor::Pod(pod) => {
            if pod.labels.is_empty() {
                return Err("`labels` is empty: it would match every pod".into());
            }
            Dependency::Pod { namespace: ns(&pod.namespace), labels: Labels(pod.labels.clone()), same_node: false }
        }
        WaitFor::Daemonset(d) => Dependency::DaemonSet(spec::named("daemonset", d, default_ns).map_err(text)?),
        WaitFor::Socket(path) => Dependency::Socket(path.clone()),
        WaitFor::CustomResource(cr) => {
            if cr.fields.is_empty() {
                return Err("`fields` is empty: name at least one field and its value".into());
            }
            Dependency::CustomResource(CustomResource {
                api_version: cr.api_version.clone(),
                kind: cr.kind.clone(),
                namespace: ns(&cr.namespace),
                name: cr.name.clone(),
                fields: cr.fields.clone(),
            })
        }
    })
}
