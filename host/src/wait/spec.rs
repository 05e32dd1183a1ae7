//! What to wait for: the dependency kinds of kubernetes-entrypoint (KE-2), read from
//! `moor wait`'s flags, from the original's `DEPENDENCY_*` variables, or from a pipeline's
//! `wait_for` (KE-4). Pure: parsing and naming only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// An object by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Labels, shown as a selector (`app=db,tier=data`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    /// The label selector that matches exactly these labels.
    pub fn selector(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.selector())
    }
}

/// Which jobs: one by name, or every job with the labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jobs {
    Named(Named),
    Labelled { namespace: String, labels: Labels },
}

/// One field of a custom resource and the value it must have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// A dotted path: `status.phase`.
    pub key: String,
    pub value: String,
}

/// A custom resource whose fields must each equal a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomResource {
    pub api_version: String,
    pub kind: String,
    /// Ignored for a cluster-scoped kind.
    pub namespace: String,
    pub name: String,
    pub fields: Vec<Field>,
}

/// Something that must hold before a command starts or a pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// The Service has at least one ready endpoint.
    Service(Named),
    /// The job (or each labelled job, and at least one) succeeded at least once.
    Job(Jobs),
    /// A pod with the labels is ready (on this pod's node, with `same_node`).
    Pod {
        namespace: String,
        labels: Labels,
        same_node: bool,
    },
    /// For `moor wait`: the DaemonSet's pod on this node is ready. For a pipeline's gate:
    /// the DaemonSet is rolled out (every scheduled pod updated and ready).
    DaemonSet(Named),
    /// A container of this pod has started.
    Container(String),
    /// The file or socket exists and is readable.
    Socket(PathBuf),
    CustomResource(CustomResource),
}

impl Dependency {
    /// Whether `moor wait` needs to know which pod it runs in (`POD_NAME`) to check it.
    pub fn needs_pod(&self) -> bool {
        matches!(self, Dependency::Container(_) | Dependency::DaemonSet(_) | Dependency::Pod { same_node: true, .. })
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dependency::Service(s) => write!(f, "service {s}"),
            Dependency::Job(Jobs::Named(j)) => write!(f, "job {j}"),
            Dependency::Job(Jobs::Labelled { namespace, labels }) => write!(f, "jobs {labels} in {namespace}"),
            Dependency::Pod { namespace, labels, same_node } => {
                write!(f, "pod {labels} in {namespace}{}", if *same_node { " on this node" } else { "" })
            }
            Dependency::DaemonSet(d) => write!(f, "daemonset {d}"),
            Dependency::Container(c) => write!(f, "container {c}"),
            Dependency::Socket(p) => write!(f, "socket {}", p.display()),
            Dependency::CustomResource(cr) => write!(f, "{} {}/{}", cr.kind, cr.namespace, cr.name),
        }
    }
}

/// A dependency that cannot be read, naming where it came from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{origin}: {message}")]
pub struct SpecError {
    /// The flag or variable: `--service`, `DEPENDENCY_POD_JSON`.
    pub origin: String,
    pub message: String,
}

pub(super) fn bad(origin: &str, message: impl Into<String>) -> SpecError {
    SpecError { origin: origin.into(), message: message.into() }
}

/// `namespace:name`, or `name` in the default namespace.
pub fn named(origin: &str, value: &str, default_ns: &str) -> Result<Named, SpecError> {
    let (namespace, name) = match value.split_once(':') {
        Some((ns, name)) => (ns, name),
        None => (default_ns, value),
    };
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return Err(bad(origin, format!("`{value}` is not `namespace:name` or `name`")));
    }
    Ok(Named { namespace: namespace.into(), name: name.into() })
}

/// `[namespace:]key=value,key=value`.
fn labelled(origin: &str, value: &str, default_ns: &str) -> Result<(String, Labels), SpecError> {
    let (namespace, selector) = match value.split_once(':') {
        Some((ns, rest)) if !ns.contains('=') => (ns, rest),
        _ => (default_ns, value),
    };
    let mut labels = BTreeMap::new();
    for pair in selector.split(',') {
        let Some((k, v)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(bad(origin, format!("`{value}` is not `[namespace:]key=value[,key=value…]`")));
        };
        labels.insert(k.to_owned(), v.to_owned());
    }
    if namespace.is_empty() {
        return Err(bad(origin, format!("`{value}` names an empty namespace")));
    }
    Ok((namespace.into(), Labels(labels)))
}

/// A comma-separated list, without empty items.
pub(super) fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `moor wait`'s dependency flags, each repeatable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Flags {
    /// A Service with at least one ready endpoint: `[namespace:]name`.
    #[arg(long = "service", value_name = "[NS:]NAME")]
    pub services: Vec<String>,
    /// A Job that succeeded at least once: `[namespace:]name`, or every Job with the
    /// labels (and at least one): `[namespace:]key=value[,key=value]`.
    #[arg(long = "job", value_name = "[NS:]NAME|[NS:]LABELS")]
    pub jobs: Vec<String>,
    /// A ready pod with the labels, anywhere: `[namespace:]key=value[,key=value]`.
    #[arg(long = "pod", value_name = "[NS:]LABELS")]
    pub pods: Vec<String>,
    /// A ready pod with the labels on this pod's node (needs `POD_NAME`).
    #[arg(long = "pod-on-node", value_name = "[NS:]LABELS")]
    pub pods_on_node: Vec<String>,
    /// The DaemonSet's pod on this pod's node is ready (needs `POD_NAME`): `[namespace:]name`.
    #[arg(long = "daemonset", value_name = "[NS:]NAME")]
    pub daemonsets: Vec<String>,
    /// A container of this pod (`POD_NAME`) has started.
    #[arg(long = "container", value_name = "NAME")]
    pub containers: Vec<String>,
    /// A file or socket exists and is readable.
    #[arg(long = "socket", value_name = "PATH")]
    pub sockets: Vec<PathBuf>,
    /// A custom resource whose fields have values, as kubernetes-entrypoint's JSON (an
    /// object or a list): `{"apiVersion": "example.com/v1", "kind": "Widget", "name": "w",
    /// "namespace": "ns", "fields": [{"key": "status.phase", "value": "Ready"}]}`.
    #[arg(long = "custom-resource", value_name = "JSON")]
    pub custom_resources: Vec<String>,
}

impl Flags {
    /// The dependencies the flags name, namespaces defaulting to `default_ns`.
    pub fn dependencies(&self, default_ns: &str) -> Result<Vec<Dependency>, SpecError> {
        let mut deps = Vec::new();
        for s in &self.services {
            deps.push(Dependency::Service(named("--service", s, default_ns)?));
        }
        for j in &self.jobs {
            deps.push(Dependency::Job(if j.contains('=') {
                let (namespace, labels) = labelled("--job", j, default_ns)?;
                Jobs::Labelled { namespace, labels }
            } else {
                Jobs::Named(named("--job", j, default_ns)?)
            }));
        }
        for (flag, values, same_node) in [("--pod", &self.pods, false), ("--pod-on-node", &self.pods_on_node, true)] {
            for p in values {
                let (namespace, labels) = labelled(flag, p, default_ns)?;
                deps.push(Dependency::Pod { namespace, labels, same_node });
            }
        }
        for d in &self.daemonsets {
            deps.push(Dependency::DaemonSet(named("--daemonset", d, default_ns)?));
        }
        deps.extend(self.containers.iter().map(|c| Dependency::Container(c.clone())));
        deps.extend(self.sockets.iter().map(|s| Dependency::Socket(s.clone())));
        for cr in &self.custom_resources {
            deps.extend(custom_resources("--custom-resource", cr, default_ns)?);
        }
        Ok(deps)
    }
}

/// The original's JSON for a custom resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CustomResourceJson {
    api_version: String,
    kind: String,
    name: String,
    #[serde(default)]
    namespace: String,
    fields: Vec<Field>,
}

pub(super) fn or_default(namespace: String, default_ns: &str) -> String {
    if namespace.is_empty() { default_ns.into() } else { namespace }
}

pub(super) fn one_or_many<T: serde::de::DeserializeOwned>(origin: &str, json: &str) -> Result<Vec<T>, SpecError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(origin, format!("not JSON: {e}")))?;
    let list = if value.is_array() { value } else { serde_json::Value::Array(vec![value]) };
    serde_json::from_value(list).map_err(|e| bad(origin, e.to_string()))
}

pub(super) fn custom_resources(origin: &str, json: &str, default_ns: &str) -> Result<Vec<Dependency>, SpecError> {
    one_or_many::<CustomResourceJson>(origin, json)?
        .into_iter()
        .map(|cr| {
            if cr.fields.is_empty() {
                return Err(bad(origin, format!("{} {} names no fields to check", cr.kind, cr.name)));
            }
            Ok(Dependency::CustomResource(CustomResource {
                api_version: cr.api_version,
                kind: cr.kind,
                namespace: or_default(cr.namespace, default_ns),
                name: cr.name,
                fields: cr.fields,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_names_labels_and_namespaces() {
        let flags = Flags {
            services: vec!["db".into()],
            jobs: vec!["infra:migrate".into(), "app=init,tier=db".into()],
            pods_on_node: vec!["kube-system:k8s-app=proxy".into()],
            custom_resources: vec![
                r#"{"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "fields": [{"key": "status.phase", "value": "Ready"}]}"#
                    .into(),
            ],
            ..Flags::default()
        };
        let deps = flags.dependencies("here").unwrap();
        let shown: Vec<String> = deps.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "service here/db",
                "job infra/migrate",
                "jobs app=init,tier=db in here",
                "pod k8s-app=proxy in kube-system on this node",
                "Widget here/w"
            ]
        );
        assert!(deps[3].needs_pod());
        let e = Flags { pods: vec!["app".into()], ..Flags::default() }.dependencies("ns").unwrap_err();
        assert_eq!(e.origin, "--pod");
        let no_fields = r#"{"apiVersion": "v1", "kind": "X", "name": "x", "fields": []}"#;
        let e = Flags { custom_resources: vec![no_fields.into()], ..Flags::default() }.dependencies("ns").unwrap_err();
        assert!(e.message.contains("no fields"), "{e}");
    }
}
