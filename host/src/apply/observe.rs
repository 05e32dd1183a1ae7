//! What a pipeline's objects look like in the cluster now: from the drift watches' cache
//! ([`super::live`]) where a watch has listed the kind, else one LIST per kind by the
//! pipeline's labels; a LIST instead of many GETs for new objects that must be read before
//! they are written; and the opt-in labels of the namespaces it uses.

use std::collections::{BTreeMap, HashMap, HashSet};

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use serde_json::Value;

use super::ApplyError;
use super::desired::{Desired, OptIn};
use super::prune::Owner;
use crate::kube_api::{api_for, key_of, status_code};
use crate::labels::{ENABLED, INSTANCE_LABEL, PIPELINE_LABEL};
use crate::object::{ObjKey, Object};

/// `moor.dev/enabled` of every namespace the objects use (kube-applier convention): the
/// label of a Namespace among the objects, else of the live one.
pub async fn opt_in(client: &kube::Client, objects: &[Object]) -> Result<HashMap<String, OptIn>, ApplyError> {
    let mut modes = HashMap::new();
    for o in objects.iter().filter(|o| o.kind() == "Namespace" && o.group().is_empty()) {
        modes.insert(o.name().to_owned(), OptIn::of(o.label(ENABLED)));
    }
    let wanted: HashSet<&str> =
        objects.iter().filter_map(Object::namespace).filter(|ns| !modes.contains_key(*ns)).collect();
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in wanted {
        let live = api
            .get_opt(ns)
            .await
            .map_err(|source| ApplyError::Kube { what: format!("reading namespace {ns}"), source })?;
        let label = live.as_ref().and_then(|l| l.metadata.labels.as_ref()).and_then(|l| l.get(ENABLED));
        modes.insert(ns.to_owned(), OptIn::of(label.map(String::as_str)));
    }
    Ok(modes)
}

/// What the pipeline's objects look like in the cluster: for each kind, what the watches
/// saw (`cache`), else one LIST by the pipeline's labels across namespaces (per namespace
/// when the identity may not list cluster-wide).
pub async fn observe(
    client: &kube::Client,
    cache: &super::live::Cache,
    owner: Owner<'_>,
    desired: &[Desired],
    first: bool,
    looks_first: impl Fn(&Desired) -> bool,
) -> Result<Observed, ApplyError> {
    let mut kinds: BTreeMap<String, (ApiResource, bool, HashSet<String>)> = BTreeMap::new();
    // A pipeline without an inventory has nothing labelled as its own that a GET by name
    // would not find: the cluster-wide LISTs by label are for the runs after the first.
    for d in desired.iter().filter(|_| !first) {
        if let Some(r) = &d.resolved {
            let entry =
                kinds.entry(kind_of(&r.resource)).or_insert_with(|| (r.resource.clone(), r.namespaced, HashSet::new()));
            entry.2.insert(d.r.namespace.clone());
        }
    }
    let selector = format!("{PIPELINE_LABEL}={},{INSTANCE_LABEL}={}", owner.pipeline, owner.instance);
    let mut live = HashMap::new();
    for (resource, namespaced, namespaces) in kinds.into_values() {
        if let Some(objects) = cache.objects(&resource, owner.instance, owner.pipeline) {
            live.extend(objects);
            continue;
        }
        let params = ListParams::default().labels(&selector);
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let items = match all.list(&params).await {
            Ok(list) => list.items,
            Err(e) if status_code(&e) == Some(403) && namespaced => {
                let mut items = Vec::new();
                for ns in namespaces {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
                    let list = api.list(&params).await.map_err(|source| listing(&resource, source))?;
                    items.extend(list.items);
                }
                items
            }
            Err(source) => return Err(listing(&resource, source)),
        };
        live.extend(items.into_iter().map(|item| listed_item(&resource, item)));
    }

    // Objects the label did not find are new, or exist without our label. Most are simply
    // applied (the answer tells); where a kind has many that must be read first in one
    // namespace, one LIST answers for all instead of a GET each.
    let mut missing: BTreeMap<(String, String), (ApiResource, usize)> = BTreeMap::new();
    for d in desired.iter().filter(|d| !live.contains_key(&d.r) && looks_first(d)) {
        if let Some(r) = &d.resolved {
            let group = (kind_of(&r.resource), d.r.namespace.clone());
            missing.entry(group).or_insert_with(|| (r.resource.clone(), 0)).1 += 1;
        }
    }
    let mut listed = HashSet::new();
    for ((kind, namespace), (resource, count)) in missing {
        if count < LIST_INSTEAD_OF_GETS {
            continue;
        }
        let api = api_for(client, &resource, &namespace);
        let items = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            // Not allowed to list: fall back to one GET per object.
            Err(e) if status_code(&e) == Some(403) => continue,
            Err(source) => return Err(listing(&resource, source)),
        };
        for (key, value) in items.into_iter().map(|item| listed_item(&resource, item)) {
            live.entry(key).or_insert(value);
        }
        listed.insert((kind, namespace));
    }
    Ok(Observed { live, listed })
}

/// An item of a LIST as a live object under its key. Items of a list come without their
/// type, so it is set here.
fn listed_item(resource: &ApiResource, item: DynamicObject) -> (ObjKey, Value) {
    let key = key_of(resource, &item);
    let mut value = serde_json::to_value(&item).unwrap_or_default();
    value["apiVersion"] = Value::String(resource.api_version.clone());
    value["kind"] = Value::String(resource.kind.clone());
    (key, value)
}

fn listing(resource: &ApiResource, source: kube::Error) -> ApplyError {
    ApplyError::Kube { what: format!("listing {}", resource.plural), source }
}

/// `apiVersion/Kind` of a resource, to group objects by kind.
fn kind_of(resource: &ApiResource) -> String {
    format!("{}/{}", resource.api_version, resource.kind)
}

/// From this many new objects of one kind in one namespace, `observe` lists them.
const LIST_INSTEAD_OF_GETS: usize = 8;

/// What `observe` saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// Live objects by key: the pipeline's own, and others that were listed.
    pub live: HashMap<ObjKey, Value>,
    /// (kind, namespace) groups listed in full: an object absent from `live` is absent.
    listed: HashSet<(String, String)>,
}

/// What `observe` knows of one desired object.
#[derive(Debug)]
pub enum Seen<'a> {
    Live(&'a Value),
    Absent,
    /// Not looked at: a GET by name will tell.
    Unknown,
}

impl Observed {
    pub fn seen(&self, d: &Desired, resource: &ApiResource) -> Seen<'_> {
        match self.live.get(&d.r) {
            Some(v) => Seen::Live(v),
            None if self.listed.contains(&(kind_of(resource), d.r.namespace.clone())) => Seen::Absent,
            None => Seen::Unknown,
        }
    }
}
