//! What the status page and the JSON API show: one document, built from the controller's
//! state. Nothing in it carries secret data.

use serde::Serialize;

use std::time::Instant;

pub use super::record::{Counts, FileResult, RunRecord, RunSpan};
use super::slot::{Blocked, Trigger};
use super::{Controller, State as Scheduling, Tracked};
use crate::config::PipelineSpec;
use crate::reconcile::Prepared;

/// The whole instance.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub instance: String,
    pub identity: String,
    pub leader: bool,
    pub ready: bool,
    pub config_file: String,
    /// For a bootstrap config: the platform config that runs, as `path of source `s` at
    /// <revision>`, and its full revision.
    pub config_source: Option<String>,
    pub config_revision: Option<String>,
    /// Why the config file on disk, or the platform config it points at, was rejected; the
    /// previous config keeps running.
    pub config_error: Option<String>,
    pub config_loaded: String,
    pub started: String,
    /// Sharded (`moor run --shard`): the members this one sees and the pipelines it owns.
    pub shard: Option<super::shard::ShardStatus>,
    /// The tenants (`[[tenant]]`): which config of each runs, and why a newer one does not.
    pub tenants: Vec<super::TenantStatus>,
    pub pipelines: Vec<PipelineStatus>,
}

/// One pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    pub name: String,
    /// The tenant whose config it is in; none for the platform's own.
    pub tenant: Option<String>,
    pub source: String,
    pub state: State,
    /// Why it is waiting, blocked or stopped.
    pub reason: Option<String>,
    pub suspended: bool,
    pub depends_on: Vec<String>,
    /// Its `wait_for` gates, as `moor wait` names them.
    pub wait_for: Vec<String>,
    pub interval_seconds: u64,
    /// Seconds until the next scheduled run (negative when overdue).
    pub next_run_in_seconds: Option<f64>,
    /// The trigger of the one run queued behind the current one.
    pub queued: Option<Trigger>,
    /// Runs since the controller started, and failures in a row.
    pub runs: u64,
    pub failures_in_a_row: u32,
    pub last_run: Option<RunRecord>,
    /// The last runs' times on this instance, newest last.
    pub history: Vec<RunSpan>,
    /// When the last successful run ended.
    pub last_success: Option<String>,
    pub webhook: bool,
    pub plugins: Vec<StepStatus>,
    pub notify_error: Option<String>,
}

/// What a pipeline is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not due yet.
    Idle,
    /// Due, waiting for a free worker (or for leadership).
    Due,
    Running,
    /// Due, waiting for a dependency to apply.
    Waiting,
    /// Due, but a dependency failed or is unhealthy.
    Blocked,
    Suspended,
    /// Its last run was stopped before it finished (the reason says why).
    Stopped,
    /// Sharded: another member of the shard runs it (the reason names it).
    Elsewhere,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Due => "due",
            State::Running => "running",
            State::Waiting => "waiting",
            State::Blocked => "blocked",
            State::Suspended => "suspended",
            State::Stopped => "stopped",
            State::Elsewhere => "elsewhere",
        }
    }
}

/// A plugin step and what it was granted (B-6).
#[derive(Debug, Clone, Serialize)]
pub struct StepStatus {
    pub chain: &'static str,
    pub plugin: String,
    pub version: Option<String>,
    /// `component` or `krm-function`.
    pub flavor: Option<&'static str>,
    pub capabilities: Vec<String>,
    pub allow_hosts: Vec<String>,
    /// The plugin could not be loaded.
    pub error: Option<String>,
}

impl Status {
    /// Keeps only tenant `tenant`'s pipelines (the platform's own for ``).
    pub fn only_tenant(&mut self, tenant: &str) {
        self.pipelines.retain(|p| p.tenant.as_deref().unwrap_or_default() == tenant);
        self.tenants.retain(|t| t.name == tenant);
    }
}

impl Controller {
    /// The status document of the API and the status page, built from the slots.
    pub fn status(&self) -> Status {
        let st = self.lock();
        let now = Instant::now();
        let prepared = &st.prepared;
        let config = &prepared.config;
        Status {
            instance: config.settings.instance.clone(),
            identity: self.options.identity.clone(),
            leader: self.is_leader(),
            ready: self.is_ready(),
            config_file: self.options.config_file.display().to_string(),
            config_source: config.revision.as_ref().map(|r| format!("{} of {r}", config.file.display())),
            config_revision: config.revision.as_ref().map(|r| r.revision.clone()),
            config_error: st.file.error.clone(),
            config_loaded: rfc3339(st.file.loaded),
            started: rfc3339(self.started),
            shard: st.shard_status(),
            tenants: Controller::tenant_statuses(&st),
            pipelines: config
                .pipelines
                .iter()
                .filter_map(|p| Some(view(&st, prepared, p, st.pipelines.get(p.name.as_str())?, now)))
                .collect(),
        }
    }
}

/// One pipeline as the status shows it.
fn view(st: &Scheduling, prepared: &Prepared, pipeline: &PipelineSpec, t: &Tracked, now: Instant) -> PipelineStatus {
    let suspended = t.slot.suspended(pipeline.suspend);
    let name = pipeline.name.as_str();
    let (state, reason) = if t.slot.is_running() {
        (State::Running, None)
    } else if let Some(owner) = st.owner_elsewhere(name) {
        (State::Elsewhere, Some(format!("run by {owner}, another member of the shard")))
    } else if !st.runs_here(name) {
        (State::Waiting, Some("moving here: waiting for the other members of the shard to let go".into()))
    } else if suspended {
        (State::Suspended, None)
    } else if let Some(why) = t.slot.stopped() {
        (State::Stopped, Some(why.to_owned()))
    } else if t.slot.is_due(now) {
        match st.gate(pipeline) {
            Err(Blocked::Waiting(why)) => (State::Waiting, Some(why)),
            Err(Blocked::Failed(why)) => (State::Blocked, Some(why)),
            Ok(()) => (State::Due, None),
        }
    } else {
        (State::Idle, None)
    };
    let next_run_in_seconds = t.slot.due().filter(|_| !suspended).map(|due| {
        let left = due.saturating_duration_since(now).as_secs_f64() - now.saturating_duration_since(due).as_secs_f64();
        (left * 10.0).round() / 10.0
    });
    PipelineStatus {
        name: pipeline.name.clone(),
        tenant: pipeline.tenant.as_ref().map(|t| t.name.clone()),
        source: pipeline.source.clone(),
        state,
        reason,
        suspended,
        depends_on: pipeline.depends_on.clone(),
        wait_for: t.gate.iter().flat_map(|(deps, _)| deps.iter().map(ToString::to_string)).collect(),
        interval_seconds: pipeline.interval.0.as_secs(),
        next_run_in_seconds,
        queued: t.slot.queued(),
        runs: t.slot.runs(),
        failures_in_a_row: t.slot.failures_in_a_row(),
        last_run: t.slot.last().cloned(),
        history: t.slot.history().spans(),
        last_success: t.slot.history().last_success().map(|r| r.finished.clone()),
        webhook: pipeline.webhook_secret.is_some(),
        plugins: steps_status(prepared, pipeline),
        notify_error: t.notify_error.clone(),
    }
}

/// Every plugin step of a pipeline with what it was granted (B-6).
fn steps_status(prepared: &Prepared, pipeline: &PipelineSpec) -> Vec<StepStatus> {
    let mut steps = Vec::new();
    for (chain, step) in pipeline.chains() {
        let name = step.uses.as_str();
        let loaded = prepared.plugin(name);
        let mut capabilities = loaded.as_ref().map(|p| p.info.capabilities.clone()).unwrap_or_default();
        if !step.secrets.is_empty() {
            let keys: Vec<&str> = step.secrets.keys().map(String::as_str).collect();
            capabilities.push(format!("secrets: {}", keys.join(", ")));
        }
        for (kind, name) in step.vars_from.iter().filter_map(|f| f.object()) {
            capabilities.push(format!("vars from {kind} {name}"));
        }
        steps.push(StepStatus {
            chain,
            plugin: name.into(),
            version: loaded.as_ref().ok().map(|p| p.info.version.clone()),
            flavor: loaded.as_ref().ok().map(|p| p.info.flavor),
            capabilities,
            allow_hosts: step.allow_hosts.clone(),
            error: loaded.err(),
        });
    }
    steps
}

/// An RFC 3339 time, to the second.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
