//! Controller mode (`moor run`): when each pipeline runs.
//!
//! One scheduler loop starts due runs on a bounded worker pool. A pipeline runs at most
//! once at a time; a trigger during a run queues exactly one more. Triggers are the full-run
//! interval (with jitter), a new source revision (polling), drift seen by a watch, a signed
//! webhook, a manual request, and a config reload. A failed run is retried with exponential
//! backoff up to the pipeline's `retry_interval`; every run has a timeout. A pipeline whose
//! dependencies have not applied their current revision waits, and one whose dependency
//! failed is blocked with the reason. Only the leader (FA-7) runs anything, and a leader
//! that loses its lease stops its runs at once.
//!
//! The pieces: [`drift`] (watches on managed objects), [`leader`] (the Lease),
//! [`notify`] (notifier chains and Kubernetes Events), [`status`] (what the API shows).

mod drift;
mod leader;
mod notify;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use backon::BackoffBuilder;
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::apply::{self, RunOptions, Target};
use crate::config::{Config, PipelineSpec, SpannedStr};
use crate::http::metrics::{ActionLabels, FileLabels, Metrics, PipelineLabels, RunLabels, StateLabels, TriggerLabels};
use crate::reconcile::{Delivery, Moor, PipelineResult, Prepared, StageError, blocking};
use crate::secrets::SecretValues;
use status::{Counts, FileResult, PipelineStatus, RunRecord, Status, StepStatus};

/// Why a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Startup,
    Interval,
    Retry,
    Revision,
    Drift,
    Webhook,
    Manual,
    Config,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Interval => "interval",
            Trigger::Retry => "retry",
            Trigger::Revision => "revision",
            Trigger::Drift => "drift",
            Trigger::Webhook => "webhook",
            Trigger::Manual => "manual",
            Trigger::Config => "config",
        }
    }
}

/// What a trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Triggered {
    /// The pipeline was idle: it runs now (as soon as a worker is free).
    Started,
    /// A run is in progress: one more was queued behind it.
    Queued,
    /// A run is in progress and one is already queued: nothing more is queued.
    AlreadyQueued,
}

/// How `moor run` was started.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    /// Take part in leader election on a Lease; without it this instance always leads.
    pub leader_election: bool,
    pub identity: String,
    /// How long a SIGTERM waits for runs in progress before stopping them.
    pub shutdown_grace: Duration,
    /// Lease timing: how long a lease lasts, and how early the holder renews it.
    pub lease_duration: Duration,
    pub lease_grace: Duration,
}

/// The scheduling state of one pipeline.
struct Slot {
    running: Option<tokio::task::AbortHandle>,
    queued: Option<Trigger>,
    due: Instant,
    reason: Trigger,
    backoff: Option<backon::ExponentialBackoff>,
    /// Set through the API; wins over the config's `suspend`.
    suspended_by_api: Option<bool>,
    /// The revision whose time-to-deploy was last recorded.
    deployed: Option<String>,
    notifications: notify::Limiter,
    status: PipelineStatus,
}

/// A source revision and when it was first seen.
#[derive(Debug, Clone)]
struct Seen {
    revision: String,
    at: SystemTime,
}

struct State {
    prepared: Arc<Prepared>,
    config_text: String,
    config_error: Option<String>,
    config_loaded: SystemTime,
    pipelines: BTreeMap<String, Slot>,
    sources: HashMap<String, Seen>,
    next_poll: HashMap<String, Instant>,
}

/// The running controller, shared by the scheduler, the HTTP server and the watches.
pub struct Controller {
    pub moor: Moor,
    pub target: Target,
    pub metrics: Metrics,
    pub options: Options,
    state: Mutex<State>,
    wake: Notify,
    workers: Arc<Semaphore>,
    leader: AtomicBool,
    ready: AtomicBool,
    stopping: AtomicBool,
    started: SystemTime,
    watched: Mutex<HashSet<(String, String)>>,
    /// What each pipeline's last successful run applied, for the drift watch.
    applied: Mutex<HashMap<String, HashMap<drift::Key, serde_json::Value>>>,
    events: notify::EventSink,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("options", &self.options).finish_non_exhaustive()
    }
}

/// Start-up jitter and the spread of interval runs: up to a tenth of the interval.
fn jitter(interval: Duration, name: &str) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos().hash(&mut h);
    interval.mul_f64((h.finish() % 1000) as f64 / 10_000.0)
}

fn backoff(retry: Duration) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1).min(retry))
        .with_max_delay(retry)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

impl Controller {
    /// Loads plugins for `config` and sets up (but does not start) the controller.
    pub fn new(moor: Moor, target: Target, config: Config, text: String, options: Options) -> Arc<Controller> {
        let workers = Arc::new(Semaphore::new(config.settings.workers));
        let metrics = Metrics::default();
        let events = notify::EventSink::start(target.client.clone(), &options.identity);
        let prepared = Arc::new(blocking(|| moor.prepare(Arc::new(config))));
        let controller = Arc::new(Controller {
            moor,
            target,
            metrics,
            options,
            state: Mutex::new(State {
                prepared: prepared.clone(),
                config_text: text,
                config_error: None,
                config_loaded: SystemTime::now(),
                pipelines: BTreeMap::new(),
                sources: HashMap::new(),
                next_poll: HashMap::new(),
            }),
            wake: Notify::new(),
            workers,
            leader: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            started: SystemTime::now(),
            watched: Mutex::new(HashSet::new()),
            applied: Mutex::new(HashMap::new()),
            events,
        });
        let weak = Arc::downgrade(&controller);
        controller.moor.runtime().observe_calls(Box::new(move |plugin, took| {
            if let Some(c) = weak.upgrade() {
                c.metrics
                    .plugin_calls
                    .get_or_create(&crate::http::metrics::PluginLabels { plugin: plugin.into() })
                    .observe(took.as_secs_f64());
            }
        }));
        controller.install(prepared, Trigger::Startup);
        controller
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs until SIGTERM (or `stop`): leader election, the scheduler, source polling,
    /// config reloads. Returns after runs in progress finished (or were stopped) and the
    /// lease was released.
    pub async fn run(self: &Arc<Self>, stop: impl Future<Output = ()>) {
        let lease = if self.options.leader_election {
            match leader::Lease::acquire(self).await {
                Ok(lease) => Some(lease),
                Err(e) => {
                    tracing::error!("leader election: {e}");
                    return;
                }
            }
        } else {
            self.set_leader(true);
            None
        };
        self.ready.store(true, Ordering::Relaxed);
        let tasks = [
            tokio::spawn(self.clone().schedule_loop()),
            tokio::spawn(self.clone().poll_loop()),
            tokio::spawn(self.clone().reload_loop()),
        ];
        stop.await;
        tracing::info!("stopping: no new runs; waiting for runs in progress");
        self.stopping.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let deadline = Instant::now() + self.options.shutdown_grace;
        while self.running_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop_runs("the controller is shutting down");
        for task in tasks {
            task.abort();
        }
        if let Some(lease) = lease {
            lease.release().await;
        }
        self.events.flush().await;
    }

    fn running_count(&self) -> usize {
        self.lock().pipelines.values().filter(|s| s.running.is_some()).count()
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Called by the lease: becoming leader starts scheduling; losing the lease stops every
    /// run at once (the apply engine converges from any point on the next run).
    fn set_leader(self: &Arc<Self>, leader: bool) {
        let was = self.leader.swap(leader, Ordering::Relaxed);
        self.metrics.leader.set(i64::from(leader));
        if leader && !was {
            tracing::info!(identity = self.options.identity, "leading: pipelines will run");
            let now = Instant::now();
            for slot in self.lock().pipelines.values_mut() {
                slot.due = slot.due.min(now);
            }
            tokio::spawn(self.clone().remove_gone_pipelines());
            self.wake.notify_one();
        } else if !leader && was {
            tracing::warn!(identity = self.options.identity, "lost the lease: stopping every run");
            self.stop_runs("this instance lost its lease");
        }
    }

    fn stop_runs(&self, why: &str) {
        let mut st = self.lock();
        for slot in st.pipelines.values_mut() {
            if let Some(run) = slot.running.take() {
                run.abort();
                slot.status.state = "stopped";
                slot.status.reason = Some(why.into());
                slot.due = Instant::now();
            }
        }
    }

    /// Asks for a run of `name`. A pipeline that is running gets exactly one run queued.
    pub fn trigger(&self, name: &str, trigger: Trigger) -> Result<Triggered, String> {
        let mut st = self.lock();
        let suspended_in_config = st.prepared.config.pipeline(name).map(|p| p.suspend);
        let slot = st.pipelines.get_mut(name).ok_or_else(|| format!("no pipeline is named `{name}`"))?;
        if matches!(trigger, Trigger::Manual | Trigger::Webhook)
            && slot.suspended_by_api.or(suspended_in_config).unwrap_or(false)
        {
            return Err(format!("pipeline `{name}` is suspended"));
        }
        self.metrics
            .triggers
            .get_or_create(&TriggerLabels { pipeline: name.into(), trigger: trigger.as_str().into() })
            .inc();
        let result = if slot.running.is_some() {
            let already = slot.queued.is_some();
            slot.queued = Some(trigger);
            slot.status.queued = Some(trigger.as_str());
            if already { Triggered::AlreadyQueued } else { Triggered::Queued }
        } else {
            if slot.due > Instant::now() || slot.reason == Trigger::Interval {
                slot.reason = trigger;
            }
            slot.due = Instant::now();
            Triggered::Started
        };
        drop(st);
        self.wake.notify_one();
        Ok(result)
    }

    /// Suspends or resumes `name`. This wins over the config's `suspend` for as long as the
    /// controller runs (a restart goes back to the config).
    pub fn set_suspended(&self, name: &str, suspended: bool) -> Result<(), String> {
        let mut st = self.lock();
        let slot = st.pipelines.get_mut(name).ok_or_else(|| format!("no pipeline is named `{name}`"))?;
        slot.suspended_by_api = Some(suspended);
        slot.status.suspended = suspended;
        if !suspended {
            slot.due = Instant::now();
            slot.reason = Trigger::Manual;
        }
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// The scheduler: starts every due, ready pipeline while workers are free.
    async fn schedule_loop(self: Arc<Self>) {
        loop {
            let next = self.start_due_runs();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next.into()) => {}
            }
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    fn start_due_runs(self: &Arc<Self>) -> Instant {
        let now = Instant::now();
        let mut earliest = now + Duration::from_secs(60);
        let mut st = self.lock();
        let prepared = st.prepared.clone();
        let config = prepared.config.clone();
        let mut waiting = 0;
        for pipeline in config.pipelines_in_order() {
            let name = pipeline.name.s();
            let gate = gate(&st, &config, pipeline);
            let Some(slot) = st.pipelines.get_mut(name) else { continue };
            let suspended = slot.suspended_by_api.unwrap_or(pipeline.suspend);
            slot.status.suspended = suspended;
            if slot.running.is_some() {
                continue;
            }
            if suspended {
                slot.status.state = "suspended";
                slot.status.reason = None;
                continue;
            }
            if slot.due > now {
                earliest = earliest.min(slot.due);
                if slot.status.state != "stopped" {
                    slot.status.state = "idle";
                }
                continue;
            }
            waiting += 1;
            if !self.is_leader() || self.stopping.load(Ordering::Relaxed) {
                continue;
            }
            if let Err((state, reason)) = gate {
                slot.status.state = state;
                slot.status.reason = Some(reason);
                continue;
            }
            let Ok(permit) = self.workers.clone().try_acquire_owned() else {
                slot.status.state = "due";
                continue;
            };
            waiting -= 1;
            let trigger = slot.reason;
            slot.status.state = "running";
            slot.status.reason = None;
            let task = tokio::spawn(self.clone().run_pipeline(name.to_owned(), trigger, permit, prepared.clone()));
            slot.running = Some(task.abort_handle());
        }
        let queued = st.pipelines.values().filter(|s| s.queued.is_some()).count();
        self.metrics.queue_depth.set((waiting + queued) as i64);
        earliest
    }

    /// One run of one pipeline, then its bookkeeping: status, metrics, the next run,
    /// notifications and events.
    async fn run_pipeline(
        self: Arc<Self>,
        name: String,
        trigger: Trigger,
        _permit: OwnedSemaphorePermit,
        prepared: Arc<Prepared>,
    ) {
        let Some(pipeline) = prepared.config.pipeline(&name).cloned() else { return };
        let _running = RunningGuard::new(&self.metrics);
        let started = SystemTime::now();
        let clock = Instant::now();
        tracing::info!(pipeline = name, trigger = trigger.as_str(), "run started");
        let delivery = self.moor.reconcile(&prepared, &pipeline, &self.target, RunOptions { dry_run: false }, &|_| {});
        let result = match tokio::time::timeout(pipeline.timeout.0, delivery).await {
            Ok(result) => result,
            Err(_) => Err(StageError::Timeout(pipeline.timeout.0)),
        };
        let took = clock.elapsed();
        match &result {
            Ok(d) => tracing::info!(pipeline = name, revision = d.report.revision, ?took, "run succeeded"),
            Err(e) => tracing::warn!(pipeline = name, ?took, "run failed: {e}"),
        }
        // Before the run counts as over: the watch compares what it sees with this.
        if let Ok(delivery) = &result {
            self.remember_applied(&name, &delivery.report);
        }
        let outcome = self.finish(&prepared, &pipeline, trigger, started, took, &result);
        if let Ok(delivery) = &result {
            self.watch_kinds(&delivery.report.kinds);
            self.events.record(&name, &delivery.report);
        }
        if let Some(outcome) = outcome {
            self.notify(&prepared, &pipeline, outcome).await;
        }
        self.wake.notify_one();
    }

    /// Records a finished run and schedules the next; returns what to notify about.
    fn finish(
        &self,
        prepared: &Prepared,
        pipeline: &PipelineSpec,
        trigger: Trigger,
        started: SystemTime,
        took: Duration,
        result: &Result<Delivery, StageError>,
    ) -> Option<notify::Outcome> {
        let name = pipeline.name.s();
        let config = &prepared.config;
        let ok = result.is_ok();
        let label = |result: &str| RunLabels { pipeline: name.into(), result: result.into() };
        self.metrics
            .run_duration
            .get_or_create(&label(if ok { "success" } else { "failure" }))
            .observe(took.as_secs_f64());

        let mut st = self.lock();
        // A new revision found by this run is news for the other pipelines of the source.
        let mut revision_news = false;
        if let Ok(d) = result
            && st.sources.get(pipeline.source.s()).is_none_or(|seen| seen.revision != d.report.revision)
        {
            let seen = Seen { revision: d.report.revision.clone(), at: started };
            revision_news = st.sources.insert(pipeline.source.s().to_owned(), seen).is_some();
        }
        let seen = st.sources.get(pipeline.source.s()).cloned();
        let slot = st.pipelines.get_mut(name)?;
        slot.running = None;
        slot.status.runs += 1;
        let record = match result {
            Ok(d) => {
                let report = &d.report;
                let counts = Counts::of(report, true);
                for (action, n) in [
                    ("created", report.created.len()),
                    ("configured", report.configured.len()),
                    ("unchanged", report.unchanged.len()),
                    ("recreated", report.recreated.len()),
                    ("pruned", report.pruned.len()),
                    ("ignored", report.skipped.len()),
                ] {
                    self.metrics
                        .objects
                        .get_or_create(&ActionLabels { pipeline: name.into(), action: action.into() })
                        .inc_by(n as u64);
                }
                let mut files: BTreeMap<&str, usize> = BTreeMap::new();
                for (file, _) in &report.files {
                    *files.entry(file.as_str()).or_default() += 1;
                }
                for (file, n) in &files {
                    self.metrics
                        .file_applies
                        .get_or_create(&FileLabels {
                            pipeline: name.into(),
                            file: (*file).into(),
                            result: "success".into(),
                        })
                        .inc_by(*n as u64);
                }
                if let Some(seen) = &seen
                    && seen.revision == report.revision
                    && slot.deployed.as_deref() != Some(&report.revision)
                {
                    let waited = SystemTime::now().duration_since(seen.at).unwrap_or_default();
                    self.metrics
                        .time_to_deploy
                        .get_or_create(&PipelineLabels { pipeline: name.into() })
                        .observe(waited.as_secs_f64());
                }
                slot.deployed = Some(report.revision.clone());
                RunRecord {
                    trigger: trigger.as_str(),
                    started: status::rfc3339(started),
                    finished: status::rfc3339(SystemTime::now()),
                    latency_seconds: took.as_secs_f64(),
                    revision: report.revision.clone(),
                    revision_url: revision_url(config, name, &report.revision),
                    ok: true,
                    healthy: report.healthy,
                    stage: None,
                    error: None,
                    counts,
                    diagnostics: status::diagnostics(&d.findings),
                    files: files
                        .iter()
                        .map(|(f, n)| FileResult { file: (*f).into(), objects: *n, result: "applied" })
                        .collect(),
                    ignored: report.skipped.iter().map(|(o, why)| format!("{o}: {why}")).collect(),
                }
            }
            Err(e) => {
                if let StageError::Apply(apply::ApplyError::Apply { origin, .. }) = e {
                    let file = origin.rsplit_once(':').map_or(origin.as_str(), |(f, _)| f);
                    self.metrics
                        .file_applies
                        .get_or_create(&FileLabels {
                            pipeline: name.into(),
                            file: file.into(),
                            result: "failure".into(),
                        })
                        .inc();
                }
                let failed = PipelineResult::failed(name, e);
                let revision = slot.status.last_run.as_ref().map(|r| r.revision.clone()).unwrap_or_default();
                RunRecord {
                    trigger: trigger.as_str(),
                    started: status::rfc3339(started),
                    finished: status::rfc3339(SystemTime::now()),
                    latency_seconds: took.as_secs_f64(),
                    revision_url: revision_url(config, name, &revision),
                    revision,
                    ok: false,
                    healthy: false,
                    stage: Some(e.stage()),
                    error: failed.error,
                    counts: Counts::default(),
                    diagnostics: status::diagnostics(e.findings()),
                    files: Vec::new(),
                    ignored: Vec::new(),
                }
            }
        };
        for (state, n) in [
            ("discovered", record.counts.discovered),
            ("applied", record.counts.applied),
            ("unchanged", record.counts.unchanged),
            ("pruned", record.counts.pruned),
            ("ignored", record.counts.ignored),
            ("in_sync", record.counts.in_sync),
        ] {
            self.metrics
                .pipeline_objects
                .get_or_create(&StateLabels { pipeline: name.into(), state: state.into() })
                .set(n as i64);
        }
        let recovered = ok && slot.status.failures_in_a_row > 0;
        let now = Instant::now();
        if ok {
            slot.status.failures_in_a_row = 0;
            slot.backoff = None;
            slot.status.last_success = Some(record.finished.clone());
        } else {
            slot.status.failures_in_a_row += 1;
        }
        match slot.queued.take() {
            Some(queued) => {
                slot.due = now;
                slot.reason = queued;
            }
            None if ok => {
                slot.due = now + pipeline.interval.0 + jitter(pipeline.interval.0, name);
                slot.reason = Trigger::Interval;
            }
            None => {
                let delay = slot.backoff.get_or_insert_with(|| backoff(pipeline.retry_interval.0)).next();
                slot.due = now + delay.unwrap_or(pipeline.retry_interval.0);
                slot.reason = Trigger::Retry;
            }
        }
        slot.status.queued = None;
        slot.status.state = "idle";
        slot.status.reason = None;
        let outcome = notify::Outcome::of(pipeline, trigger, &record, result, recovered);
        slot.status.last_run = Some(record);
        if revision_news {
            let others: Vec<String> = config
                .pipelines
                .iter()
                .filter(|p| p.source.s() == pipeline.source.s() && p.name.s() != name)
                .map(|p| p.name.s().to_owned())
                .collect();
            drop(st);
            for other in others {
                let _ = self.trigger(&other, Trigger::Revision);
            }
        }
        outcome
    }

    /// The status document of the API and the status page.
    pub fn status(&self) -> Status {
        let st = self.lock();
        let now = Instant::now();
        let config = &st.prepared.config;
        Status {
            instance: config.settings.instance.clone(),
            identity: self.options.identity.clone(),
            leader: self.is_leader(),
            ready: self.is_ready(),
            config_file: self.options.config_file.display().to_string(),
            config_error: st.config_error.clone(),
            config_loaded: status::rfc3339(st.config_loaded),
            started: status::rfc3339(self.started),
            pipelines: config
                .pipelines
                .iter()
                .filter_map(|p| st.pipelines.get(p.name.s()))
                .map(|slot| {
                    let mut s = slot.status.clone();
                    if slot.running.is_none() && !s.suspended {
                        let left = slot.due.saturating_duration_since(now).as_secs_f64()
                            - now.saturating_duration_since(slot.due).as_secs_f64();
                        s.next_run_in_seconds = Some((left * 10.0).round() / 10.0);
                    }
                    s
                })
                .collect(),
        }
    }

    /// Whether `name` is a pipeline of the current config, and its webhook secret.
    pub fn webhook_secret(&self, name: &str) -> Option<Option<crate::config::SecretRef>> {
        let st = self.lock();
        st.prepared.config.pipeline(name).map(|p| p.webhook_secret.clone())
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.lock().prepared.config.clone()
    }

    /// Puts a loaded config in place: new pipelines are due now, every existing one gets
    /// a run (`trigger`), and pipelines gone from the config are removed from the cluster.
    fn install(self: &Arc<Self>, prepared: Arc<Prepared>, trigger: Trigger) {
        let config = prepared.config.clone();
        let mut st = self.lock();
        let now = Instant::now();
        let names: HashSet<&str> = config.pipelines.iter().map(|p| p.name.s()).collect();
        let gone: Vec<String> = st.pipelines.keys().filter(|n| !names.contains(n.as_str())).cloned().collect();
        for name in &gone {
            if let Some(run) = st.pipelines.remove(name).and_then(|s| s.running) {
                run.abort();
            }
        }
        for pipeline in &config.pipelines {
            let name = pipeline.name.s();
            let steps = steps_status(&prepared, pipeline);
            match st.pipelines.get_mut(name) {
                Some(slot) => {
                    slot.status.plugins = steps;
                    slot.status.source = pipeline.source.s().into();
                    slot.status.depends_on = pipeline.depends_on.iter().map(|d| d.s().to_owned()).collect();
                    slot.status.interval_seconds = pipeline.interval.0.as_secs();
                    slot.status.webhook = pipeline.webhook_secret.is_some();
                    if slot.running.is_some() {
                        slot.queued = Some(trigger);
                    } else {
                        slot.due = now;
                        slot.reason = trigger;
                    }
                }
                None => {
                    let status = PipelineStatus {
                        name: name.into(),
                        source: pipeline.source.s().into(),
                        state: "idle",
                        reason: None,
                        suspended: pipeline.suspend,
                        depends_on: pipeline.depends_on.iter().map(|d| d.s().to_owned()).collect(),
                        interval_seconds: pipeline.interval.0.as_secs(),
                        next_run_in_seconds: None,
                        queued: None,
                        runs: 0,
                        failures_in_a_row: 0,
                        last_run: None,
                        last_success: None,
                        webhook: pipeline.webhook_secret.is_some(),
                        plugins: steps,
                        notify_error: None,
                    };
                    let slot = Slot {
                        running: None,
                        queued: None,
                        due: now,
                        reason: trigger,
                        backoff: None,
                        suspended_by_api: None,
                        deployed: None,
                        notifications: notify::Limiter::default(),
                        status,
                    };
                    st.pipelines.insert(name.into(), slot);
                }
            }
        }
        st.prepared = prepared;
        st.config_error = None;
        st.config_loaded = SystemTime::now();
        st.next_poll.clear();
        drop(st);
        if !gone.is_empty() && self.is_leader() {
            tokio::spawn(self.clone().remove_gone_pipelines());
        }
        self.wake.notify_one();
    }

    /// Watches the config file; a valid change takes effect, an invalid one is shown and
    /// the running config stays (CORE-3). Content is compared, not modification times:
    /// a ConfigMap mount changes by swapping a symlink.
    async fn reload_loop(self: Arc<Self>) {
        let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
        loop {
            let interval = self.config().settings.reload_interval.0.max(Duration::from_millis(200));
            tokio::time::sleep(interval).await;
            let file = &self.options.config_file;
            let text = match tokio::fs::read_to_string(file).await {
                Ok(text) => text,
                Err(e) => {
                    self.reject(format!("{}: cannot read: {e}", file.display()), None);
                    continue;
                }
            };
            if text == self.lock().config_text {
                continue;
            }
            match Config::parse(file, text.clone(), &builtin) {
                Ok(config) => {
                    let prepared = blocking(|| self.moor.prepare(Arc::new(config)));
                    self.lock().config_text = text;
                    tracing::info!(file = %file.display(), "config reloaded");
                    self.install(Arc::new(prepared), Trigger::Config);
                }
                Err(e) => self.reject(e.to_string(), Some(text)),
            }
        }
    }

    fn reject(&self, error: String, text: Option<String>) {
        let mut st = self.lock();
        if st.config_error.as_deref() != Some(&error) {
            tracing::error!("config rejected, the previous one keeps running: {error}");
        }
        st.config_error = Some(error);
        if let Some(text) = text {
            st.config_text = text;
        }
    }

    /// Polls sources for new revisions (git: one ref advertisement when nothing changed).
    async fn poll_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if !self.is_leader() {
                continue;
            }
            let config = self.config();
            for source in &config.sources {
                let name = source.name.s();
                let every = source.poll_interval.0;
                if every.is_zero() || source.plugin.is_some() {
                    continue;
                }
                let now = Instant::now();
                // Due (and then booked for the next poll) under one lock.
                let due = match self.lock().next_poll.entry(name.into()) {
                    std::collections::hash_map::Entry::Occupied(at) if *at.get() > now => false,
                    entry => {
                        entry.insert_entry(now + every);
                        true
                    }
                };
                if !due {
                    continue;
                }
                let secrets = match SecretValues::for_source(Some(&self.target.client), &config, source).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(source = name, "poll: {e}");
                        continue;
                    }
                };
                let snapshot = blocking(|| self.moor.sources().snapshot(&config, source, &secrets));
                let revision = match snapshot {
                    Ok(s) => s.revision,
                    Err(e) => {
                        tracing::warn!(source = name, "poll: {e}");
                        continue;
                    }
                };
                let news = {
                    let mut st = self.lock();
                    match st.sources.get(name) {
                        Some(seen) if seen.revision == revision => false,
                        previous => {
                            let first = previous.is_none();
                            st.sources.insert(name.into(), Seen { revision: revision.clone(), at: SystemTime::now() });
                            !first
                        }
                    }
                };
                if news {
                    tracing::info!(source = name, revision, "new revision");
                    for p in config.pipelines.iter().filter(|p| p.source.s() == name) {
                        let _ = self.trigger(p.name.s(), Trigger::Revision);
                    }
                }
            }
        }
    }

    /// Pipelines with an inventory in the cluster but not in the config are removed, as
    /// `moor apply` does (FA-10).
    async fn remove_gone_pipelines(self: Arc<Self>) {
        let config = self.config();
        let in_cluster = match apply::pipelines_in_cluster(&self.target, &config.settings).await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!("cannot list pipelines in the cluster: {e}");
                return;
            }
        };
        for gone in in_cluster.iter().filter(|g| config.pipeline(g).is_none()) {
            match apply::remove_pipeline(&self.target, &config.settings, gone, &|_| {}).await {
                Ok(report) => tracing::info!(
                    pipeline = gone,
                    pruned = report.pruned.len(),
                    orphaned = report.orphaned.len(),
                    "removed a pipeline that left the config"
                ),
                Err(e) => tracing::warn!(pipeline = gone, "cannot remove a pipeline that left the config: {e}"),
            }
        }
    }
}

/// Whether `pipeline`'s dependencies let it run: `Err((state, reason))` when not.
fn gate(st: &State, config: &Config, pipeline: &PipelineSpec) -> Result<(), (&'static str, String)> {
    for dep in &pipeline.depends_on {
        let dep = dep.s();
        let Some(slot) = st.pipelines.get(dep) else { continue };
        let Some(last) = &slot.status.last_run else {
            return Err(("waiting", format!("waiting for dependency `{dep}` to apply")));
        };
        if !last.ok {
            let why = last.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("failed");
            return Err(("blocked", format!("dependency `{dep}` failed: {why}")));
        }
        let source = config.pipeline(dep).map(|p| p.source.s()).unwrap_or_default();
        if let Some(seen) = st.sources.get(source)
            && seen.revision != last.revision
        {
            return Err((
                "waiting",
                format!("waiting for dependency `{dep}` to apply revision {}", short(&seen.revision)),
            ));
        }
        if !last.healthy {
            return Err(("blocked", format!("dependency `{dep}` is not healthy")));
        }
    }
    Ok(())
}

/// The first 12 characters of a revision, for messages.
fn short(revision: &str) -> &str {
    &revision[..revision.len().min(12)]
}

/// The link to a revision, from `[moor] diff_url`.
fn revision_url(config: &Config, pipeline: &str, revision: &str) -> Option<String> {
    let format = config.settings.diff_url.as_ref()?;
    (!revision.is_empty()).then(|| format.replace("{revision}", revision).replace("{pipeline}", pipeline))
}

/// Every plugin step of a pipeline with what it was granted (B-6).
fn steps_status(prepared: &Prepared, pipeline: &PipelineSpec) -> Vec<StepStatus> {
    let chains = [("render", &pipeline.render), ("validate", &pipeline.validate), ("notify", &pipeline.notify)];
    let mut steps = Vec::new();
    for (chain, list) in chains {
        for step in list.iter() {
            let name = step.uses.s();
            let loaded = prepared.plugin(name);
            let mut capabilities = loaded.as_ref().map(|p| p.info.capabilities.clone()).unwrap_or_default();
            if !step.secrets.is_empty() {
                let keys: Vec<&str> = step.secrets.keys().map(String::as_str).collect();
                capabilities.push(format!("secrets: {}", keys.join(", ")));
            }
            steps.push(StepStatus {
                chain,
                plugin: name.into(),
                version: loaded.as_ref().ok().map(|p| p.info.version.clone()),
                capabilities,
                allow_hosts: step.allow_hosts.iter().map(|h| h.s().to_owned()).collect(),
                error: loaded.err(),
            });
        }
    }
    steps
}

/// Counts a run in progress for as long as it lives (also when it is stopped).
struct RunningGuard<'m>(&'m Metrics);

impl<'m> RunningGuard<'m> {
    fn new(metrics: &'m Metrics) -> Self {
        metrics.running.inc();
        RunningGuard(metrics)
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.dec();
    }
}
