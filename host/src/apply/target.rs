//! The cluster a run talks to: the client (and an impersonating one per pipeline),
//! discovery (the helpers around kube's API and errors are `crate::kube_api`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::config::KubeConfigOptions;

use super::ApplyError;
use super::requests::{Requests, counted_client};
use super::resources::Resources;
use crate::config::PipelineSpec;
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
        let (ns, name) = (&sa.namespace, &sa.name);
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
