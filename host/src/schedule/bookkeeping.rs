//! After a run: the record the status shows, the metrics it counts, and the next run.

use std::time::{Duration, Instant, SystemTime};

use super::slot::{self, LastOutcome, Timing, Trigger};
use super::status::{self, Counts, FileResult, RunRecord};
use super::{Controller, HISTORY, Seen, notify};
use crate::apply::Action;
use crate::config::{Config, PipelineSpec};
use crate::metrics::{ActionLabels, FileLabels, Metrics, PipelineLabels, RunLabels, StateLabels};
use crate::reconcile::{RunReport, StageError};

/// One finished run, as the status shows it.
pub struct Run<'a> {
    pub config: &'a Config,
    pub trigger: Trigger,
    pub started: SystemTime,
    pub took: Duration,
    pub report: &'a RunReport,
    /// Its start was told to the notifiers that hear of starts.
    pub told_start: bool,
}

impl Run<'_> {
    /// The record of the run. A run that failed before it knew its revision keeps the one
    /// before (`previous`).
    pub fn record(&self, previous: Option<&RunRecord>) -> RunRecord {
        let report = self.report;
        let revision = match report.revision.as_str() {
            "" => previous.map(|r| r.revision.clone()).unwrap_or_default(),
            known => known.to_owned(),
        };
        let cluster = &report.cluster;
        let failed = report.outcome.as_ref().err();
        let mut diagnostics = status::diagnostics(&report.findings);
        diagnostics.extend(failed.map(|f| status::diagnostics(f.error.findings())).unwrap_or_default());
        RunRecord {
            trigger: self.trigger,
            started: status::rfc3339(self.started),
            finished: status::rfc3339(SystemTime::now()),
            latency_seconds: self.took.as_secs_f64(),
            revision_url: revision_url(self.config, &report.pipeline, &revision),
            revision,
            ok: report.ok(),
            health: cluster.health.clone(),
            stage: report.stage(),
            error: failed.map(|f| crate::reconcile::explained(&f.error)),
            counts: Counts::of(cluster, report.ok()),
            diagnostics,
            files: cluster
                .files()
                .into_iter()
                .map(|(file, objects)| FileResult { file: file.into(), objects, result: "applied" })
                .collect(),
            ignored: cluster
                .objects
                .iter()
                .filter(|o| o.action == Action::Skipped)
                .map(|o| format!("{}: {}", o.key, o.why.as_deref().unwrap_or_default()))
                .collect(),
        }
    }

    /// What the scheduler keeps of the run.
    pub fn outcome(&self) -> LastOutcome {
        let report = self.report;
        LastOutcome {
            ok: report.ok(),
            health: report.cluster.health.clone(),
            revision: report.revision.clone(),
            reason: report.error().map(ToString::to_string),
        }
    }

    /// Counts the run in the metrics: its duration, objects by action, applies per file,
    /// the pipeline's objects by state, and `deployed_after` (new revision seen to applied).
    pub fn count(&self, metrics: &Metrics, record: &RunRecord, deployed_after: Option<Duration>) {
        let report = self.report;
        let name = report.pipeline.as_str();
        let result = if report.ok() { "success" } else { "failure" };
        metrics
            .run_duration
            .get_or_create(&RunLabels { pipeline: name.into(), result: result.into() })
            .observe(self.took.as_secs_f64());
        let file_applies = |file: &str, result: &str, n: usize| {
            metrics
                .file_applies
                .get_or_create(&FileLabels { pipeline: name.into(), file: file.into(), result: result.into() })
                .inc_by(n as u64);
        };
        let cluster = &report.cluster;
        for action in [Action::Created, Action::Configured, Action::Unchanged, Action::Recreated, Action::Pruned] {
            metrics
                .objects
                .get_or_create(&ActionLabels { pipeline: name.into(), action: action.as_str().into() })
                .inc_by(cluster.count(action) as u64);
        }
        metrics
            .objects
            .get_or_create(&ActionLabels { pipeline: name.into(), action: "ignored".into() })
            .inc_by(cluster.count(Action::Skipped) as u64);
        for (file, n) in cluster.files() {
            file_applies(file, "success", n);
        }
        if let Some(StageError::Apply(failed)) = report.error().map(|f| &*f.error)
            && let crate::apply::ApplyError::Apply { origin, .. } = &failed.error
        {
            file_applies(origin.rsplit_once(':').map_or(origin.as_str(), |(f, _)| f), "failure", 1);
        }
        let c = &record.counts;
        for (state, n) in [
            ("discovered", c.discovered),
            ("applied", c.applied),
            ("unchanged", c.unchanged),
            ("pruned", c.pruned),
            ("ignored", c.ignored),
            ("in_sync", c.in_sync),
        ] {
            metrics
                .pipeline_objects
                .get_or_create(&StateLabels { pipeline: name.into(), state: state.into() })
                .set(n as i64);
        }
        if let Some(waited) = deployed_after {
            metrics
                .time_to_deploy
                .get_or_create(&PipelineLabels { pipeline: name.into() })
                .observe(waited.as_secs_f64());
        }
    }
}

/// The link to a revision, from `[moor] diff_url`.
pub fn revision_url(config: &Config, pipeline: &str, revision: &str) -> Option<String> {
    let format = config.settings.diff_url.as_ref()?;
    (!revision.is_empty()).then(|| format.replace("{revision}", revision).replace("{pipeline}", pipeline))
}

impl Controller {
    /// Records a finished run and schedules the next; returns what to notify about.
    pub(super) fn finish(&self, pipeline: &PipelineSpec, run: &Run<'_>) -> Option<notify::Outcome> {
        let report = run.report;
        let name = report.pipeline.as_str();
        let source = pipeline.source.as_str();
        let mut st = self.lock();
        // A new revision found by this run is news for the other pipelines of the source.
        let mut revision_news = false;
        if !report.revision.is_empty() && st.sources.get(source).is_none_or(|seen| seen.revision != report.revision) {
            let seen = Seen { revision: report.revision.clone(), at: run.started };
            revision_news = st.sources.insert(source.to_owned(), seen).is_some();
        }
        let seen = st.sources.get(source).cloned();
        let tracked = st.pipelines.get_mut(name)?;
        tracked.abort = None;
        let record = run.record(tracked.last_run.as_ref());
        // Time to deploy: from a new revision first seen to its first successful apply.
        let deployed_after = match &seen {
            Some(seen)
                if report.ok()
                    && seen.revision == report.revision
                    && tracked.deployed.as_deref() != Some(&report.revision) =>
            {
                Some(SystemTime::now().duration_since(seen.at).unwrap_or_default())
            }
            _ => None,
        };
        if report.ok() {
            tracked.deployed = Some(report.revision.clone());
            tracked.last_success = Some(record.finished.clone());
        }
        run.count(&self.metrics, &record, deployed_after);
        let interval = pipeline.interval.0;
        let timing = Timing { interval, jitter: slot::jitter(interval, name), retry: pipeline.retry_interval.0 };
        let (_, recovered) = tracked.slot.finish(Instant::now(), run.outcome(), timing);
        // What the run was for: the revision it rendered, else (it failed before knowing
        // one) the newest one known for its source, which a commit status belongs on.
        let attempted = match (report.revision.as_str(), &seen) {
            ("", Some(seen)) => seen.revision.clone(),
            ("", None) => record.revision.clone(),
            (rendered, _) => rendered.to_owned(),
        };
        let news = notify::News { recovered, told_start: run.told_start };
        let outcome = notify::Outcome::of(pipeline, run.trigger, &record, &attempted, report, news);
        if tracked.history.len() == HISTORY {
            tracked.history.pop_front();
        }
        tracked.history.push_back(status::RunSpan {
            started: status::rfc3339_millis(run.started),
            finished: status::rfc3339_millis(SystemTime::now()),
            ok: report.ok(),
        });
        tracked.last_run = Some(record);
        let config = st.prepared.config.clone();
        drop(st);
        if revision_news {
            for other in config.pipelines.iter().filter(|p| p.source == source && p.name != name) {
                let _ = self.trigger(&other.name, Trigger::Revision);
            }
        }
        outcome
    }
}
