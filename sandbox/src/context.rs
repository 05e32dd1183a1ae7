//! What a renderer knows about where its objects go: the pipeline, the release namespace
//! and, when Moor talks to a cluster, that cluster's version and API versions (what Helm
//! calls `.Capabilities`).
//!
//! KRM functions see it as environment variables, the only ones they get besides `PWD`:
//! `MOOR_PIPELINE`, `MOOR_NAMESPACE`, `MOOR_KUBE_VERSION` and `MOOR_API_VERSIONS`
//! (comma-separated `group/version` and `group/version/Kind`, as Helm lists them). The
//! component contract 0.1 has no place for it.

/// The render context of one pipeline run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderContext {
    pub pipeline: String,
    /// The pipeline's target namespace, else the cluster's default one, else `default`.
    pub namespace: String,
    /// Absent when rendering offline (`moor build`): renderers then use their defaults.
    pub cluster: Option<Cluster>,
}

/// What the target cluster serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The API server's git version, `v1.36.3`.
    pub version: String,
    /// Sorted: `apps/v1`, `apps/v1/Deployment`, `v1`, `v1/ConfigMap`, …
    pub api_versions: Vec<String>,
}

impl RenderContext {
    /// The variables a KRM function is given; empty values are left out.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("MOOR_PIPELINE", self.pipeline.clone()), ("MOOR_NAMESPACE", self.namespace.clone())];
        if let Some(cluster) = &self.cluster {
            env.push(("MOOR_KUBE_VERSION", cluster.version.clone()));
            env.push(("MOOR_API_VERSIONS", cluster.api_versions.join(",")));
        }
        env.retain(|(_, value)| !value.is_empty());
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_context_names_pipeline_and_namespace_only() {
        let cx = RenderContext { pipeline: "web".into(), namespace: "apps".into(), cluster: None };
        assert_eq!(cx.env(), vec![("MOOR_PIPELINE", "web".into()), ("MOOR_NAMESPACE", "apps".into())]);
        assert!(RenderContext::default().env().is_empty());
    }

    #[test]
    fn cluster_context_lists_api_versions_comma_separated() {
        let cluster =
            Cluster { version: "v1.36.3".into(), api_versions: vec!["apps/v1".into(), "v1/ConfigMap".into()] };
        let cx = RenderContext { pipeline: "web".into(), namespace: "apps".into(), cluster: Some(cluster) };
        let env = cx.env();
        assert!(env.contains(&("MOOR_KUBE_VERSION", "v1.36.3".into())));
        assert!(env.contains(&("MOOR_API_VERSIONS", "apps/v1,v1/ConfigMap".into())));
    }
}
