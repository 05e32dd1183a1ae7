//! The inventory of a pipeline: every object it applied, stored in the cluster.
//!
//! One ConfigMap per pipeline in the controller's namespace, named
//! `moor-inventory-<instance>-<pipeline>`, labelled with the instance, the pipeline and
//! [`ROLE_LABEL`]`=inventory`, holding one gzip-compressed JSON document in
//! `binaryData.inventory.json.gz`. The document names the instance, pipeline and config file
//! that wrote it. It is written as the union of old and new before anything new is created,
//! and shrunk only after prune succeeded, so a kill at any moment leaves every object the
//! pipeline may have created named in it.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use crate::config::DeletionPolicy;
use crate::kube_api::kube_message;
use crate::labels::{INSTANCE_LABEL, MANAGED_BY, MANAGER, OBJECTS_ANNOTATION, PIPELINE_LABEL, ROLE_LABEL};

/// Why an inventory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {at}: {}", kube_message(.source))]
    Read { at: String, source: kube::Error },
    #[error("inventory {at} is unreadable: {source}")]
    Unreadable { at: String, source: std::io::Error },
    #[error("inventory {at}: {reason}")]
    NotOurs { at: String, reason: String },
    #[error("cannot write inventory {at}: {}", kube_message(.source))]
    Write { at: String, source: kube::Error },
    #[error("cannot encode inventory {at}: {source}")]
    Encode { at: String, source: std::io::Error },
    #[error("cannot delete inventory {at}: {}", kube_message(.source))]
    Delete { at: String, source: kube::Error },
    #[error("cannot list inventories in {namespace}: {}", kube_message(.source))]
    List { namespace: String, source: kube::Error },
    #[error("cannot create namespace {namespace}: {}", kube_message(.source))]
    Namespace { namespace: String, source: kube::Error },
}

const KEY: &str = "inventory.json.gz";

pub use crate::object::ObjKey;

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
    /// The instance and pipeline that own it; empty in inventories of older versions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline: String,
    /// The config file whose run wrote it last.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config: String,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default)]
    pub revision: String,
    /// The `[[cluster]]` its objects live in; empty for the cluster moor runs in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// Stored as a map from `group/kind/namespace/name` to `[key, entry]`.
    #[serde(with = "stored")]
    pub(super) objects: BTreeMap<ObjKey, Entry>,
}

/// The stored form of the object map (kept since the first inventories were written).
mod stored {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Entry, ObjKey};

    fn name(r: &ObjKey) -> String {
        format!("{}/{}/{}/{}", r.group, r.kind, r.namespace, r.name)
    }

    pub fn serialize<S: Serializer>(objects: &BTreeMap<ObjKey, Entry>, s: S) -> Result<S::Ok, S::Error> {
        objects.iter().map(|(r, e)| (name(r), (r, e))).collect::<BTreeMap<_, _>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<ObjKey, Entry>, D::Error> {
        let stored = BTreeMap::<String, (ObjKey, Entry)>::deserialize(d)?;
        Ok(stored.into_values().collect())
    }
}

impl Inventory {
    /// Adds or replaces an object (a newer version of a key replaces the stored one).
    pub fn insert(&mut self, r: ObjKey, entry: Entry) {
        self.objects.remove(&r);
        self.objects.insert(r, entry);
    }

    pub fn get(&self, r: &ObjKey) -> Option<&Entry> {
        self.objects.get(r)
    }

    pub fn contains(&self, r: &ObjKey) -> bool {
        self.objects.contains_key(r)
    }

    pub fn refs(&self) -> impl Iterator<Item = &ObjKey> {
        self.objects.keys()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// What is left of this inventory when only `keys` remain: the same owner, config,
    /// cluster, deletion policy and revision. A remnant that lost its cluster would send the
    /// next removal to look for its objects in the wrong one.
    pub fn keeping<'k>(&self, keys: impl IntoIterator<Item = &'k ObjKey>) -> Inventory {
        // Every field named, so that a new one cannot be forgotten here.
        let Inventory { instance, pipeline, config, deletion_policy, revision, cluster, objects } = self;
        Inventory {
            instance: instance.clone(),
            pipeline: pipeline.clone(),
            config: config.clone(),
            deletion_policy: *deletion_policy,
            revision: revision.clone(),
            cluster: cluster.clone(),
            objects: keys.into_iter().filter_map(|r| Some((r.clone(), objects.get(r)?.clone()))).collect(),
        }
    }

    /// Compressed form, as stored.
    pub fn encode(&self) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_vec(self)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json)?;
        gz.finish()
    }

    /// The stored form read back. At most [`MAX_DECODED`] bytes are inflated: a ConfigMap
    /// holds at most 1 MiB, and a gzip bomb in one must not take the process's memory.
    pub fn decode(bytes: &[u8]) -> std::io::Result<Inventory> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes).take(MAX_DECODED + 1).read_to_end(&mut json)?;
        if json.len() as u64 > MAX_DECODED {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("inflates to more than {} MiB", MAX_DECODED >> 20),
            ));
        }
        Ok(serde_json::from_slice(&json)?)
    }
}

/// How large an inventory may inflate to: 10,000 objects take about 2 MiB.
const MAX_DECODED: u64 = 64 << 20;

/// Name of the ConfigMap holding the inventory of `pipeline` of `instance`: two instances
/// with a pipeline of the same name keep separate inventories.
pub fn object_name(instance: &str, pipeline: &str) -> String {
    let name = format!("moor-inventory-{instance}-{pipeline}").to_lowercase().replace(['_', '.'], "-");
    name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

/// Creates the controller's namespace (inventories, the Lease) when it does not exist.
pub async fn ensure_namespace(client: &kube::Client, namespace: &str) -> Result<(), InventoryError> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    if let Ok(Some(_)) = api.get_opt(namespace).await {
        return Ok(());
    }
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    api.patch(namespace, &PatchParams::apply(MANAGER), &Patch::Apply(&ns))
        .await
        .map(|_| ())
        .map_err(|source| InventoryError::Namespace { namespace: namespace.into(), source })
}

/// An inventory found in the cluster, by its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub instance: String,
    pub pipeline: String,
    /// How many objects it names (absent on inventories of older versions).
    pub objects: Option<usize>,
}

/// Where the inventories of one instance live.
#[derive(Debug, Clone)]
pub struct Store {
    api: Api<ConfigMap>,
    namespace: String,
    instance: String,
    /// The config file recorded in what this store writes.
    config: String,
}

impl Store {
    pub fn new(client: kube::Client, namespace: &str, instance: &str) -> Store {
        Store {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            instance: instance.into(),
            config: String::new(),
        }
    }

    /// The store of the instance `settings` describe, recording its config file.
    pub fn for_settings(client: kube::Client, settings: &crate::config::Settings) -> Store {
        let mut store = Store::new(client, &settings.namespace, &settings.instance);
        store.config = settings.file.display().to_string();
        store
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pipeline's inventory; empty when it has none yet. An inventory of the same name
    /// that another instance or pipeline wrote (names are sanitized, so `a`+`b-c` and
    /// `a-b`+`c` meet) is an error: it is never read as this pipeline's.
    pub async fn load(&self, pipeline: &str) -> Result<Inventory, InventoryError> {
        let at = self.at(pipeline);
        let inventory = match self.api.get_opt(&object_name(&self.instance, pipeline)).await {
            Ok(None) => return Ok(Inventory::default()),
            Ok(Some(cm)) => {
                decode_configmap(&cm).map_err(|source| InventoryError::Unreadable { at: at.clone(), source })?
            }
            Err(source) => return Err(InventoryError::Read { at, source }),
        };
        owned_by(&inventory, &self.instance, pipeline).map_err(|reason| InventoryError::NotOurs { at, reason })?;
        Ok(inventory)
    }

    /// `inventory` as this store writes it for `pipeline`: naming its owner and config file.
    pub fn stamped(&self, pipeline: &str, mut inventory: Inventory) -> Inventory {
        inventory.instance = self.instance.clone();
        inventory.pipeline = pipeline.into();
        if !self.config.is_empty() {
            inventory.config = self.config.clone();
        }
        inventory
    }

    /// `namespace/name` of a pipeline's inventory, for messages.
    fn at(&self, pipeline: &str) -> String {
        format!("{}/{}", self.namespace, object_name(&self.instance, pipeline))
    }

    /// Writes the inventory (server-side apply, so it is created when missing), stamped
    /// with this store's instance and config file and with `pipeline`.
    pub async fn save(&self, pipeline: &str, inventory: &Inventory) -> Result<(), InventoryError> {
        let name = object_name(&self.instance, pipeline);
        let at = || self.at(pipeline);
        let inventory = self.stamped(pipeline, inventory.clone());
        let bytes = inventory.encode().map_err(|source| InventoryError::Encode { at: at(), source })?;
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    INSTANCE_LABEL: self.instance,
                    PIPELINE_LABEL: pipeline,
                    ROLE_LABEL: "inventory",
                    MANAGED_BY.0: MANAGED_BY.1,
                },
                "annotations": {OBJECTS_ANNOTATION: inventory.len().to_string()},
            },
            "binaryData": {KEY: ByteString(bytes)},
        });
        let params = PatchParams::apply(MANAGER).force();
        let patch = Patch::Apply(&cm);
        let write = || self.api.patch(&name, &params, &patch);
        match write().await {
            Ok(_) => Ok(()),
            // The controller's namespace does not exist yet (first run outside the cluster).
            Err(kube::Error::Api(s)) if s.code == 404 => {
                ensure_namespace(&self.api.clone().into_client(), &self.namespace).await?;
                write().await.map(|_| ()).map_err(|source| InventoryError::Write { at: at(), source })
            }
            Err(source) => Err(InventoryError::Write { at: at(), source }),
        }
    }

    pub async fn delete(&self, pipeline: &str) -> Result<(), InventoryError> {
        match self.api.delete(&object_name(&self.instance, pipeline), &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(InventoryError::Delete { at: self.at(pipeline), source }),
        }
    }

    /// Every inventory in the namespace, of any instance: one LIST of metadata.
    pub async fn list(&self) -> Result<Vec<Listed>, InventoryError> {
        let params = kube::api::ListParams::default().labels(&format!("{ROLE_LABEL}=inventory"));
        let list = match self.api.list_metadata(&params).await {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
            Err(source) => return Err(InventoryError::List { namespace: self.namespace.clone(), source }),
        };
        Ok(list
            .items
            .iter()
            .filter_map(|cm| {
                let labels = cm.metadata.labels.as_ref()?;
                let objects = cm.metadata.annotations.as_ref().and_then(|a| a.get(OBJECTS_ANNOTATION)?.parse().ok());
                Some(Listed {
                    instance: labels.get(INSTANCE_LABEL)?.clone(),
                    pipeline: labels.get(PIPELINE_LABEL)?.clone(),
                    objects,
                })
            })
            .collect())
    }
}

/// Whether `inventory` is the one of `instance`'s `pipeline` (older inventories name
/// neither and are taken as such).
fn owned_by(inventory: &Inventory, instance: &str, pipeline: &str) -> Result<(), String> {
    let named = |recorded: &str, wanted: &str| recorded.is_empty() || recorded == wanted;
    if named(&inventory.instance, instance) && named(&inventory.pipeline, pipeline) {
        return Ok(());
    }
    Err(format!(
        "it belongs to pipeline `{}` of instance `{}`, not to pipeline `{pipeline}` of instance `{instance}` (their names meet once sanitized); rename one of them",
        inventory.pipeline, inventory.instance
    ))
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
    fn a_remnant_keeps_its_cluster_owner_and_policy_and_only_the_kept_objects() {
        let key = |name: &str| ObjKey { kind: "ConfigMap".into(), name: name.into(), ..ObjKey::default() };
        let mut inv = Inventory {
            instance: "prod".into(),
            pipeline: "web".into(),
            config: "/etc/moor.toml".into(),
            deletion_policy: DeletionPolicy::Delete,
            revision: "r1".into(),
            cluster: "east".into(),
            ..Inventory::default()
        };
        inv.insert(key("a"), Entry { hash: "ha".into() });
        inv.insert(key("b"), Entry { hash: "hb".into() });
        let rest = inv.keeping([&key("b")]);
        assert_eq!(rest.cluster, "east", "the next removal looks in the same cluster");
        assert_eq!((rest.instance.as_str(), rest.pipeline.as_str(), rest.revision.as_str()), ("prod", "web", "r1"));
        assert_eq!(rest.refs().collect::<Vec<_>>(), [&key("b")]);
        assert_eq!(rest.get(&key("b")), Some(&Entry { hash: "hb".into() }));
    }

    #[test]
    fn a_gzip_bomb_is_refused_without_inflating_it() {
        // 100 MiB of spaces compress to about 100 KiB: within a ConfigMap's 1 MiB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..100 {
            gz.write_all(&chunk).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let err = Inventory::decode(&bomb).unwrap_err().to_string();
        assert!(err.contains("inflates to more than 64 MiB"), "{err}");
    }

    #[test]
    fn ten_thousand_objects_fit_well_under_a_mebibyte() {
        let mut inv = Inventory::default();
        for i in 0..10_000 {
            let r = ObjKey {
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

    #[test]
    fn the_stored_form_is_unchanged_and_a_new_version_replaces_the_old_entry() {
        let json = r#"{"deletion_policy":"delete","revision":"r1","objects":{"apps/Deployment/a/web":[{"g":"apps","v":"v1","k":"Deployment","ns":"a","n":"web"},{"h":"abc"}]}}"#;
        let mut inv: Inventory = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&inv).unwrap(), json);
        let beta = ObjKey { version: "v1beta2".into(), ..inv.refs().next().unwrap().clone() };
        assert_eq!(inv.get(&beta).map(|e| e.hash.as_str()), Some("abc"));
        inv.insert(beta, Entry::default());
        assert_eq!(inv.len(), 1);
        assert_eq!(inv.refs().next().unwrap().version, "v1beta2");
    }

    #[test]
    fn an_inventory_of_another_instance_or_pipeline_is_never_read_as_ours() {
        // `moor-inventory-a-b-c` is the name of both; the document says whose it is.
        assert_eq!(object_name("a", "b-c"), object_name("a-b", "c"));
        let theirs = Inventory { instance: "a-b".into(), pipeline: "c".into(), ..Inventory::default() };
        let err = owned_by(&theirs, "a", "b-c").unwrap_err();
        assert!(err.contains("belongs to pipeline `c` of instance `a-b`"), "{err}");
        assert!(owned_by(&theirs, "a-b", "c").is_ok());
        // Written before inventories named their owner.
        assert!(owned_by(&Inventory::default(), "a", "b-c").is_ok());
    }
}
