//! Drift (FA-2): watches on the kinds a pipeline applied, restricted to objects labelled
//! with a pipeline. A live object that no longer carries every field moor applied (the same
//! local check the apply engine makes), or a deletion while the pipeline is not running,
//! triggers that pipeline soon after it is observed. Changes to fields moor does not set
//! (status, an autoscaler's replicas, annotations of others) are not drift.
//!
//! Kinds defined by a pipeline's own CRDs are watched from the end of the run that created
//! them: the run's discovery after stage zero becomes the target's. A pipeline's objects
//! in a remote cluster (`[[cluster]]`) are watched there.
//!
//! What the watches see is also kept in the target's live cache ([`crate::apply::live`]),
//! which the runs read instead of LISTing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};

use super::{Controller, Trigger};
use crate::apply::{Target, compare};
use crate::labels::{INSTANCE_LABEL, PIPELINE_LABEL, ROLE_LABEL};
use crate::object::ObjKey;
use crate::reconcile::RunReport;

impl Controller {
    /// Starts a watch for every kind in `kinds` not watched yet in the cluster `pipeline`
    /// applies to.
    pub(super) fn watch_kinds(
        self: &Arc<Self>,
        pipeline: &crate::config::PipelineSpec,
        remote: Option<Arc<Target>>,
        kinds: &BTreeSet<(String, String)>,
    ) {
        let cluster = pipeline.cluster.clone();
        let new: Vec<(String, String)> = {
            let memory = self.drift.lock();
            kinds
                .iter()
                .filter(|k| !memory.watched.contains(&(cluster.clone(), k.0.clone(), k.1.clone())))
                .cloned()
                .collect()
        };
        if new.is_empty() {
            return;
        }
        // A remote cluster's watches hold its target: the one the run just done reached.
        if cluster.is_some() && remote.is_none() {
            return;
        }
        let mut memory = self.drift.lock();
        for (api_version, kind) in new {
            if memory.watched.insert((cluster.clone(), api_version.clone(), kind.clone())) {
                tokio::spawn(self.clone().watch_kind(remote.clone(), api_version, kind));
            }
        }
    }

    async fn watch_kind(self: Arc<Self>, remote: Option<Arc<Target>>, api_version: String, kind: String) {
        let target = remote.as_deref().unwrap_or(&self.target);
        let Some(resolved) = target.resources().resolve(&api_version, &kind) else { return };
        let api: Api<DynamicObject> = Api::all_with(target.client.clone(), &resolved.resource);
        // This instance's objects; inventories carry a role: they are moor's own records.
        let instance = self.config().settings.instance.clone();
        let selector = format!("{PIPELINE_LABEL},{INSTANCE_LABEL}={instance},!{ROLE_LABEL}");
        let config = watcher::Config::default().labels(&selector);
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            if let Ok(event) = &event {
                target.live.event(&resolved.resource, &instance, event);
            }
            match event {
                // The initial list too: a change made between the run and the watch's
                // start is still drift.
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    self.changed(target, &resolved.resource, &kind, &object, false).await
                }
                Ok(watcher::Event::Delete(object)) => {
                    self.changed(target, &resolved.resource, &kind, &object, true).await
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(kind, "drift watch: {e}"),
            }
        }
    }

    async fn changed(
        &self,
        target: &Target,
        resource: &ApiResource,
        kind: &str,
        object: &DynamicObject,
        deleted: bool,
    ) {
        if !self.drifted(resource, object, deleted) {
            return;
        }
        // A watch may deliver an object's state from before moor's last apply; only the
        // object as it is now counts.
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let api: Api<DynamicObject> = match &object.metadata.namespace {
            Some(ns) => Api::namespaced_with(target.client.clone(), ns, resource),
            None => Api::all_with(target.client.clone(), resource),
        };
        let confirmed = match api.get_opt(name).await {
            Ok(Some(now)) => self.drifted(resource, &now, false),
            Ok(None) => self.drifted(resource, object, true),
            Err(_) => true,
        };
        if confirmed {
            let label = object.metadata.labels.as_ref().and_then(|l| l.get(PIPELINE_LABEL));
            let pipeline = self.config().name_of(label.map_or("", String::as_str));
            tracing::info!(pipeline, kind, name, deleted, "drift: a managed object changed outside moor");
            let _ = self.trigger(&pipeline, Trigger::Drift);
        }
    }

    /// Whether `object` (deleted or not) differs from what its pipeline last applied.
    fn drifted(&self, resource: &ApiResource, object: &DynamicObject, deleted: bool) -> bool {
        let Some(label) = object.metadata.labels.as_ref().and_then(|l| l.get(PIPELINE_LABEL)) else { return false };
        let key = crate::kube_api::key_of(resource, object);
        let (pipeline, running) = {
            let st = self.lock();
            let pipeline = st.prepared.config.name_of(label);
            match st.pipelines.get(&pipeline) {
                Some(tracked) => (pipeline, tracked.slot.is_running()),
                None => return false,
            }
        };
        let pipeline = &pipeline;
        {
            let memory = self.drift.lock();
            match memory.applied.get(pipeline).and_then(|objects| objects.get(&key)) {
                // Not (or no longer) applied by this pipeline.
                None => false,
                // During a run, changes are the run's own applies and prunes.
                Some(_) if running => false,
                Some(_) if deleted => true,
                Some(desired) => {
                    let live = serde_json::to_value(object).unwrap_or_default();
                    let desired: serde_json::Value = serde_json::from_str(desired).unwrap_or_default();
                    !compare::covers(&live, &desired)
                }
            }
        }
    }

    /// Remembers what a run applied, as the watch will compare it: a successful run's
    /// objects replace what was remembered; a failed run's objects that it applied (or
    /// pruned) before it failed update it, so that what it changed is not taken for drift.
    pub(super) fn remember_applied(&self, pipeline: &str, report: &RunReport) {
        let cluster = &report.cluster;
        let applied =
            cluster.applied.iter().map(|(r, value)| (r.clone(), Box::from(as_stored(value).to_string().as_str())));
        let mut memory = self.drift.lock();
        if report.ok() {
            memory.applied.insert(pipeline.to_owned(), applied.collect());
            return;
        }
        let remembered = memory.applied.entry(pipeline.to_owned()).or_default();
        remembered.extend(applied);
        for pruned in cluster.objects.iter().filter(|o| o.action == crate::apply::Action::Pruned) {
            remembered.remove(&pruned.key);
        }
    }
}

/// What the watches know: the kinds watched, and what each pipeline's runs last applied.
#[derive(Debug, Default)]
pub(super) struct Memory(Mutex<Remembered>);

#[derive(Debug, Default)]
pub(super) struct Remembered {
    /// `(cluster, apiVersion, kind)`; the cluster is `None` for the one moor runs in.
    watched: BTreeSet<(Option<String>, String, String)>,
    /// As compact JSON text, parsed when a watch reports the object: a `Value` tree costs
    /// several times its text, for every managed object of the instance.
    applied: HashMap<String, HashMap<ObjKey, Box<str>>>,
}

impl Memory {
    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the server stores for `desired`, as a watch shows it: a Secret's `stringData`
/// becomes base64 `data` ([`compare::stored`]); listed objects carry no `apiVersion` and `kind`.
fn as_stored(desired: &serde_json::Value) -> serde_json::Value {
    let mut value = compare::stored(desired).into_owned();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("apiVersion");
        fields.remove("kind");
    }
    value
}
