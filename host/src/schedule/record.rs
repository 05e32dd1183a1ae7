//! The record of a finished run, built once from its [`RunReport`], and the history of a
//! pipeline's runs. The slot keeps the history; the gate, the status, the notifications
//! and the time to deploy all read it, and nothing else stores a run's outcome.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::apply::{Action, Health, Report};
use crate::config::Config;
use crate::reconcile::RunReport;
use crate::stage::Stage;

/// Runs a pipeline's history keeps.
pub const HISTORY: usize = 10;

/// Why a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
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

/// One finished run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub trigger: Trigger,
    /// RFC 3339, to the millisecond.
    pub started: String,
    pub finished: String,
    pub latency_seconds: f64,
    /// The revision rendered; a run that failed before it knew one keeps the one before.
    pub revision: String,
    /// The revision as a link, built from `[moor] diff_url` (KA-5).
    pub revision_url: Option<String>,
    pub ok: bool,
    /// Whether its objects became healthy: `not_checked` without `wait`.
    pub health: Health,
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

/// A finished run, as its record is made of it.
pub struct Finished<'a> {
    pub config: &'a Config,
    pub trigger: Trigger,
    pub started: SystemTime,
    pub took: Duration,
    pub report: &'a RunReport,
}

impl RunRecord {
    /// The record of `run`. A run that failed before it knew its revision keeps the one of
    /// the run before (`previous`).
    pub fn of(run: &Finished<'_>, previous: Option<&RunRecord>) -> RunRecord {
        let report = run.report;
        let revision = match report.revision.as_str() {
            "" => previous.map(|r| r.revision.clone()).unwrap_or_default(),
            known => known.to_owned(),
        };
        let cluster = &report.cluster;
        let failed = report.error();
        let diagnostics = report.findings.iter().chain(failed.map(|f| f.error.findings()).unwrap_or_default());
        RunRecord {
            trigger: run.trigger,
            started: rfc3339_millis(run.started),
            finished: rfc3339_millis(run.started + run.took),
            latency_seconds: run.took.as_secs_f64(),
            revision_url: revision_url(run.config, &report.pipeline, &revision),
            revision,
            ok: report.ok(),
            health: cluster.health.clone(),
            stage: report.stage(),
            error: failed.map(|f| crate::reconcile::explained(&f.error)),
            counts: Counts::of(cluster, report.ok()),
            diagnostics: diagnostics.map(ToString::to_string).collect(),
            files: cluster.files().into_iter().map(|(file, counts)| FileResult { file: file.into(), counts }).collect(),
            ignored: cluster
                .objects
                .iter()
                .filter(|o| o.action == Action::Skipped)
                .map(|o| format!("{}: {}", o.key, o.why.as_deref().unwrap_or_default()))
                .collect(),
        }
    }

    /// Why the run failed, in one line: `stage: message`.
    pub fn failure(&self) -> Option<String> {
        let error = self.error.as_deref()?.lines().next().unwrap_or_default();
        Some(match self.stage {
            Some(stage) => format!("{stage}: {error}"),
            None => error.to_owned(),
        })
    }

    /// When the run started and ended.
    pub fn span(&self) -> RunSpan {
        RunSpan { trigger: self.trigger, started: self.started.clone(), finished: self.finished.clone(), ok: self.ok }
    }
}

/// The last runs of a pipeline, newest last, and its last successful run (which may be
/// older than all of them). Each record is kept once.
#[derive(Debug, Default)]
pub struct History {
    recent: VecDeque<Arc<RunRecord>>,
    last_success: Option<Arc<RunRecord>>,
}

impl History {
    /// Keeps `record` as the newest run; returns it.
    pub fn push(&mut self, record: RunRecord) -> &RunRecord {
        let record = Arc::new(record);
        if record.ok {
            self.last_success = Some(record.clone());
        }
        if self.recent.len() == HISTORY {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
        &self.recent[self.recent.len() - 1]
    }

    pub fn last(&self) -> Option<&RunRecord> {
        self.recent.back().map(Arc::as_ref)
    }

    pub fn last_success(&self) -> Option<&RunRecord> {
        self.last_success.as_deref()
    }

    /// The last runs' times, newest last.
    pub fn spans(&self) -> Vec<RunSpan> {
        self.recent.iter().map(|r| r.span()).collect()
    }
}

/// What started one run, when it started and finished (RFC 3339, to the millisecond).
#[derive(Debug, Clone, Serialize)]
pub struct RunSpan {
    pub trigger: Trigger,
    pub started: String,
    pub finished: String,
    pub ok: bool,
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
    /// The counts of what a run's cluster half did; a failed run's applied objects are not
    /// in sync.
    pub fn of(report: &Report, ok: bool) -> Counts {
        let applied =
            report.count(Action::Created) + report.count(Action::Configured) + report.count(Action::Recreated);
        let unchanged = report.count(Action::Unchanged);
        let ignored = report.count(Action::Skipped);
        Counts {
            discovered: applied + unchanged + ignored,
            applied,
            unchanged,
            pruned: report.count(Action::Pruned),
            ignored,
            in_sync: if ok { applied + unchanged } else { unchanged },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    pub file: String,
    #[serde(flatten)]
    pub counts: crate::apply::FileCounts,
}

/// The link to a revision, from `[moor] diff_url`.
pub fn revision_url(config: &Config, pipeline: &str, revision: &str) -> Option<String> {
    let format = config.settings.diff_url.as_ref()?;
    (!revision.is_empty()).then(|| format.replace("{revision}", revision).replace("{pipeline}", pipeline))
}

/// An RFC 3339 time, to the millisecond.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A record for the slot's and the gate's tests: only what they read is set.
#[cfg(test)]
pub fn test_record(ok: bool, revision: &str, health: Health, error: Option<&str>) -> RunRecord {
    RunRecord {
        trigger: Trigger::Startup,
        started: String::new(),
        finished: String::new(),
        latency_seconds: 0.0,
        revision: revision.into(),
        revision_url: None,
        ok,
        health,
        stage: error.map(|_| Stage::Apply),
        error: error.map(Into::into),
        counts: Counts::default(),
        diagnostics: Vec::new(),
        files: Vec::new(),
        ignored: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_last_runs_and_the_last_success_once() {
        let mut history = History::default();
        history.push(test_record(true, "r1", Health::Ready, None));
        for _ in 0..HISTORY {
            history.push(test_record(false, "r2", Health::NotChecked, Some("forbidden")));
        }
        assert_eq!(history.spans().len(), HISTORY);
        assert!(history.spans().iter().all(|s| !s.ok));
        assert_eq!(history.last().map(|r| r.revision.as_str()), Some("r2"));
        // Older than every run kept, and still known.
        assert_eq!(history.last_success().map(|r| r.revision.as_str()), Some("r1"));
        assert_eq!(history.last().and_then(RunRecord::failure).as_deref(), Some("apply: forbidden"));
        history.push(test_record(true, "r3", Health::Ready, None));
        assert!(Arc::ptr_eq(history.recent.back().unwrap(), history.last_success.as_ref().unwrap()));
    }
}
