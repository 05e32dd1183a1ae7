//! What the drift watches see, kept for the runs: the live objects of every watched kind,
//! by pipeline. A run reads a pipeline's objects of such a kind here instead of LISTing
//! them, so a run where nothing changed costs one request, the inventory read.
//!
//! A kind's objects are served only once its watch has listed them all (kube's watcher
//! `InitDone`); a re-list replaces them whole when it completes, so objects deleted while
//! the watch was away go too. The cache may lag the cluster by a watch event: an object it
//! lacks is read by name, one it shows stale is compared, found to differ and asked of the
//! server (a dry-run) before anything is written, and a change it has not heard of yet
//! triggers a drift run when it arrives. `moor apply` has no watches and always LISTs.
//! The watches read with moor's own identity, also for a pipeline that writes as its
//! `service_account`: they hold only objects labelled as that pipeline's own.
//!
//! Objects are kept as compact JSON text without `managedFields`: a `Value` tree costs
//! several times its text, for every managed object of the instance.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::DynamicObject;
use kube::core::ApiResource;
use kube::runtime::watcher::Event;
use serde_json::Value;

use crate::kube_api::key_of;
use crate::labels::PIPELINE_LABEL;
use crate::object::ObjKey;

/// Live objects by kind (`apiVersion`, kind), as the drift watches last saw them.
#[derive(Debug, Default)]
pub struct Cache(Mutex<HashMap<(String, String), Kind>>);

/// Objects by pipeline.
type ByPipeline = HashMap<String, HashMap<ObjKey, Box<str>>>;

#[derive(Debug, Default)]
struct Kind {
    /// The instance the watch selects (`moor.dev/instance`).
    instance: String,
    /// The watch has listed every object once.
    synced: bool,
    objects: ByPipeline,
    /// A re-list in progress: it replaces `objects` when done.
    relist: Option<ByPipeline>,
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Kind>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in one event of the watch on `resource` that selects `instance`'s objects.
    pub fn event(&self, resource: &ApiResource, instance: &str, event: &Event<DynamicObject>) {
        // Serialized before the lock is taken: every watch and run shares it.
        let kept = match event {
            Event::InitApply(object) | Event::Apply(object) | Event::Delete(object) => entry(resource, object),
            Event::Init | Event::InitDone => None,
        };
        let mut kinds = self.lock();
        let kind = kinds.entry((resource.api_version.clone(), resource.kind.clone())).or_default();
        if kind.instance != instance {
            *kind = Kind { instance: instance.to_owned(), ..Kind::default() };
        }
        match event {
            Event::Init => kind.relist = Some(ByPipeline::new()),
            Event::InitApply(_) => {
                let into = kind.relist.get_or_insert_with(ByPipeline::new);
                if let Some((pipeline, key, text)) = kept {
                    into.entry(pipeline).or_default().insert(key, text);
                }
            }
            Event::InitDone => {
                kind.objects = kind.relist.take().unwrap_or_default();
                kind.synced = true;
            }
            Event::Apply(_) => {
                if let Some((pipeline, key, text)) = kept {
                    kind.objects.entry(pipeline).or_default().insert(key, text);
                }
            }
            Event::Delete(_) => {
                if let Some((pipeline, key, _)) = kept
                    && let Some(objects) = kind.objects.get_mut(&pipeline)
                {
                    objects.remove(&key);
                    if objects.is_empty() {
                        kind.objects.remove(&pipeline);
                    }
                }
            }
        }
    }

    /// `pipeline`'s live objects of `resource`, labelled for `instance`; `None` when no
    /// watch has listed that kind for that instance (the caller LISTs).
    pub fn objects(&self, resource: &ApiResource, instance: &str, pipeline: &str) -> Option<Vec<(ObjKey, Value)>> {
        let kinds = self.lock();
        let kind = kinds.get(&(resource.api_version.clone(), resource.kind.clone()))?;
        if !kind.synced || kind.instance != instance {
            return None;
        }
        let objects = kind.objects.get(pipeline).into_iter().flatten();
        Some(objects.map(|(key, text)| (key.clone(), serde_json::from_str(text).unwrap_or_default())).collect())
    }
}

/// A watched object as it is kept: its pipeline, its key, and its text with its type set
/// (watched objects come without) and without `managedFields`.
fn entry(resource: &ApiResource, object: &DynamicObject) -> Option<(String, ObjKey, Box<str>)> {
    let pipeline = object.metadata.labels.as_ref()?.get(PIPELINE_LABEL)?.clone();
    let mut object = object.clone();
    object.metadata.managed_fields = None;
    let mut value = serde_json::to_value(&object).ok()?;
    value["apiVersion"] = Value::String(resource.api_version.clone());
    value["kind"] = Value::String(resource.kind.clone());
    Some((pipeline, key_of(resource, &object), value.to_string().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn resource() -> ApiResource {
        ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        }
    }

    fn object(pipeline: &str, name: &str, value: &str) -> DynamicObject {
        let labels = [(PIPELINE_LABEL.to_owned(), pipeline.to_owned())].into();
        let metadata = ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some(labels),
            managed_fields: Some(vec![Default::default()]),
            ..ObjectMeta::default()
        };
        DynamicObject { types: None, metadata, data: serde_json::json!({ "data": { "k": value } }) }
    }

    fn names(cache: &Cache, pipeline: &str) -> Option<Vec<String>> {
        let mut names: Vec<String> =
            cache.objects(&resource(), "moor", pipeline)?.into_iter().map(|(k, _)| k.name).collect();
        names.sort();
        Some(names)
    }

    #[test]
    fn served_once_listed_then_follows_events() {
        let cache = Cache::default();
        let r = resource();
        cache.event(&r, "moor", &Event::Init);
        cache.event(&r, "moor", &Event::InitApply(object("web", "a", "1")));
        assert_eq!(names(&cache, "web"), None, "not served before the list is complete");
        cache.event(&r, "moor", &Event::InitDone);
        assert_eq!(names(&cache, "web"), Some(vec!["a".into()]));
        assert_eq!(names(&cache, "db"), Some(vec![]), "a pipeline without objects of the kind has none");

        cache.event(&r, "moor", &Event::Apply(object("web", "b", "1")));
        cache.event(&r, "moor", &Event::Apply(object("web", "a", "2")));
        let live = cache.objects(&r, "moor", "web").unwrap();
        let a = live.iter().find(|(k, _)| k.name == "a").unwrap();
        assert_eq!(a.1["data"]["k"], "2");
        assert_eq!(a.1["kind"], "ConfigMap");
        assert_eq!(a.1["apiVersion"], "v1");
        assert!(a.1.pointer("/metadata/managedFields").is_none());

        cache.event(&r, "moor", &Event::Delete(object("web", "a", "2")));
        assert_eq!(names(&cache, "web"), Some(vec!["b".into()]));
        assert_eq!(cache.objects(&r, "other-instance", "web"), None);
    }

    #[test]
    fn a_relist_replaces_everything_when_done() {
        let cache = Cache::default();
        let r = resource();
        for event in [Event::Init, Event::InitApply(object("web", "a", "1")), Event::InitDone] {
            cache.event(&r, "moor", &event);
        }
        // The watch came back: `a` was deleted meanwhile, `c` created.
        cache.event(&r, "moor", &Event::Init);
        cache.event(&r, "moor", &Event::InitApply(object("web", "c", "1")));
        assert_eq!(names(&cache, "web"), Some(vec!["a".into()]), "the old list is served until the new one is whole");
        cache.event(&r, "moor", &Event::InitDone);
        assert_eq!(names(&cache, "web"), Some(vec!["c".into()]));
    }
}
