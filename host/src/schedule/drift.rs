//! Drift (FA-2): watches on the kinds a pipeline applied, restricted to objects labelled
//! with a pipeline. A change whose last writer is not moor, or a deletion while the
//! pipeline is not running, triggers that pipeline soon after it is observed.
//!
//! Kinds defined by a pipeline's own CRDs are watched once discovery (at start-up) knows
//! them; until then their drift is corrected by the interval run.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};

use super::{Controller, Trigger};
use crate::apply::MANAGER;
use crate::apply::inventory::{INSTANCE_LABEL, PIPELINE_LABEL};

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
        let mut listed = false;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => listed = true,
                Ok(watcher::Event::Apply(object)) if listed => self.changed(&kind, &object, false),
                Ok(watcher::Event::Delete(object)) if listed => self.changed(&kind, &object, true),
                Ok(_) => {}
                Err(e) => tracing::debug!(kind, "drift watch: {e}"),
            }
        }
    }

    fn changed(&self, kind: &str, object: &DynamicObject, deleted: bool) {
        let Some(pipeline) = object.metadata.labels.as_ref().and_then(|l| l.get(PIPELINE_LABEL)) else { return };
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let running = {
            let st = self.lock();
            match st.pipelines.get(pipeline) {
                Some(slot) => slot.running.is_some(),
                None => return,
            }
        };
        // Deletions during a run are the run's own prunes; changes by moor are its applies.
        if deleted && running || !deleted && last_writer(object) == Some(MANAGER) {
            return;
        }
        tracing::info!(pipeline, kind, name, deleted, "drift: a managed object changed outside moor");
        let _ = self.trigger(pipeline, Trigger::Drift);
    }
}

/// The manager of the newest write to the object itself (status and other subresources,
/// which controllers own, do not count).
fn last_writer(object: &DynamicObject) -> Option<&str> {
    let entries = object.metadata.managed_fields.as_ref()?;
    entries
        .iter()
        .filter(|e| e.subresource.as_deref().is_none_or(str::is_empty))
        .max_by(|a, b| {
            let time =
                |e: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| e.time.clone().map(|t| t.0);
            // On a tie (one-second resolution), a writer other than moor counts as newer.
            let other = |e: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
                e.manager.as_deref() != Some(MANAGER)
            };
            time(a).cmp(&time(b)).then_with(|| other(a).cmp(&other(b)))
        })
        .and_then(|e| e.manager.as_deref())
}
