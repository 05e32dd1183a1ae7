//! Remote clusters (`[[cluster]]`): a pipeline with `cluster = "prod"` applies, prunes and
//! checks health there, through a client made from the kubeconfig its Secret holds (read
//! from the cluster moor runs in, before each run). Inventories stay in moor's own cluster.
//!
//! A connected cluster (its client and discovery) is kept while its kubeconfig stays the
//! same; a new kubeconfig (rotated credentials) connects again. A cluster that cannot be
//! reached fails the runs of its own pipelines, nothing else.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{ApplyError, Target};
use crate::config::Config;

/// Where a pipeline's objects live: the cluster moor runs in, or a remote one.
pub enum Place<'a> {
    Home(&'a Target),
    Remote(Arc<Target>),
}

impl Deref for Place<'_> {
    type Target = Target;
    fn deref(&self) -> &Target {
        match self {
            Place::Home(t) => t,
            Place::Remote(t) => t,
        }
    }
}

impl Place<'_> {
    /// The remote cluster's target, to keep (drift watches); `None` at home.
    pub fn remote(&self) -> Option<Arc<Target>> {
        match self {
            Place::Home(_) => None,
            Place::Remote(t) => Some(t.clone()),
        }
    }
}

/// The remote clusters connected so far, by name, with a digest of the kubeconfig each was
/// made from.
#[derive(Default)]
pub struct Remotes(Mutex<HashMap<String, (String, Arc<Target>)>>);

impl Remotes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Arc<Target>)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Target {
    /// The cluster `cluster` names (`None`: this one), connected on first use.
    pub async fn place(&self, config: &Config, cluster: Option<&str>) -> Result<Place<'_>, ApplyError> {
        let Some(name) = cluster else { return Ok(Place::Home(self)) };
        let failed = |message: String| ApplyError::Cluster { name: name.to_owned(), message };
        let spec = config
            .cluster(name)
            .ok_or_else(|| failed("no `[[cluster]]` of this name is configured (any longer)".into()))?;
        let text = crate::secrets::read_one(Some(&self.client), &spec.kubeconfig, &config.settings.namespace)
            .await
            .map_err(|e| failed(format!("its kubeconfig: {e}")))?;
        let digest = {
            let mut h = Sha256::new();
            h.update(text.as_bytes());
            h.update([0]);
            h.update(spec.context.as_deref().unwrap_or_default().as_bytes());
            h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        if let Some((known, target)) = self.remotes.lock().get(name)
            && *known == digest
        {
            return Ok(Place::Remote(target.clone()));
        }
        // Connecting holds no lock: an unreachable cluster does not hold up the others.
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text)
            .map_err(|e| failed(format!("its kubeconfig cannot be read: {e}")))?;
        let options = kube::config::KubeConfigOptions { context: spec.context.clone(), ..Default::default() };
        let client_config = kube::config::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| failed(format!("its kubeconfig: {e}")))?;
        let mut target =
            Target::counted(client_config, self.requests.clone()).await.map_err(|e| failed(e.to_string()))?;
        target.inventory_client = self.inventory_client.clone();
        let target = Arc::new(target);
        self.remotes.lock().insert(name.to_owned(), (digest, target.clone()));
        tracing::info!(cluster = name, "connected to a remote cluster");
        Ok(Place::Remote(target))
    }
}
