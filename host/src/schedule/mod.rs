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
//! The pieces: [`slot`] (the pure per-pipeline state machine), [`pass`] (the pure choice
//! of what starts now), [`run`] (the controller's run of one pipeline), [`record`] (a run's
//! record and the history of runs), [`bookkeeping`] (a run's metrics, and the next run),
//! [`requests`] (triggers, suspend and resume from the API, webhooks and watches),
//! [`reload`] (config install and reload, removed pipelines), [`poll`] (source polling),
//! [`drift`] (watches on managed objects), [`leader`] (the Lease), [`shard`] (splitting the
//! pipelines between replicas), [`notify`] (notifier chains), [`events`] (Kubernetes
//! Events), [`status`] (what the API shows, built from the slots).

mod bookkeeping;
mod drift;
mod events;
mod leader;
mod notify;
mod pass;
mod poll;
pub mod record;
mod reload;
mod requests;
mod run;
pub mod shard;
pub mod slot;
pub mod status;
mod tenants;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;
use tokio::sync::{Notify, Semaphore};

use crate::apply::Target;
use crate::config::{Config, PipelineSpec};
use crate::metrics::Metrics;
use crate::reconcile::{Moor, Prepared, Tenants, admit_tenants, blocking};
use reload::Reconfigure;
pub use requests::RequestError;
use slot::{Blocked, Dependency, Slot};
pub use slot::{Trigger, Triggered};
pub use tenants::TenantStatus;

/// How `moor run` was started.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    /// Take part in leader election on a Lease; without it this instance always leads.
    pub leader_election: bool,
    /// Split the pipelines with the other replicas of the instance ([`shard`]).
    pub shard: bool,
    pub identity: String,
    /// How long a SIGTERM waits for runs in progress before stopping them.
    pub shutdown_grace: Duration,
    /// Lease timing: how long a lease lasts, and how early the holder renews it.
    pub lease_duration: Duration,
    pub lease_grace: Duration,
}

/// A pipeline the controller runs: its schedule, and what the status shows of it.
struct Tracked {
    /// Where the pipeline is in the installed config's `pipelines`.
    spec: usize,
    slot: Slot,
    /// The run in progress, to stop it.
    run: Option<RunHandle>,
    notifications: notify::Limiter,
    notify_error: Option<String>,
    /// The `wait_for` gate (KE-4), followed by watches while the pipeline is configured.
    gate: Option<(Vec<crate::wait::Dependency>, crate::wait::Gate)>,
}

impl Tracked {
    fn new(spec: usize, now: Instant, trigger: Trigger) -> Tracked {
        Tracked {
            spec,
            slot: Slot::new(now, trigger),
            run: None,
            notifications: notify::Limiter::default(),
            notify_error: None,
            gate: None,
        }
    }
}

/// A run in progress: its task, and its interrupt. Aborting the task alone would not stop
/// a fetch or a plugin call: the task sits in a blocking section and is cancelled only
/// once that returns, so the interrupt is raised first, which stops them within a second.
struct RunHandle {
    task: tokio::task::AbortHandle,
    interrupt: crate::interrupt::Interrupt,
}

impl RunHandle {
    fn stop(self, why: &str) {
        self.interrupt.raise(why);
        self.task.abort();
    }
}

/// A source revision and when it was first seen.
#[derive(Debug, Clone)]
struct Seen {
    revision: String,
    at: SystemTime,
}

/// The config file as last read.
struct ConfigFile {
    text: String,
    /// Why the file on disk, or the platform config it points at, was rejected; the
    /// previous config keeps running.
    error: Option<String>,
    loaded: SystemTime,
    /// A bootstrap config's platform source ([`reload`]), when the file is one.
    platform: Option<reload::PlatformSource>,
}

struct State {
    /// The config that runs: the platform config with its tenants' configs admitted.
    prepared: Arc<Prepared>,
    /// The platform config as loaded, before the tenants' configs are admitted.
    platform: Arc<Config>,
    /// Each tenant's config as last read ([`tenants`]), and when its source is asked next.
    tenants: Tenants,
    tenant_polls: HashMap<String, Instant>,
    file: ConfigFile,
    /// By name, in the config's dependency order (each after what it depends on), as
    /// [`Controller::install`] sorts them.
    pipelines: IndexMap<String, Tracked>,
    sources: HashMap<String, Seen>,
    next_poll: HashMap<String, Instant>,
    /// Notes already logged (inventories of other instances seen), so each is said once.
    noted: HashSet<String>,
    /// Sharded: what this member knows of the shard, and the config's shard keys.
    membership: Option<shard::core::Membership>,
    shard_keys: BTreeMap<String, String>,
    keys_digest: String,
    /// Sharded: where each pipeline runs, as of the last round of the shard.
    placements: HashMap<String, shard::core::Placement>,
    /// Sharded: where the removal of pipelines gone from the config runs, as of that round.
    removals: shard::core::Placement,
}

impl State {
    /// Whether `pipeline`'s dependencies and its `wait_for` gate let it run.
    fn gate(&self, pipeline: &PipelineSpec) -> Result<(), Blocked> {
        let config = &self.prepared.config;
        let deps: Vec<Dependency<'_>> = pipeline
            .depends_on
            .iter()
            .filter_map(|dep| {
                let tracked = self.pipelines.get(dep.as_str())?;
                let source = config.pipeline(dep).map(|p| p.source.as_str()).unwrap_or_default();
                Some(Dependency {
                    name: dep,
                    last: tracked.slot.last(),
                    newest: self.sources.get(source).map(|s| s.revision.as_str()),
                })
            })
            .collect();
        Slot::gate(&deps)?;
        let gate = self.pipelines.get(pipeline.name.as_str()).and_then(|t| t.gate.as_ref());
        match gate.map(|(_, gate)| gate.pending()).unwrap_or_default() {
            pending if pending.is_empty() => Ok(()),
            pending => Err(Blocked::Waiting(format!("waiting for {}", crate::wait::list(&pending)))),
        }
    }
}

/// Whether this process leads, is ready and is stopping.
#[derive(Debug, Default)]
struct Lifecycle {
    leader: AtomicBool,
    ready: AtomicBool,
    stopping: AtomicBool,
}

/// The running controller, shared by the scheduler, the HTTP server and the watches.
pub struct Controller {
    pub moor: Moor,
    pub target: Target,
    pub metrics: Metrics,
    pub options: Options,
    state: Mutex<State>,
    wake: Notify,
    /// Sharded: renew this member's Lease now (its view changed).
    shard_wake: Notify,
    workers: Arc<Semaphore>,
    lifecycle: Lifecycle,
    started: SystemTime,
    drift: drift::Memory,
    events: events::EventSink,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Controller {
    /// Loads plugins for `config` and sets up (but does not start) the controller. `text`
    /// is the config file's; when the file is a bootstrap config, `bootstrap` is it, and
    /// `config` the platform config it pointed at.
    pub fn new(
        moor: Moor,
        target: Target,
        config: Config,
        text: String,
        bootstrap: Option<Config>,
        options: Options,
    ) -> Arc<Controller> {
        let platform = bootstrap.and_then(|b| reload::PlatformSource::new(&moor, b, config.revision.as_ref()));
        let workers = Arc::new(Semaphore::new(config.settings.workers));
        let events = events::EventSink::start(target.client.clone(), &options.identity);
        // Until its config is read, each tenant is held: none of its pipelines run or are removed.
        let loaded = Arc::new(config);
        let mut tenants = Tenants::new();
        let tenant_polls = loaded.tenants.iter().map(|t| (t.name.clone(), Instant::now())).collect();
        let config = admit_tenants(&loaded, &mut tenants);
        let prepared = Arc::new(blocking(|| moor.prepare(config)));
        let metrics = Metrics::new(options.shard.then_some(options.identity.as_str()), &target.requests);
        let controller = Arc::new(Controller {
            moor,
            target,
            metrics,
            options: options.clone(),
            state: Mutex::new(State {
                prepared: prepared.clone(),
                platform: loaded,
                tenants,
                tenant_polls,
                file: ConfigFile { text, error: None, loaded: SystemTime::now(), platform },
                pipelines: IndexMap::new(),
                sources: HashMap::new(),
                next_poll: HashMap::new(),
                noted: HashSet::new(),
                membership: options
                    .shard
                    .then(|| shard::core::Membership { me: options.identity.clone(), ..Default::default() }),
                shard_keys: BTreeMap::new(),
                keys_digest: String::new(),
                placements: HashMap::new(),
                removals: shard::core::Placement::Arriving,
            }),
            wake: Notify::new(),
            shard_wake: Notify::new(),
            workers,
            lifecycle: Lifecycle::default(),
            started: SystemTime::now(),
            drift: drift::Memory::default(),
            events,
        });
        let weak = Arc::downgrade(&controller);
        controller.moor.runtime().observe_calls(Box::new(move |plugin, took| {
            if let Some(c) = weak.upgrade() {
                c.metrics
                    .plugin_calls
                    .get_or_create(&crate::metrics::PluginLabels { plugin: plugin.into() })
                    .observe(took.as_secs_f64());
            }
        }));
        controller.install(prepared, Trigger::Startup, Reconfigure::All);
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
        } else if !self.options.shard {
            self.set_leader(true);
            None
        } else {
            None
        };
        self.lifecycle.ready.store(true, Ordering::Relaxed);
        let mut tasks = vec![
            tokio::spawn(self.clone().schedule_loop()),
            tokio::spawn(self.clone().poll_loop()),
            tokio::spawn(self.clone().reload_loop()),
        ];
        if self.options.shard {
            tasks.push(tokio::spawn(self.clone().shard_loop()));
        }
        stop.await;
        tracing::info!("stopping: no new runs; waiting for runs in progress");
        self.lifecycle.stopping.store(true, Ordering::Relaxed);
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
        if self.options.shard {
            self.leave_shard().await;
        }
        self.events.flush().await;
    }

    fn running_count(&self) -> usize {
        self.lock().pipelines.values().filter(|t| t.slot.is_running()).count()
    }

    pub fn is_leader(&self) -> bool {
        self.lifecycle.leader.load(Ordering::Relaxed)
    }

    pub fn is_ready(&self) -> bool {
        self.lifecycle.ready.load(Ordering::Relaxed)
    }

    /// Called by the lease: becoming leader starts scheduling; losing the lease stops every
    /// run at once (the apply engine converges from any point on the next run).
    fn set_leader(self: &Arc<Self>, leader: bool) {
        let was = self.lifecycle.leader.swap(leader, Ordering::Relaxed);
        self.metrics.leader.set(i64::from(leader));
        if leader && !was {
            tracing::info!(identity = self.options.identity, "leading: pipelines will run");
            let now = Instant::now();
            for t in self.lock().pipelines.values_mut() {
                t.slot.due_now(now);
            }
            tokio::spawn(self.clone().remove_gone_pipelines());
            self.wake.notify_one();
        } else if !leader && was {
            tracing::warn!(identity = self.options.identity, "lost the lease: stopping every run");
            self.stop_runs("this instance lost its lease");
        }
    }

    fn stop_runs(&self, why: &str) {
        let now = Instant::now();
        for t in self.lock().pipelines.values_mut() {
            if let Some(run) = t.run.take() {
                run.stop(why);
                t.slot.stop(now, why);
            }
        }
    }

    /// The scheduler: starts every due, ready pipeline while workers are free.
    async fn schedule_loop(self: Arc<Self>) {
        loop {
            let next = self.start_due_runs();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next.into()) => {}
            }
            if self.lifecycle.stopping.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    /// Starts what [`pass::plan`] says; returns when the next pipeline becomes due.
    fn start_due_runs(self: &Arc<Self>) -> Instant {
        let now = Instant::now();
        let may_run = self.is_leader() && !self.lifecycle.stopping.load(Ordering::Relaxed);
        let mut st = self.lock();
        let prepared = st.prepared.clone();
        // In dependency order, and without a lookup by name: a pass follows every run.
        let candidates = st.pipelines.iter().filter(|(name, _)| st.runs_here(name)).filter_map(|(_, tracked)| {
            let pipeline = prepared.config.pipelines.get(tracked.spec)?;
            let slot = &tracked.slot;
            Some(pass::Candidate { pipeline, slot, suspended: slot.suspended(pipeline.suspend) })
        });
        let pass = pass::plan(candidates, now, self.workers.available_permits(), may_run, |p| st.gate(p).is_ok());
        let mut waiting = pass.waiting;
        for pipeline in pass.start {
            let name = pipeline.name.as_str();
            let Some(tracked) = st.pipelines.get_mut(name) else { continue };
            // Only this task takes permits, and `plan` took no more than were free.
            let Ok(permit) = self.workers.clone().try_acquire_owned() else {
                waiting += 1;
                continue;
            };
            let Some(trigger) = tracked.slot.start() else { continue };
            let interrupt = crate::interrupt::Interrupt::after(pipeline.timeout.0);
            let run = self.clone().run_pipeline(name.to_owned(), trigger, permit, prepared.clone(), interrupt.clone());
            tracked.run = Some(RunHandle { task: tokio::spawn(run).abort_handle(), interrupt });
        }
        let queued = st.pipelines.values().filter(|t| t.slot.queued().is_some()).count();
        self.metrics.queue_depth.set((waiting + queued) as i64);
        let horizon = now + Duration::from_secs(60);
        pass.next.map_or(horizon, |next| next.min(horizon))
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.lock().prepared.config.clone()
    }
}
