//! The inventory of a pipeline: every object it applied, stored in the cluster.
//!
//! One ConfigMap per pipeline in the controller's namespace, named
//! `moor-inventory-<instance>-<pipeline>`, labelled with the instance, holding one gzip-compressed
//! JSON document in `binaryData.inventory.json.gz`. It is written as the union of old and
//! new before anything new is created, and shrunk only after prune succeeded, so a kill at
//! any moment leaves every object the pipeline may have created named in it.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use crate::config::DeletionPolicy;

/// Label every inventory carries, with the instance name as value.
pub const INSTANCE_LABEL: &str = "moor.dev/instance";
/// Label with the pipeline's name.
pub const PIPELINE_LABEL: &str = "moor.dev/pipeline";
const KEY: &str = "inventory.json.gz";

/// Identity of an object in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjRef {
    #[serde(rename = "g", default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(rename = "v")]
    pub version: String,
    #[serde(rename = "k")]
    pub kind: String,
    #[serde(rename = "ns", default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(rename = "n")]
    pub name: String,
}

impl ObjRef {
    /// The identity without the version, which may change between applies.
    pub fn key(&self) -> (&str, &str, &str, &str) {
        (&self.group, &self.kind, &self.namespace, &self.name)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

impl std::fmt::Display for ObjRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// What the inventory remembers of one object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Digest of the desired object last applied; empty when not known (union entries).
    #[serde(rename = "h", default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// The inventory of one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default)]
    pub revision: String,
    pub objects: BTreeMap<String, (ObjRef, Entry)>,
}

/// Key of an object in the inventory map: group, kind, namespace, name.
pub fn map_key(r: &ObjRef) -> String {
    format!("{}/{}/{}/{}", r.group, r.kind, r.namespace, r.name)
}

impl Inventory {
    pub fn insert(&mut self, r: ObjRef, entry: Entry) {
        self.objects.insert(map_key(&r), (r, entry));
    }

    pub fn get(&self, r: &ObjRef) -> Option<&Entry> {
        self.objects.get(&map_key(r)).map(|(_, e)| e)
    }

    pub fn contains(&self, r: &ObjRef) -> bool {
        self.objects.contains_key(&map_key(r))
    }

    pub fn refs(&self) -> impl Iterator<Item = &ObjRef> {
        self.objects.values().map(|(r, _)| r)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Compressed form, as stored.
    pub fn encode(&self) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_vec(self)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json)?;
        gz.finish()
    }

    pub fn decode(bytes: &[u8]) -> std::io::Result<Inventory> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut json)?;
        Ok(serde_json::from_slice(&json)?)
    }
}

/// Name of the ConfigMap holding the inventory of `pipeline` of `instance`: two instances
/// with a pipeline of the same name keep separate inventories.
pub fn object_name(instance: &str, pipeline: &str) -> String {
    let name = format!("moor-inventory-{instance}-{pipeline}").to_lowercase().replace(['_', '.'], "-");
    name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

/// Creates the controller's namespace (inventories, the Lease) when it does not exist.
pub async fn ensure_namespace(client: &kube::Client, namespace: &str) -> Result<(), String> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    if let Ok(Some(_)) = api.get_opt(namespace).await {
        return Ok(());
    }
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    api.patch(namespace, &PatchParams::apply(super::MANAGER), &Patch::Apply(&ns))
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot create namespace {namespace}: {}", super::kube_error(&e)))
}

/// Where inventories live.
#[derive(Debug, Clone)]
pub struct Store {
    api: Api<ConfigMap>,
    namespace: String,
    instance: String,
}

impl Store {
    pub fn new(client: kube::Client, namespace: &str, instance: &str) -> Store {
        Store { api: Api::namespaced(client, namespace), namespace: namespace.into(), instance: instance.into() }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pipeline's inventory; empty when it has none yet.
    pub async fn load(&self, pipeline: &str) -> Result<Inventory, String> {
        let name = object_name(&self.instance, pipeline);
        match self.api.get_opt(&name).await {
            Ok(None) => Ok(Inventory::default()),
            Ok(Some(cm)) => {
                decode_configmap(&cm).map_err(|e| format!("inventory {}/{name} is unreadable: {e}", self.namespace))
            }
            Err(e) => Err(format!("cannot read inventory {}/{name}: {}", self.namespace, super::kube_error(&e))),
        }
    }

    /// Writes the inventory (server-side apply, so it is created when missing).
    pub async fn save(&self, pipeline: &str, inventory: &Inventory) -> Result<(), String> {
        let name = object_name(&self.instance, pipeline);
        let bytes = inventory.encode().map_err(|e| e.to_string())?;
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {INSTANCE_LABEL: self.instance, PIPELINE_LABEL: pipeline, "app.kubernetes.io/managed-by": "moor"},
            },
            "binaryData": {KEY: ByteString(bytes)},
        });
        let params = PatchParams::apply(super::MANAGER).force();
        let patch = Patch::Apply(&cm);
        let write = || self.api.patch(&name, &params, &patch);
        match write().await {
            Ok(_) => Ok(()),
            // The controller's namespace does not exist yet (first run outside the cluster).
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.create_namespace().await?;
                write()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("cannot write inventory {}/{name}: {}", self.namespace, super::kube_error(&e)))
            }
            Err(e) => Err(format!("cannot write inventory {}/{name}: {}", self.namespace, super::kube_error(&e))),
        }
    }

    async fn create_namespace(&self) -> Result<(), String> {
        ensure_namespace(&self.api.clone().into_client(), &self.namespace).await
    }

    pub async fn delete(&self, pipeline: &str) -> Result<(), String> {
        let name = object_name(&self.instance, pipeline);
        match self.api.delete(&name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(format!("cannot delete inventory {}/{name}: {}", self.namespace, super::kube_error(&e))),
        }
    }

    /// Pipelines of this instance that have an inventory.
    pub async fn pipelines(&self) -> Result<Vec<String>, String> {
        let params = kube::api::ListParams::default().labels(&format!("{INSTANCE_LABEL}={}", self.instance));
        let list = match self.api.list(&params).await {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot list inventories in {}: {}", self.namespace, super::kube_error(&e))),
        };
        Ok(list.items.iter().filter_map(|cm| cm.metadata.labels.as_ref()?.get(PIPELINE_LABEL).cloned()).collect())
    }
}

fn decode_configmap(cm: &ConfigMap) -> std::io::Result<Inventory> {
    match cm.binary_data.as_ref().and_then(|d| d.get(KEY)) {
        Some(bytes) => Inventory::decode(&bytes.0),
        None => Ok(Inventory::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_objects_fit_well_under_a_mebibyte() {
        let mut inv = Inventory::default();
        for i in 0..10_000 {
            let r = ObjRef {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                namespace: format!("team-{}", i % 40),
                name: format!("service-number-{i}"),
            };
            inv.insert(r, Entry { hash: format!("{:016x}", (i as u64).wrapping_mul(0x9E3779B97F4A7C15)) });
        }
        let bytes = inv.encode().unwrap();
        assert!(bytes.len() < 300 * 1024, "{} bytes", bytes.len());
        assert_eq!(Inventory::decode(&bytes).unwrap(), inv);
    }
}
