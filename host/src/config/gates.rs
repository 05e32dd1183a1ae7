//! A pipeline's `wait_for` gates, checked once into the dependencies `moor wait` follows.

use crate::wait::Dependency;
use crate::wait::spec::{self, CustomResource, Jobs, Labels, SpecError};

use super::{JobWait, WaitFor};

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
