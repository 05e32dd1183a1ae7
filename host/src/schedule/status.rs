//! What the status page and the JSON API show: one document, built from the controller's
//! state. Nothing in it carries secret data.

use serde::Serialize;

use super::slot::Trigger;
use crate::apply::Report;
use crate::reconcile::Finding;
use crate::stage::Stage;

/// The whole instance.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub instance: String,
    pub identity: String,
    pub leader: bool,
    pub ready: bool,
    pub config_file: String,
    /// Why the config file on disk was rejected; the previous config keeps running.
    pub config_error: Option<String>,
    pub config_loaded: String,
    pub started: String,
    pub pipelines: Vec<PipelineStatus>,
}

/// One pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    pub name: String,
    pub source: String,
    pub state: State,
    /// Why it is waiting, blocked or stopped.
    pub reason: Option<String>,
    pub suspended: bool,
    pub depends_on: Vec<String>,
    pub interval_seconds: u64,
    /// Seconds until the next scheduled run (negative when overdue).
    pub next_run_in_seconds: Option<f64>,
    /// The trigger of the one run queued behind the current one.
    pub queued: Option<Trigger>,
    /// Runs since the controller started, and failures in a row.
    pub runs: u64,
    pub failures_in_a_row: u32,
    pub last_run: Option<RunRecord>,
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
        }
    }
}

/// One finished run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub trigger: Trigger,
    pub started: String,
    pub finished: String,
    pub latency_seconds: f64,
    pub revision: String,
    /// The revision as a link, built from `[moor] diff_url` (KA-5).
    pub revision_url: Option<String>,
    pub ok: bool,
    pub healthy: bool,
    pub stage: Option<Stage>,
    pub error: Option<String>,
    pub counts: Counts,
    /// Validator warnings and errors, with `file:line`.
    pub diagnostics: Vec<String>,
    /// Objects per source file and the result (KA-5: files applied).
    pub files: Vec<FileResult>,
    /// Objects left alone, and why (KA-5: ignored files).
    pub ignored: Vec<String>,
}

/// Object counts of a run (FA-9).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub discovered: usize,
    pub applied: usize,
    pub unchanged: usize,
    pub pruned: usize,
    pub ignored: usize,
    pub in_sync: usize,
}

impl Counts {
    pub fn of(report: &Report, ok: bool) -> Counts {
        let applied = report.created.len() + report.configured.len() + report.recreated.len();
        let unchanged = report.unchanged.len();
        Counts {
            discovered: applied + unchanged + report.skipped.len(),
            applied,
            unchanged,
            pruned: report.pruned.len(),
            ignored: report.skipped.len(),
            in_sync: if ok { applied + unchanged } else { unchanged },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    pub file: String,
    pub objects: usize,
    pub result: &'static str,
}

/// A plugin step and what it was granted (B-6).
#[derive(Debug, Clone, Serialize)]
pub struct StepStatus {
    pub chain: &'static str,
    pub plugin: String,
    pub version: Option<String>,
    pub capabilities: Vec<String>,
    pub allow_hosts: Vec<String>,
    /// The plugin could not be loaded.
    pub error: Option<String>,
}

/// Findings as `file:line: severity: message` lines.
pub fn diagnostics(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(ToString::to_string).collect()
}

/// An RFC 3339 time, to the second.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
