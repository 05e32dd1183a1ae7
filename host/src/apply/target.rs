//! The cluster a run talks to: the client (and an impersonating one per pipeline),
//! discovery, and small helpers around kube's API and errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};
use kube::config::KubeConfigOptions;
use kube::core::ApiResource;

use super::ApplyError;
use super::requests::{Requests, counted_client};
use super::resources::Resources;
use crate::config::PipelineSpec;
use crate::object::ObjKey;
use crate::plugins::Cluster;

/// A connection to the cluster, shared by the pipelines of one run.
pub struct Target {
    pub client: kube::Client,
    /// The configuration `client` was made from; impersonating clients start from it.
    config: kube::Config,
    /// Discovery, as last run: at connect, and again when a run meets kinds it lacks.
    resources: std::sync::RwLock<Arc<Resources>>,
    /// Namespace of objects that name none.
    pub default_namespace: String,
    /// What the cluster serves, as renderers see it, and when it was read.
    cluster: tokio::sync::Mutex<Option<(Instant, Cluster)>>,
    /// The remote clusters (`[[cluster]]`) connected through this one.
    pub(super) remotes: super::clusters::Remotes,
    /// Where inventories are kept: this cluster's, or (a remote cluster) moor's own.
    pub(super) inventory_client: kube::Client,
    /// This cluster's live objects as the drift watches see them.
    pub live: super::live::Cache,
    /// Requests sent, by verb, by every client made here (remote clusters' too).
    pub requests: super::requests::Requests,
}

/// How long the cluster's version and API versions are reused for renders: CRDs that one
/// pipeline installs reach another's `.Capabilities` within this time.
const CLUSTER_TTL: Duration = Duration::from_secs(30);

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("default_namespace", &self.default_namespace).finish_non_exhaustive()
    }
}

/// Which cluster to talk to, as kubectl is told: `--kubeconfig`, else `KUBECONFIG`, else
/// `~/.kube/config`, else the in-cluster config; `--context`, else the current context.
#[derive(Debug, Clone, Default)]
pub struct Kubeconfig {
    pub file: Option<PathBuf>,
    pub context: Option<String>,
}

impl Kubeconfig {
    /// The client configuration it names. The context's namespace becomes the default one.
    pub async fn load(&self) -> Result<kube::Config, ApplyError> {
        let options = KubeConfigOptions { context: self.context.clone(), ..KubeConfigOptions::default() };
        let named = |file: &std::path::Path| file.display().to_string();
        match (&self.file, &self.context) {
            (Some(file), _) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(file)
                    .map_err(|source| ApplyError::Kubeconfig { file: named(file), source })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|source| ApplyError::Kubeconfig { file: named(file), source })
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|source| ApplyError::Kubeconfig { file: ambient_kubeconfig(), source }),
            (None, None) => kube::Config::infer()
                .await
                .map_err(|source| ApplyError::NoConfig { kubeconfig: ambient_kubeconfig(), source }),
        }
    }
}

fn ambient_kubeconfig() -> String {
    std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into())
}

impl Target {
    /// Connects to the cluster `kubeconfig` names and runs discovery.
    pub async fn connect(kubeconfig: &Kubeconfig) -> Result<Target, ApplyError> {
        Target::with_config(kubeconfig.load().await?).await
    }

    pub async fn with_config(config: kube::Config) -> Result<Target, ApplyError> {
        Target::counted(config, Default::default()).await
    }

    /// A target whose clients count their requests into `requests`.
    pub(super) async fn counted(config: kube::Config, requests: Requests) -> Result<Target, ApplyError> {
        let client = counted_client(config.clone(), &requests).map_err(ApplyError::Connect)?;
        Ok(Target { requests, ..Target::from_client(client, config).await? })
    }

    /// A target around an existing client (say, one with extra layers) made from `config`.
    pub async fn from_client(client: kube::Client, config: kube::Config) -> Result<Target, ApplyError> {
        let default_namespace = config.default_namespace.clone();
        let resources = Resources::discover(&client).await.map_err(ApplyError::Connect)?;
        Ok(Target {
            inventory_client: client.clone(),
            client,
            config,
            resources: std::sync::RwLock::new(Arc::new(resources)),
            default_namespace,
            cluster: Default::default(),
            remotes: Default::default(),
            live: Default::default(),
            requests: Default::default(),
        })
    }

    /// The cluster's version and API versions, read at most every [`CLUSTER_TTL`].
    pub async fn cluster(&self) -> Result<Cluster, kube::Error> {
        let mut cached = self.cluster.lock().await;
        if let Some((at, cluster)) = cached.as_ref()
            && at.elapsed() < CLUSTER_TTL
        {
            return Ok(cluster.clone());
        }
        let version = self.client.apiserver_version().await?.git_version;
        let api_versions = Resources::discover(&self.client).await?.api_versions();
        let cluster = Cluster { version, api_versions };
        *cached = Some((Instant::now(), cluster.clone()));
        Ok(cluster)
    }

    /// What the cluster serves, as discovery last saw it.
    pub fn resources(&self) -> Arc<Resources> {
        self.resources.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Discovery run again (kinds of new CRDs): later runs and the drift watches see them.
    pub fn learn(&self, fresh: Arc<Resources>) {
        *self.resources.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// The inventories, in the cluster moor runs in (also for a remote cluster's pipelines).
    pub fn inventories(&self, settings: &crate::config::Settings) -> super::inventory::Store {
        super::inventory::Store::for_settings(self.inventory_client.clone(), settings)
    }

    /// The client a pipeline writes with: impersonating its service account, if it has one.
    pub fn client_for(&self, pipeline: &PipelineSpec) -> Result<kube::Client, ApplyError> {
        let Some(sa) = &pipeline.service_account else { return Ok(self.client.clone()) };
        let (ns, name) = sa.split_once('/').expect("checked at load");
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{name}"));
        config.auth_info.impersonate_groups = Some(vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ]);
        counted_client(config, &self.requests).map_err(ApplyError::Connect)
    }
}

/// The API of `resource` in `namespace` (all namespaces, or cluster-scoped, when empty).
pub fn api_for(client: &kube::Client, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
    if namespace.is_empty() {
        Api::all_with(client.clone(), resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, resource)
    }
}

/// A server-side apply of `value` through `api`, and whether it created the object: the
/// apiserver answers 201 to an apply that creates, 200 to one that updates (kube's `patch`
/// keeps the object and drops the status). This spares a GET per object that may be new.
pub async fn apply_telling_created(
    api: &Api<DynamicObject>,
    name: &str,
    pp: &kube::api::PatchParams,
    value: &serde_json::Value,
) -> Result<(bool, DynamicObject), kube::Error> {
    use http_body_util::BodyExt;
    let request = kube::core::Request::new(api.resource_url())
        .patch(name, pp, &kube::api::Patch::Apply(value))
        .map_err(kube::Error::BuildRequest)?;
    let response = api.clone().into_client().send(request.map(kube::client::Body::from)).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status.is_client_error() || status.is_server_error() {
        // As kube reads an error: the apiserver's `Status`, else the text with the code.
        let text = String::from_utf8_lossy(&body);
        let error = serde_json::from_slice::<kube::core::Status>(&body)
            .unwrap_or_else(|_| kube::core::Status::failure(text.trim(), "").with_code(status.as_u16()));
        return Err(kube::Error::Api(error.boxed()));
    }
    let object = serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
    Ok((status == http::StatusCode::CREATED, object))
}

/// The key of a live object of `resource` (listed and watched objects carry no type).
pub fn key_of(resource: &ApiResource, object: &DynamicObject) -> ObjKey {
    ObjKey {
        group: resource.group.clone(),
        version: resource.version.clone(),
        kind: resource.kind.clone(),
        namespace: object.metadata.namespace.clone().unwrap_or_default(),
        name: object.metadata.name.clone().unwrap_or_default(),
    }
}

/// The server's message for an API error; the error and its causes otherwise (the
/// connection refused, the certificate not trusted).
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => crate::causes::causes(other),
    }
}

/// The HTTP status of an API error.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The server refused a change to an immutable field.
pub fn is_immutable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("immutable"))
}
