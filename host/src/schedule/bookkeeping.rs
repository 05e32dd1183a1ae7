//! After a run: the record the status shows, the metrics it counts, and the next run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::slot::{self, LastOutcome, Timing, Trigger};
use super::status::{self, Counts, FileResult, RunRecord};
use super::{Controller, HISTORY, Seen, notify};
use crate::config::{Config, PipelineSpec, SpannedStr};
use crate::http::metrics::{ActionLabels, FileLabels, Metrics, PipelineLabels, RunLabels, StateLabels};
use crate::reconcile::{Delivery, PipelineResult, StageError};

/// One finished run, as the status shows it.
pub struct Run<'a> {
    pub config: &'a Config,
    pub pipeline: &'a str,
    pub trigger: Trigger,
    pub started: SystemTime,
    pub took: Duration,
    pub result: &'a Result<Delivery, StageError>,
    /// Its start was told to the notifiers that hear of starts.
    pub told_start: bool,
}

impl Run<'_> {
    /// The record of the run. A failed run keeps the revision of the one before (`previous`).
    pub fn record(&self, previous: Option<&RunRecord>) -> RunRecord {
        let (revision, ok, healthy) = match self.result {
            Ok(d) => (d.report.revision.clone(), true, d.report.healthy),
            Err(_) => (previous.map(|r| r.revision.clone()).unwrap_or_default(), false, false),
        };
        let mut record = RunRecord {
            trigger: self.trigger,
            started: status::rfc3339(self.started),
            finished: status::rfc3339(SystemTime::now()),
            latency_seconds: self.took.as_secs_f64(),
            revision_url: revision_url(self.config, self.pipeline, &revision),
            revision,
            ok,
            healthy,
            stage: None,
            error: None,
            counts: Counts::default(),
            diagnostics: Vec::new(),
            files: Vec::new(),
            ignored: Vec::new(),
        };
        match self.result {
            Ok(d) => {
                let report = &d.report;
                record.counts = Counts::of(report, true);
                record.diagnostics = status::diagnostics(&d.findings);
                record.files = files(report)
                    .into_iter()
                    .map(|(file, objects)| FileResult { file: file.into(), objects, result: "applied" })
                    .collect();
                record.ignored = report.skipped.iter().map(|(o, why)| format!("{o}: {why}")).collect();
            }
            Err(e) => {
                record.stage = Some(e.stage());
                record.error = PipelineResult::failed(self.pipeline, e).error;
                record.diagnostics = status::diagnostics(e.findings());
            }
        }
        record
    }

    /// What the scheduler keeps of the run.
    pub fn outcome(&self) -> LastOutcome {
        match self.result {
            Ok(d) => {
                LastOutcome { ok: true, healthy: d.report.healthy, revision: d.report.revision.clone(), reason: None }
            }
            Err(e) => LastOutcome { ok: false, healthy: false, revision: String::new(), reason: Some(e.to_string()) },
        }
    }

    /// Counts the run in the metrics: its duration, objects by action, applies per file,
    /// the pipeline's objects by state, and `deployed_after` (new revision seen to applied).
    pub fn count(&self, metrics: &Metrics, record: &RunRecord, deployed_after: Option<Duration>) {
        let name = self.pipeline;
        let result = if self.result.is_ok() { "success" } else { "failure" };
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
        match self.result {
            Ok(d) => {
                let report = &d.report;
                for (action, n) in [
                    ("created", report.created.len()),
                    ("configured", report.configured.len()),
                    ("unchanged", report.unchanged.len()),
                    ("recreated", report.recreated.len()),
                    ("pruned", report.pruned.len()),
                    ("ignored", report.skipped.len()),
                ] {
                    metrics
                        .objects
                        .get_or_create(&ActionLabels { pipeline: name.into(), action: action.into() })
                        .inc_by(n as u64);
                }
                for (file, n) in files(report) {
                    file_applies(file, "success", n);
                }
            }
            Err(StageError::Apply(failed)) => {
                if let crate::apply::ApplyError::Apply { origin, .. } = &failed.error {
                    file_applies(origin.rsplit_once(':').map_or(origin.as_str(), |(f, _)| f), "failure", 1);
                }
            }
            Err(_) => {}
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

/// Objects applied per source file.
fn files(report: &crate::apply::Report) -> BTreeMap<&str, usize> {
    let mut files: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, _) in &report.files {
        *files.entry(file.as_str()).or_default() += 1;
    }
    files
}

/// The link to a revision, from `[moor] diff_url`.
pub fn revision_url(config: &Config, pipeline: &str, revision: &str) -> Option<String> {
    let format = config.settings.diff_url.as_ref()?;
    (!revision.is_empty()).then(|| format.replace("{revision}", revision).replace("{pipeline}", pipeline))
}

impl Controller {
    /// Records a finished run and schedules the next; returns what to notify about.
    pub(super) fn finish(&self, pipeline: &PipelineSpec, run: &Run<'_>) -> Option<notify::Outcome> {
        let name = run.pipeline;
        let source = pipeline.source.s();
        let mut st = self.lock();
        // A new revision found by this run is news for the other pipelines of the source.
        let mut revision_news = false;
        if let Ok(d) = run.result
            && st.sources.get(source).is_none_or(|seen| seen.revision != d.report.revision)
        {
            let seen = Seen { revision: d.report.revision.clone(), at: run.started };
            revision_news = st.sources.insert(source.to_owned(), seen).is_some();
        }
        let seen = st.sources.get(source).cloned();
        let tracked = st.pipelines.get_mut(name)?;
        tracked.abort = None;
        let record = run.record(tracked.last_run.as_ref());
        // Time to deploy: from a new revision first seen to its first successful apply.
        let deployed_after = match (run.result, &seen) {
            (Ok(d), Some(seen))
                if seen.revision == d.report.revision && tracked.deployed.as_deref() != Some(&d.report.revision) =>
            {
                Some(SystemTime::now().duration_since(seen.at).unwrap_or_default())
            }
            _ => None,
        };
        if let Ok(d) = run.result {
            tracked.deployed = Some(d.report.revision.clone());
            tracked.last_success = Some(record.finished.clone());
        }
        run.count(&self.metrics, &record, deployed_after);
        let interval = pipeline.interval.0;
        let timing = Timing { interval, jitter: slot::jitter(interval, name), retry: pipeline.retry_interval.0 };
        let (_, recovered) = tracked.slot.finish(Instant::now(), run.outcome(), timing);
        // What the run was for: the revision it applied, else (it failed, perhaps before
        // saying) the newest one known for its source, which a commit status belongs on.
        let attempted = match (run.result, &seen) {
            (Ok(d), _) => d.report.revision.clone(),
            (Err(_), Some(seen)) => seen.revision.clone(),
            (Err(_), None) => record.revision.clone(),
        };
        let news = notify::News { recovered, told_start: run.told_start };
        let outcome = notify::Outcome::of(pipeline, run.trigger, &record, &attempted, run.result, news);
        if tracked.history.len() == HISTORY {
            tracked.history.pop_front();
        }
        tracked.history.push_back(status::RunSpan {
            started: status::rfc3339_millis(run.started),
            finished: status::rfc3339_millis(SystemTime::now()),
            ok: run.result.is_ok(),
        });
        tracked.last_run = Some(record);
        let config = st.prepared.config.clone();
        drop(st);
        if revision_news {
            for other in config.pipelines.iter().filter(|p| p.source.s() == source && p.name.s() != name) {
                let _ = self.trigger(other.name.s(), Trigger::Revision);
            }
        }
        outcome
    }
}
