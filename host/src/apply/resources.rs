//! What the cluster serves: discovery, object scope, and the order kinds are applied in.

use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Discovery, Scope};

use crate::object::Object;

/// Discovery of the API server, refreshed when a pipeline brings its own CRDs.
pub struct Resources {
    discovery: Discovery,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources").finish_non_exhaustive()
    }
}

/// An object's type as the server knows it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Resources {
    /// Runs (aggregated) discovery: two requests.
    pub async fn discover(client: &kube::Client) -> Result<Resources, kube::Error> {
        Ok(Resources { discovery: Discovery::new(client.clone()).run_aggregated().await? })
    }

    /// Every served `group/version` and `group/version/Kind` (`v1`, `v1/ConfigMap` for the
    /// core group), sorted: Helm's `.Capabilities.APIVersions`.
    pub fn api_versions(&self) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        for group in self.discovery.groups() {
            for version in group.versions() {
                let resources = group.versioned_resources(version);
                let Some((first, _)) = resources.first() else { continue };
                out.insert(first.api_version.clone());
                out.extend(resources.iter().map(|(r, _)| format!("{}/{}", r.api_version, r.kind)));
            }
        }
        out.into_iter().collect()
    }

    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Resolved> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        self.discovery.resolve_gvk(&gvk).map(|(resource, caps): (ApiResource, ApiCapabilities)| Resolved {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        })
    }
}

/// Kinds applied before everything else, and waited for: definitions and containers of
/// other objects.
pub fn is_stage_zero(object: &Object) -> bool {
    matches!(
        (object.group(), object.kind()),
        ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("", "Namespace")
            | ("rbac.authorization.k8s.io", "ClusterRole")
            | ("rbac.authorization.k8s.io", "ClusterRoleBinding")
    ) || object.kind().ends_with("Class")
}

/// Order of kinds after stage zero, as `kubectl` and Helm use it: what others refer to
/// goes first. Kinds not listed go last, in name order.
const KIND_ORDER: &[&str] = &[
    "ResourceQuota",
    "LimitRange",
    "PriorityClass",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Sort key of an object within its wave.
pub fn kind_rank(object: &Object) -> (usize, String) {
    let rank = KIND_ORDER.iter().position(|k| *k == object.kind()).unwrap_or(KIND_ORDER.len());
    (rank, object.kind().to_owned())
}

/// The group and kind a CustomResourceDefinition defines.
pub fn crd_defines(crd: &Object) -> Option<(String, String)> {
    let group = crd.value.pointer("/spec/group")?.as_str()?;
    let kind = crd.value.pointer("/spec/names/kind")?.as_str()?;
    Some((group.to_owned(), kind.to_owned()))
}
