//! After a run: events for the pipeline's notify chain (FX-9), deduplicated and rate
//! limited. Kubernetes Events on the objects are [`super::events`]'.
//!
//! A notifier that fails is logged and shown on the status page; it never fails the
//! delivery. Events carry object names and messages, never object data.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::status::RunRecord;
use super::{Controller, Trigger};
use crate::apply::Action;
use crate::apply::inventory::ObjKey;
use crate::config::PipelineSpec;
use crate::metrics::PipelineLabels;
use crate::plugins::{CallError, CallScope, Event, EventReason, Notifier, ObjectRef, RunStart, Severity};
use crate::reconcile::{Prepared, RunContext, RunReport, blocking, resolve_step};
use crate::secrets::SecretValues;
use crate::source::short;
use crate::stage::Stage;

/// The same event (reason, revision, message) is sent once in this window.
const DEDUPE_WINDOW: Duration = Duration::from_secs(3600);
/// At most this many notifications per pipeline in [`RATE_WINDOW`].
const RATE_LIMIT: usize = 20;
const RATE_WINDOW: Duration = Duration::from_secs(600);
/// Objects named in one event.
const MAX_OBJECTS: usize = 50;

/// Why a run that changed nothing still has news.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct News {
    /// It succeeded after a failure.
    pub recovered: bool,
    /// Its start was told ([`Controller::tell_started`]): its end is told too.
    pub told_start: bool,
}

/// What a run has to say.
#[derive(Debug)]
pub(super) struct Outcome {
    events: Vec<Event>,
}

fn object_ref(r: &ObjKey) -> ObjectRef {
    ObjectRef {
        api_version: r.api_version(),
        kind: r.kind.clone(),
        namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
        name: r.name.clone(),
    }
}

impl Outcome {
    /// Run failed (or health failed); drift corrected; pruned; succeeded when it changed
    /// something, recovered from a failure or was told as started. Nothing for a run that
    /// changed nothing. The events carry `revision`, what the run was for (a failed run's
    /// record keeps the one before).
    pub fn of(
        pipeline: &PipelineSpec,
        trigger: Trigger,
        record: &RunRecord,
        revision: &str,
        report: &RunReport,
        news: News,
    ) -> Option<Outcome> {
        if pipeline.notify.is_empty() {
            return None;
        }
        let event = |reason, severity, message: String, objects: Vec<ObjectRef>| Event {
            pipeline: pipeline.name.clone(),
            reason,
            severity,
            revision: revision.to_owned(),
            message,
            objects,
            timestamp: record.finished.clone(),
        };
        let mut events = Vec::new();
        let cluster = &report.cluster;
        let changed: Vec<ObjectRef> = cluster
            .changed()
            .filter(|o| o.action != Action::Pruned)
            .take(MAX_OBJECTS)
            .map(|o| object_ref(&o.key))
            .collect();
        match &report.outcome {
            Err(failed) => {
                let reason =
                    if failed.stage == Stage::Health { EventReason::HealthFailed } else { EventReason::RunFailed };
                let message = record.error.clone().unwrap_or_else(|| failed.error.to_string());
                events.push(event(reason, Severity::Error, message, changed));
            }
            Ok(()) => {
                let pruned: Vec<ObjectRef> = cluster
                    .changed()
                    .filter(|o| o.action == Action::Pruned)
                    .take(MAX_OBJECTS)
                    .map(|o| object_ref(&o.key))
                    .collect();
                if trigger == Trigger::Drift && !changed.is_empty() {
                    let message = format!("drift corrected: {} object(s) put back", changed.len());
                    events.push(event(EventReason::DriftCorrected, Severity::Warning, message, changed.clone()));
                }
                if !pruned.is_empty() {
                    let message = format!("pruned {} object(s)", cluster.count(Action::Pruned));
                    events.push(event(EventReason::Pruned, Severity::Info, message, pruned));
                }
                if !changed.is_empty() || news.recovered || news.told_start {
                    let c = &record.counts;
                    let message = format!(
                        "applied {} ({} applied, {} unchanged, {} pruned) in {:.1}s",
                        short(&report.revision),
                        c.applied,
                        c.unchanged,
                        c.pruned,
                        record.latency_seconds
                    );
                    events.push(event(EventReason::RunSucceeded, Severity::Info, message, changed));
                }
            }
        }
        (!events.is_empty()).then_some(Outcome { events })
    }
}

/// Dedupe and rate limit of one pipeline's notifications.
#[derive(Debug, Default)]
pub(super) struct Limiter {
    sent: HashMap<(String, String, String), Instant>,
    recent: VecDeque<Instant>,
    /// The revision whose start was last told (or found already applied after a restart).
    started: Option<String>,
}

impl Limiter {
    fn expire(&mut self, now: Instant) {
        self.sent.retain(|_, at| now.duration_since(*at) < DEDUPE_WINDOW);
        while self.recent.front().is_some_and(|at| now.duration_since(*at) >= RATE_WINDOW) {
            self.recent.pop_front();
        }
    }

    /// Whether to tell that a run of `revision` starts: once per new revision (the
    /// retries of a failed one say nothing more), within the rate. The first time (after a
    /// restart), the revision the inventory was written for (`applied`) is not new.
    fn admit_start(&mut self, revision: &str, applied: &str) -> bool {
        let new = self.started.as_deref().unwrap_or(applied) != revision;
        self.started = Some(revision.to_owned());
        if !new {
            return false;
        }
        let now = Instant::now();
        self.expire(now);
        if self.recent.len() >= RATE_LIMIT {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// Keeps the events not sent recently, within the rate; the rest are dropped.
    fn admit(&mut self, events: Vec<Event>) -> (Vec<Event>, usize) {
        let now = Instant::now();
        self.expire(now);
        let before = events.len();
        let fresh: Vec<Event> = events
            .into_iter()
            .filter(|e| {
                let key = (format!("{:?}", e.reason), e.revision.clone(), e.message.clone());
                self.sent.insert(key, now).is_none()
            })
            .collect();
        if fresh.is_empty() || self.recent.len() >= RATE_LIMIT {
            return (Vec::new(), before);
        }
        self.recent.push_back(now);
        let kept = fresh.len();
        (fresh, before - kept)
    }
}

impl Controller {
    /// Before a run applies `revision`: tells the steps that hear of starts (notifiers of
    /// the `status-notifier` world, such as `github-status`), once per new revision. After
    /// a restart, the revision the inventory was last written for (`applied`) is not new.
    /// Returns whether it told, so that the run's outcome is told too.
    pub(super) async fn tell_started(&self, ctx: &RunContext<'_>, revision: &str, applied: &str) -> bool {
        let (prepared, pipeline) = (ctx.prepared, ctx.pipeline);
        let hears = |step: &crate::config::Step| {
            (hears_starts(step)
                && prepared.plugin(&step.uses).is_ok_and(|p| p.notifier().is_some_and(|n| n.tells_starts())))
            .then_some(())
        };
        if !pipeline.notify.iter().any(|s| hears(s).is_some()) {
            return false;
        }
        let name = pipeline.name.as_str();
        let admitted =
            self.lock().pipelines.get_mut(name).is_some_and(|t| t.notifications.admit_start(revision, applied));
        if !admitted {
            return false;
        }
        let run = RunStart {
            pipeline: name.into(),
            revision: revision.into(),
            timestamp: super::status::rfc3339(std::time::SystemTime::now()),
        };
        let started = |n: &Notifier, with: &_, scope: &_, hosts: &[String], ()| n.started(with, &run, hosts, scope);
        self.send(prepared, pipeline, Some(&ctx.secrets), hears, started).await;
        true
    }

    /// Sends a run's events through the pipeline's notify chain.
    /// `secrets` are the run's, when it read them; else they are read now.
    pub(super) async fn notify(
        &self,
        prepared: &Prepared,
        pipeline: &PipelineSpec,
        secrets: Option<&SecretValues>,
        outcome: Outcome,
    ) {
        let name = pipeline.name.as_str();
        let (events, dropped) = {
            let mut st = self.lock();
            let Some(tracked) = st.pipelines.get_mut(name) else { return };
            tracked.notifications.admit(outcome.events)
        };
        if dropped > 0 {
            self.metrics.notifications_dropped.get_or_create(&PipelineLabels::of(name)).inc_by(dropped as u64);
        }
        if events.is_empty() {
            return;
        }
        let taken = |step: &crate::config::Step| Some(taken(step, &events)).filter(|e| !e.is_empty());
        let notify = |n: &Notifier, with: &_, scope: &_, hosts: &[String], events: Vec<Event>| {
            n.notify(with, &events, hosts, scope)
        };
        self.send(prepared, pipeline, secrets, taken, notify).await;
    }

    /// Calls each notify step that `pick` picks; what failed is logged and shown on the
    /// status page (`notify_error`), and never fails the delivery.
    async fn send<T>(
        &self,
        prepared: &Prepared,
        pipeline: &PipelineSpec,
        secrets: Option<&SecretValues>,
        pick: impl Fn(&crate::config::Step) -> Option<T> + Sync,
        call: impl Fn(&Notifier, &serde_json::Value, &CallScope, &[String], T) -> Result<Result<(), String>, CallError>
        + Sync,
    ) {
        let name = pipeline.name.as_str();
        let config = &prepared.config;
        let read;
        let secrets = match secrets {
            Some(secrets) => Ok(secrets),
            None => {
                read = SecretValues::for_pipeline(Some(&self.target.client), config, pipeline).await;
                read.as_ref()
            }
        };
        let error = match secrets {
            Err(e) => Some(format!("secrets: {e}")),
            Ok(secrets) => blocking(|| {
                let mut errors = Vec::new();
                for step in &pipeline.notify {
                    let Some(picked) = pick(step) else { continue };
                    let sent = resolve_step::<Notifier>(prepared, "notify", step, secrets, None)
                        .map_err(|e| e.to_string())
                        .and_then(|step_call| {
                            let hosts = step.allow_hosts.clone();
                            let plugin = step_call.plugin().name().to_owned();
                            match step_call.run(|p, with, scope| call(p, with, scope, &hosts, picked)) {
                                Ok(Ok(())) => Ok(()),
                                Ok(Err(message)) => Err(format!("notifier `{plugin}`: {message}")),
                                Err(e) => Err(e.to_string()),
                            }
                        });
                    if let Err(e) = sent {
                        let e = secrets.redact(&e);
                        tracing::warn!(pipeline = name, "notification failed (the delivery is not affected): {e}");
                        errors.push(e);
                    }
                }
                (!errors.is_empty()).then(|| errors.join("; "))
            }),
        };
        if let Some(tracked) = self.lock().pipelines.get_mut(name) {
            tracked.notify_error = error;
        }
    }
}

/// Whether a step's filters let a run start through: `on` names `run-started` (or is
/// empty) and `min_severity` is `info`, a start's severity.
fn hears_starts(step: &crate::config::Step) -> bool {
    use crate::config::{MinSeverity, NotifyOn};
    let on = step.on.is_empty() || step.on.contains(&NotifyOn::RunStarted);
    on && step.min_severity.is_none_or(|m| m == MinSeverity::Info)
}

/// The events a notify step takes: of its `on` reasons (all without), at least its
/// `min_severity`.
fn taken(step: &crate::config::Step, events: &[Event]) -> Vec<Event> {
    use crate::config::{MinSeverity, NotifyOn};
    let on = |reason: EventReason| match reason {
        EventReason::RunSucceeded => NotifyOn::RunSucceeded,
        EventReason::RunFailed => NotifyOn::RunFailed,
        EventReason::DriftCorrected => NotifyOn::DriftCorrected,
        EventReason::HealthFailed => NotifyOn::HealthFailed,
        EventReason::Pruned => NotifyOn::Pruned,
    };
    let severity = |s: Severity| match s {
        Severity::Info => MinSeverity::Info,
        Severity::Warning => MinSeverity::Warning,
        Severity::Error => MinSeverity::Error,
    };
    let floor = step.min_severity.unwrap_or(MinSeverity::Info);
    events
        .iter()
        .filter(|e| step.on.is_empty() || step.on.contains(&on(e.reason)))
        .filter(|e| severity(e.severity) >= floor)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str) -> Event {
        Event {
            pipeline: "p".into(),
            reason: EventReason::RunFailed,
            severity: Severity::Error,
            revision: "abc".into(),
            message: message.into(),
            objects: Vec::new(),
            timestamp: "2026-11-22T00:00:00Z".into(),
        }
    }

    #[test]
    fn repeated_events_are_sent_once_and_bursts_are_capped() {
        let mut limiter = Limiter::default();
        let (sent, dropped) = limiter.admit(vec![event("boom"), event("boom")]);
        assert_eq!((sent.len(), dropped), (1, 1), "a duplicate within one batch");
        let (sent, dropped) = limiter.admit(vec![event("boom")]);
        assert_eq!((sent.len(), dropped), (0, 1), "the same failure again");
        for i in 1..RATE_LIMIT {
            assert_eq!(limiter.admit(vec![event(&format!("failure {i}"))]).0.len(), 1);
        }
        let (sent, dropped) = limiter.admit(vec![event("one too many")]);
        assert_eq!((sent.len(), dropped), (0, 1), "over the rate limit");
    }

    #[test]
    fn a_step_takes_only_the_reasons_and_severities_it_asks_for() {
        let step =
            |extra: &str| -> crate::config::Step { toml::from_str(&format!("use = \"webhook\"\n{extra}")).unwrap() };
        let info = Event { reason: EventReason::RunSucceeded, severity: Severity::Info, ..event("applied") };
        let warning = Event { reason: EventReason::DriftCorrected, severity: Severity::Warning, ..event("drift") };
        let events = [info, warning, event("boom")];
        let messages = |step: &crate::config::Step| -> Vec<String> {
            taken(step, &events).into_iter().map(|e| e.message).collect()
        };
        assert_eq!(messages(&step("")), ["applied", "drift", "boom"]);
        assert_eq!(messages(&step("on = [\"run-failed\", \"run-succeeded\"]")), ["applied", "boom"]);
        assert_eq!(messages(&step("min_severity = \"warning\"")), ["drift", "boom"]);
        assert_eq!(messages(&step("on = [\"run-succeeded\"]\nmin_severity = \"error\"")), Vec::<String>::new());
        assert!(toml::from_str::<crate::config::Step>("use = \"x\"\non = [\"exploded\"]").is_err());
        assert!(hears_starts(&step("")) && hears_starts(&step("on = [\"run-started\", \"run-failed\"]")));
        assert!(!hears_starts(&step("on = [\"run-failed\"]")), "`on` leaves starts out");
        assert!(!hears_starts(&step("min_severity = \"warning\"")), "a start is info");
        assert!(messages(&step("on = [\"run-started\"]")).is_empty(), "no event is a start");
    }

    #[test]
    fn a_start_is_told_once_per_new_revision_within_the_rate() {
        let mut limiter = Limiter::default();
        let mut restarted = Limiter::default();
        assert!(!restarted.admit_start("r0", "r0"), "applied before a restart");
        assert!(restarted.admit_start("r1", "r0"));
        assert!(limiter.admit_start("r1", ""));
        assert!(!limiter.admit_start("r1", ""), "a retry of the same revision");
        assert!(limiter.admit_start("r2", "") && limiter.admit_start("r1", ""), "a new revision, then going back");
        // Three starts so far; the events take all but one of the rest.
        for i in 0..RATE_LIMIT - 4 {
            let (sent, _) = limiter.admit(vec![event(&format!("failure {i}"))]);
            assert_eq!(sent.len(), 1);
        }
        assert!(limiter.admit_start("r3", ""), "the rate's last slot");
        assert!(!limiter.admit_start("r4", ""), "starts and events share the rate");
        assert_eq!(limiter.admit(vec![event("late")]).0.len(), 0);
    }
}
