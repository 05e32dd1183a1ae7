//! kubernetes-entrypoint's environment (KE-1, KE-2): the `DEPENDENCY_*` variables,
//! `COMMAND` and `DEPENDENCY_CONFIG`, read as the original reads them (pure).

use std::path::PathBuf;

use serde::Deserialize;

use super::spec::{
    Dependency, Jobs, Labels, Named, SpecError, bad, custom_resources, items, named, one_or_many, or_default,
};

/// The original's JSON for a job: a name, or labels, and a namespace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobJson {
    #[serde(default)]
    name: String,
    labels: Option<Labels>,
    #[serde(default)]
    namespace: String,
}

/// The original's JSON for a pod.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodJson {
    labels: Labels,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    require_same_node: bool,
}

/// What kubernetes-entrypoint's environment says: the dependencies, the config files to
/// template (`DEPENDENCY_CONFIG`) and the command (`COMMAND`, split on spaces).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FromEnv {
    pub dependencies: Vec<Dependency>,
    pub configs: Vec<PathBuf>,
    pub command: Vec<String>,
}

/// Reads the original's variables through `var` (the process environment in use).
pub fn from_env(var: impl Fn(&str) -> Option<String>, default_ns: &str) -> Result<FromEnv, SpecError> {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let mut out = FromEnv::default();
    if let Some(v) = get("DEPENDENCY_SERVICE") {
        for s in items(&v) {
            out.dependencies.push(Dependency::Service(named("DEPENDENCY_SERVICE", s, default_ns)?));
        }
    }
    // As the original: the JSON form wins over the plain one.
    if let Some(v) = get("DEPENDENCY_JOBS_JSON") {
        for job in one_or_many::<JobJson>("DEPENDENCY_JOBS_JSON", &v)? {
            let namespace = or_default(job.namespace, default_ns);
            out.dependencies.push(Dependency::Job(match (job.name.is_empty(), job.labels) {
                (false, None) => Jobs::Named(Named { namespace, name: job.name }),
                (true, Some(labels)) => Jobs::Labelled { namespace, labels },
                _ => return Err(bad("DEPENDENCY_JOBS_JSON", "each job needs a `name` or `labels`, not both")),
            }));
        }
    } else if let Some(v) = get("DEPENDENCY_JOBS") {
        for j in items(&v) {
            out.dependencies.push(Dependency::Job(Jobs::Named(named("DEPENDENCY_JOBS", j, default_ns)?)));
        }
    }
    if let Some(v) = get("DEPENDENCY_POD_JSON") {
        for pod in one_or_many::<PodJson>("DEPENDENCY_POD_JSON", &v)? {
            out.dependencies.push(Dependency::Pod {
                namespace: or_default(pod.namespace, default_ns),
                labels: pod.labels,
                same_node: pod.require_same_node,
            });
        }
    }
    if let Some(v) = get("DEPENDENCY_DAEMONSET") {
        for d in items(&v) {
            out.dependencies.push(Dependency::DaemonSet(named("DEPENDENCY_DAEMONSET", d, default_ns)?));
        }
    }
    if let Some(v) = get("DEPENDENCY_CONTAINER") {
        for c in items(&v) {
            if c.contains(':') {
                return Err(bad("DEPENDENCY_CONTAINER", format!("`{c}`: a container takes no namespace")));
            }
            out.dependencies.push(Dependency::Container(c.into()));
        }
    }
    if let Some(v) = get("DEPENDENCY_SOCKET") {
        out.dependencies.extend(items(&v).map(|s| Dependency::Socket(s.into())));
    }
    if let Some(v) = get("DEPENDENCY_CUSTOM_RESOURCE") {
        out.dependencies.extend(custom_resources("DEPENDENCY_CUSTOM_RESOURCE", &v, default_ns)?);
    }
    if let Some(v) = get("DEPENDENCY_CONFIG") {
        out.configs.extend(items(&v).map(PathBuf::from));
    }
    if let Some(v) = get("COMMAND") {
        out.command = v.split_whitespace().map(String::from).collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::spec::{CustomResource, Field};

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    fn svc(ns: &str, name: &str) -> Dependency {
        Dependency::Service(Named { namespace: ns.into(), name: name.into() })
    }

    #[test]
    fn the_originals_variables_are_read_with_namespaces_defaulting_to_the_pods() {
        let vars = [
            ("DEPENDENCY_SERVICE", "mysql:mariadb,keystone-api"),
            (
                "DEPENDENCY_JOBS_JSON",
                r#"[{"namespace": "foo", "name": "nova-init"}, {"labels": {"initializes": "neutron"}}]"#,
            ),
            ("DEPENDENCY_JOBS", "ignored-because-json-wins"),
            ("DEPENDENCY_POD_JSON", r#"[{"labels": {"k1": "v1"}, "requireSameNode": true}]"#),
            ("DEPENDENCY_DAEMONSET", "openvswitch-agent"),
            ("DEPENDENCY_CONTAINER", "nova-libvirt,virtlogd"),
            ("DEPENDENCY_SOCKET", "/var/run/ovs.socket"),
            (
                "DEPENDENCY_CUSTOM_RESOURCE",
                r#"[{"apiVersion":"stable.example.com/v1","kind":"Foo","namespace":"default","name":"my-foo","fields":[{"key":"spec.arbitrary-key","value":"ready"}]}]"#,
            ),
            ("DEPENDENCY_CONFIG", "/etc/nova/nova.conf"),
            ("COMMAND", "sleep  inf"),
        ];
        let got = from_env(env(&vars), "mine").unwrap();
        assert_eq!(
            got.dependencies,
            vec![
                svc("mysql", "mariadb"),
                svc("mine", "keystone-api"),
                Dependency::Job(Jobs::Named(Named { namespace: "foo".into(), name: "nova-init".into() })),
                Dependency::Job(Jobs::Labelled {
                    namespace: "mine".into(),
                    labels: Labels([("initializes".to_string(), "neutron".to_string())].into()),
                }),
                Dependency::Pod {
                    namespace: "mine".into(),
                    labels: Labels([("k1".to_string(), "v1".to_string())].into()),
                    same_node: true
                },
                Dependency::DaemonSet(Named { namespace: "mine".into(), name: "openvswitch-agent".into() }),
                Dependency::Container("nova-libvirt".into()),
                Dependency::Container("virtlogd".into()),
                Dependency::Socket("/var/run/ovs.socket".into()),
                Dependency::CustomResource(CustomResource {
                    api_version: "stable.example.com/v1".into(),
                    kind: "Foo".into(),
                    namespace: "default".into(),
                    name: "my-foo".into(),
                    fields: vec![Field { key: "spec.arbitrary-key".into(), value: "ready".into() }],
                }),
            ]
        );
        assert_eq!(got.configs, vec![PathBuf::from("/etc/nova/nova.conf")]);
        assert_eq!(got.command, ["sleep", "inf"]);
    }

    #[test]
    fn plain_jobs_are_read_when_there_is_no_json() {
        let got = from_env(env(&[("DEPENDENCY_JOBS", "a, b:c")]), "ns").unwrap();
        assert_eq!(got.dependencies.len(), 2);
        assert_eq!(got.dependencies[1].to_string(), "job b/c");
    }

    #[test]
    fn bad_variables_name_the_variable() {
        let e = from_env(env(&[("DEPENDENCY_POD_JSON", "{labels")]), "ns").unwrap_err();
        assert_eq!(e.origin, "DEPENDENCY_POD_JSON");
        let e = from_env(env(&[("DEPENDENCY_SERVICE", "a:b:c")]), "ns").unwrap_err();
        assert_eq!(e.to_string(), "DEPENDENCY_SERVICE: `a:b:c` is not `namespace:name` or `name`");
        let e = from_env(env(&[("DEPENDENCY_CONTAINER", "ns:c")]), "ns").unwrap_err();
        assert!(e.message.contains("no namespace"), "{e}");
        let e = from_env(env(&[("DEPENDENCY_JOBS_JSON", r#"{"name": "a", "labels": {"x": "y"}}"#)]), "ns").unwrap_err();
        assert!(e.message.contains("not both"), "{e}");
    }
}
