//! Drift (FA-2): watches on the kinds a pipeline applied, restricted to objects labelled
//! with a pipeline. A live object that no longer carries every field moor applied (the same
//! local check the apply engine makes), or a deletion while the pipeline is not running,
//! triggers that pipeline soon after it is observed. Changes to fields moor does not set
//! (status, an autoscaler's replicas, annotations of others) are not drift.
//!
//! Kinds defined by a pipeline's own CRDs are watched once discovery (at start-up) knows
//! them; until then their drift is corrected by the interval run.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};

use super::{Controller, Trigger};
use crate::apply::inventory::{INSTANCE_LABEL, PIPELINE_LABEL};
use crate::apply::{Report, compare};

impl Controller {
    /// Starts a watch for every kind in `kinds` not watched yet.
    pub(super) fn watch_kinds(self: &Arc<Self>, kinds: &BTreeSet<(String, String)>) {
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        for kind in kinds {
            if watched.insert(kind.clone()) {
                tokio::spawn(self.clone().watch_kind(kind.0.clone(), kind.1.clone()));
            }
        }
    }

    async fn watch_kind(self: Arc<Self>, api_version: String, kind: String) {
        let Some(resolved) = self.target.resources.resolve(&api_version, &kind) else { return };
        let api: Api<DynamicObject> = Api::all_with(self.target.client.clone(), &resolved.resource);
        // Inventories carry the instance label; they are moor's own records, not managed objects.
        let config = watcher::Config::default().labels(&format!("{PIPELINE_LABEL},!{INSTANCE_LABEL}"));
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            match event {
                // The initial list too: a change made between the run and the watch's
                // start is still drift.
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    self.changed(&resolved.resource, &kind, &object, false).await
                }
                Ok(watcher::Event::Delete(object)) => self.changed(&resolved.resource, &kind, &object, true).await,
                Ok(_) => {}
                Err(e) => tracing::debug!(kind, "drift watch: {e}"),
            }
        }
    }

    async fn changed(&self, resource: &ApiResource, kind: &str, object: &DynamicObject, deleted: bool) {
        if !self.drifted(kind, object, deleted) {
            return;
        }
        // A watch may deliver an object's state from before moor's last apply; only the
        // object as it is now counts.
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let api: Api<DynamicObject> = match &object.metadata.namespace {
            Some(ns) => Api::namespaced_with(self.target.client.clone(), ns, resource),
            None => Api::all_with(self.target.client.clone(), resource),
        };
        let confirmed = match api.get_opt(name).await {
            Ok(Some(now)) => self.drifted(kind, &now, false),
            Ok(None) => self.drifted(kind, object, true),
            Err(_) => true,
        };
        if confirmed {
            let pipeline =
                object.metadata.labels.as_ref().and_then(|l| l.get(PIPELINE_LABEL)).cloned().unwrap_or_default();
            tracing::info!(pipeline, kind, name, deleted, "drift: a managed object changed outside moor");
            let _ = self.trigger(&pipeline, Trigger::Drift);
        }
    }

    /// Whether `object` (deleted or not) differs from what its pipeline last applied.
    fn drifted(&self, kind: &str, object: &DynamicObject, deleted: bool) -> bool {
        let Some(pipeline) = object.metadata.labels.as_ref().and_then(|l| l.get(PIPELINE_LABEL)) else { return false };
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let key = Key {
            kind: kind.into(),
            namespace: object.metadata.namespace.clone().unwrap_or_default(),
            name: name.into(),
        };
        let running = {
            let st = self.lock();
            match st.pipelines.get(pipeline) {
                Some(slot) => slot.running.is_some(),
                None => return false,
            }
        };
        {
            let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            match applied.get(pipeline).and_then(|objects| objects.get(&key)) {
                // Not (or no longer) applied by this pipeline.
                None => false,
                // During a run, changes are the run's own applies and prunes.
                Some(_) if running => false,
                Some(_) if deleted => true,
                Some(desired) => {
                    let live = serde_json::to_value(object).unwrap_or_default();
                    !compare::covers(&live, desired)
                }
            }
        }
    }

    /// Remembers what a successful run applied, as the watch will compare it.
    pub(super) fn remember_applied(&self, pipeline: &str, report: &Report) {
        let objects = report
            .applied
            .iter()
            .map(|(r, value)| {
                let key = Key { kind: r.kind.clone(), namespace: r.namespace.clone(), name: r.name.clone() };
                (key, as_stored(value))
            })
            .collect();
        self.applied.lock().unwrap_or_else(|p| p.into_inner()).insert(pipeline.to_owned(), objects);
    }
}

/// An object's identity, as the watch sees it (listed objects carry no apiVersion; a
/// pipeline never applies two kinds of one name from different groups to one name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    kind: String,
    namespace: String,
    name: String,
}

/// What the server stores for `desired`, as a watch shows it: a Secret's `stringData`
/// becomes base64 `data`; listed objects carry no `apiVersion` and `kind`.
fn as_stored(desired: &serde_json::Value) -> serde_json::Value {
    let mut value = desired.clone();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("apiVersion");
        let kind = fields.remove("kind");
        if kind.as_ref().and_then(|k| k.as_str()) == Some("Secret") {
            fields.insert("kind".into(), "Secret".into());
        }
    }
    if value.get("kind").is_some_and(|k| k == "Secret")
        && let Some(serde_json::Value::Object(strings)) = value.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (k, v) in strings {
            let bytes = v.as_str().unwrap_or_default().as_bytes().to_vec();
            value["data"][k] = serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap_or_default();
        }
    }
    if let Some(fields) = value.as_object_mut() {
        fields.remove("kind");
    }
    value
}
