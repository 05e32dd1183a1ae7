//! Kubernetes Events (`events.k8s.io/v1`) on the objects a run applied or pruned,
//! published off the run's path by one background task; when it falls behind, events are
//! dropped rather than slowing runs. Events carry object names, never object data.
//!
//! The same event on the same object within [`SERIES_WINDOW`] becomes a series: the first
//! Event's `series` count and time are patched, as kube's `Recorder` and client-go do. The
//! series are kept here, not in kube's `Recorder`: its cache holds every Event whole and is
//! swept on every publish, which at 10,000 pipelines (40,000 objects created in minutes)
//! made publishing quadratic and held tens of MiB. Here the cache is bounded
//! ([`MAX_SERIES`], client-go's size) and swept once a minute.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use crate::apply::Action;
use crate::object::ObjKey;
use crate::reconcile::RunReport;
use crate::source::short;

/// Within this time, the same event on the same object is a repeat (kube's and client-go's).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// Series remembered at most; past it, a repeat is a new Event.
const MAX_SERIES: usize = 4096;
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The longest note the API takes (events.k8s.io/v1: 1 kB).
const MAX_NOTE: usize = 1024;
/// Events waiting to be sent; more are dropped.
const QUEUE: usize = 2048;

/// One event on one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    regarding: ObjKey,
    reason: &'static str,
    action: &'static str,
    note: String,
    warning: bool,
}

/// An Event already sent, to patch when it repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    name: String,
    count: i32,
    at: Instant,
}

/// What to send for an event.
#[derive(Debug, PartialEq, Eq)]
enum Publish {
    Create,
    /// Patch Event `name`: it has now been seen `count` times.
    Repeat {
        name: String,
        count: i32,
    },
}

/// The series seen recently: the pure core of the sink.
#[derive(Debug)]
struct Series {
    sent: HashMap<Key, Sent>,
    swept: Instant,
}

impl Series {
    fn new(now: Instant) -> Series {
        Series { sent: HashMap::new(), swept: now }
    }

    fn next(&mut self, key: &Key, now: Instant) -> Publish {
        if now.duration_since(self.swept) >= SWEEP_EVERY {
            self.sent.retain(|_, sent| now.duration_since(sent.at) < SERIES_WINDOW);
            self.swept = now;
        }
        match self.sent.get_mut(key) {
            Some(sent) if now.duration_since(sent.at) < SERIES_WINDOW => {
                sent.count += 1;
                sent.at = now;
                Publish::Repeat { name: sent.name.clone(), count: sent.count }
            }
            _ => Publish::Create,
        }
    }

    /// Event `name` was created for `key`.
    fn created(&mut self, key: Key, name: String, now: Instant) {
        if self.sent.len() < MAX_SERIES || self.sent.contains_key(&key) {
            self.sent.insert(key, Sent { name, count: 1, at: now });
        }
    }

    /// Event `name` is gone (expired, deleted): the next repeat creates one.
    fn forget(&mut self, key: &Key) {
        self.sent.remove(key);
    }
}

pub(super) struct EventSink {
    queue: tokio::sync::mpsc::Sender<Key>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl EventSink {
    pub fn start(client: kube::Client, identity: &str) -> EventSink {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<Key>(QUEUE);
        let identity = identity.to_owned();
        let task = tokio::spawn(async move {
            let mut series = Series::new(Instant::now());
            while let Some(key) = rx.recv().await {
                if let Err(e) = publish(&client, &identity, &mut series, key).await {
                    tracing::debug!("cannot publish an event: {e}");
                }
            }
        });
        EventSink { queue, task: std::sync::Mutex::new(Some(task)) }
    }

    /// Queues one event per object the run changed (also when a later stage failed).
    pub fn record(&self, pipeline: &str, report: &RunReport) {
        for o in report.cluster.changed() {
            let (reason, action) = match o.action {
                Action::Pruned => ("Pruned", "Prune"),
                Action::Created => ("Created", "Apply"),
                Action::Recreated => ("Recreated", "Apply"),
                _ => ("Configured", "Apply"),
            };
            let note = format!("{} by pipeline {pipeline} at revision {}", o.action.as_str(), short(&report.revision));
            let key = Key { regarding: o.key.clone(), reason, action, note, warning: false };
            if self.queue.try_send(key).is_err() {
                tracing::debug!("event queue full: dropping an event");
            }
        }
    }

    /// A Warning Event that a config (or the platform config a bootstrap config points at)
    /// was rejected and the previous one keeps running, regarding this controller's Pod,
    /// `identity` in `namespace`: `kubectl events -n moor-system` shows it.
    pub fn config_rejected(&self, namespace: &str, identity: &str, error: &str) {
        let regarding = ObjKey {
            version: "v1".into(),
            kind: "Pod".into(),
            namespace: namespace.into(),
            name: identity.into(),
            ..ObjKey::default()
        };
        let mut note = format!("config rejected, the previous one keeps running: {error}");
        if note.len() > MAX_NOTE {
            note.truncate(note.floor_char_boundary(MAX_NOTE - 3));
            note.push_str("...");
        }
        let key = Key { regarding, reason: "ConfigRejected", action: "Load", note, warning: true };
        if self.queue.try_send(key).is_err() {
            tracing::debug!("event queue full: dropping an event");
        }
    }

    /// Gives queued events a moment to go out before the process exits.
    pub async fn flush(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.queue.capacity() < self.queue.max_capacity() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

/// Sends one event: a new Event, or the series patched onto the first one. Cluster-scoped
/// objects' Events go to `default`, as kube's and kubectl's do.
async fn publish(client: &kube::Client, identity: &str, series: &mut Series, key: Key) -> kube::Result<()> {
    let r = &key.regarding;
    let namespace = if r.namespace.is_empty() { "default".to_owned() } else { r.namespace.clone() };
    let events: Api<K8sEvent> = Api::namespaced(client.clone(), &namespace);
    let now = Timestamp::now();
    if let Publish::Repeat { name, count } = series.next(&key, Instant::now()) {
        let patch = serde_json::json!({ "series": EventSeries { count, last_observed_time: MicroTime(now) } });
        match events.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Err(kube::Error::Api(status)) if status.is_not_found() => series.forget(&key),
            done => return done.map(drop),
        }
    }
    let name = format!("{}.{:x}", r.name, now.as_nanosecond());
    let regarding = ObjectReference {
        api_version: Some(r.api_version()),
        kind: Some(r.kind.clone()),
        name: Some(r.name.clone()),
        namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
        ..Default::default()
    };
    let event = K8sEvent {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..ObjectMeta::default() },
        event_time: Some(MicroTime(now)),
        action: Some(key.action.into()),
        reason: Some(key.reason.into()),
        note: Some(key.note.clone()),
        type_: Some(if key.warning { "Warning" } else { "Normal" }.into()),
        regarding: Some(regarding),
        reporting_controller: Some("moor".into()),
        reporting_instance: Some(identity.into()),
        ..K8sEvent::default()
    };
    events.create(&PostParams::default(), &event).await?;
    series.created(key, name, Instant::now());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        let regarding = ObjKey {
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: "web".into(),
            name: name.into(),
            ..ObjKey::default()
        };
        Key {
            regarding,
            reason: "Configured",
            action: "Apply",
            note: "configured by pipeline web at revision abc".into(),
            warning: false,
        }
    }

    #[test]
    fn a_repeat_within_the_window_patches_the_series_and_a_later_one_starts_anew() {
        let start = Instant::now();
        let mut series = Series::new(start);
        assert_eq!(series.next(&key("a"), start), Publish::Create);
        series.created(key("a"), "a.1".into(), start);
        let soon = start + Duration::from_secs(30);
        assert_eq!(series.next(&key("a"), soon), Publish::Repeat { name: "a.1".into(), count: 2 });
        assert_eq!(series.next(&key("a"), soon), Publish::Repeat { name: "a.1".into(), count: 3 });
        assert_eq!(series.next(&key("b"), soon), Publish::Create, "another object is another event");
        // The window runs from the last time it was seen.
        let later = soon + SERIES_WINDOW - Duration::from_secs(1);
        assert_eq!(series.next(&key("a"), later), Publish::Repeat { name: "a.1".into(), count: 4 });
        assert_eq!(series.next(&key("a"), later + SERIES_WINDOW), Publish::Create);
    }

    #[test]
    fn a_series_whose_event_is_gone_is_created_again() {
        let now = Instant::now();
        let mut series = Series::new(now);
        series.created(key("a"), "a.1".into(), now);
        series.forget(&key("a"));
        assert_eq!(series.next(&key("a"), now), Publish::Create);
    }

    #[test]
    fn the_cache_is_bounded_and_swept_once_a_minute_not_on_every_event() {
        let start = Instant::now();
        let mut series = Series::new(start);
        for i in 0..MAX_SERIES + 10 {
            let name = format!("o{i}");
            series.created(key(&name), name, start);
        }
        assert_eq!(series.sent.len(), MAX_SERIES, "past the bound, new series are not kept");
        let o1 = Publish::Repeat { name: "o1".into(), count: 2 };
        assert_eq!(series.next(&key("o1"), start + Duration::from_secs(1)), o1);
        assert_eq!(series.next(&key(&format!("o{MAX_SERIES}")), start), Publish::Create, "not kept: created anew");
        // Expired but not swept yet (swept less than a minute ago): not repeated, still kept.
        let expired = start + SERIES_WINDOW + Duration::from_secs(1);
        series.swept = expired;
        assert_eq!(series.next(&key("o2"), expired), Publish::Create);
        assert_eq!(series.sent.len(), MAX_SERIES);
        // A minute on, the sweep takes every expired series in one go, and there is room.
        let minute = expired + SWEEP_EVERY;
        assert_eq!(series.next(&key("o3"), minute), Publish::Create);
        assert!(series.sent.is_empty());
        series.created(key("fresh"), "fresh".into(), minute);
        assert_eq!(series.next(&key("fresh"), minute), Publish::Repeat { name: "fresh".into(), count: 2 });
    }
}
