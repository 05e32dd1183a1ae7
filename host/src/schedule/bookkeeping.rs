//! After a run: the metrics it counts, its record in the slot, and the next run.

use std::time::{Duration, Instant, SystemTime};

use super::record::{Finished, RunRecord};
use super::slot::{self, Timing};
use super::{Controller, Seen, Trigger, notify};
use crate::apply::Action;
use crate::config::PipelineSpec;
use crate::metrics::{ActionLabels, FileLabels, Metrics, PipelineLabels, RunLabels, StateLabels};
use crate::reconcile::StageError;

impl Finished<'_> {
    /// Counts the run in the metrics: its duration, objects by action, applies per file,
    /// the pipeline's objects by state, and `deployed_after` (new revision seen to applied).
    pub fn count(&self, metrics: &Metrics, record: &RunRecord, deployed_after: Option<Duration>) {
        let report = self.report;
        let name = report.pipeline.as_str();
        let result = if report.ok() { "success" } else { "failure" };
        metrics
            .run_duration
            .get_or_create(&RunLabels { pipeline: PipelineLabels::of(name), result: result.into() })
            .observe(self.took.as_secs_f64());
        let file_applies = |file: &str, result: &str, n: usize| {
            metrics
                .file_applies
                .get_or_create(&FileLabels {
                    pipeline: PipelineLabels::of(name),
                    file: file.into(),
                    result: result.into(),
                })
                .inc_by(n as u64);
        };
        let cluster = &report.cluster;
        for action in [Action::Created, Action::Configured, Action::Unchanged, Action::Recreated, Action::Pruned] {
            metrics
                .objects
                .get_or_create(&ActionLabels { pipeline: PipelineLabels::of(name), action: action.as_str().into() })
                .inc_by(cluster.count(action) as u64);
        }
        metrics
            .objects
            .get_or_create(&ActionLabels { pipeline: PipelineLabels::of(name), action: "ignored".into() })
            .inc_by(cluster.count(Action::Skipped) as u64);
        for (file, n) in cluster.files() {
            file_applies(file, "success", n.changed + n.unchanged);
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
                .get_or_create(&StateLabels { pipeline: PipelineLabels::of(name), state: state.into() })
                .set(n as i64);
        }
        if let Some(waited) = deployed_after {
            metrics.time_to_deploy.get_or_create(&PipelineLabels::of(name)).observe(waited.as_secs_f64());
        }
    }
}

impl Controller {
    /// Records a finished run and schedules the next; returns what to notify about.
    pub(super) fn finish(
        &self,
        pipeline: &PipelineSpec,
        run: &Finished<'_>,
        told_start: bool,
    ) -> Option<notify::Outcome> {
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
        tracked.run = None;
        let record = RunRecord::of(run, tracked.slot.last());
        // Time to deploy: from a new revision first seen to its first successful apply.
        let deployed = tracked.slot.history().last_success().map(|r| r.revision.as_str());
        let deployed_after = match &seen {
            Some(seen) if report.ok() && seen.revision == report.revision && deployed != Some(&report.revision) => {
                Some(SystemTime::now().duration_since(seen.at).unwrap_or_default())
            }
            _ => None,
        };
        run.count(&self.metrics, &record, deployed_after);
        // What the run was for: the revision it rendered, else (it failed before knowing
        // one) the newest one known for its source, which a commit status belongs on.
        let attempted = match (report.revision.as_str(), &seen) {
            ("", Some(seen)) => seen.revision.clone(),
            ("", None) => record.revision.clone(),
            (rendered, _) => rendered.to_owned(),
        };
        let interval = pipeline.interval.0;
        let timing = Timing { interval, jitter: slot::jitter(interval, name), retry: pipeline.retry_interval.0 };
        let finish = tracked.slot.finish(Instant::now(), record, timing);
        let (record, news) = (finish.record, notify::News { recovered: finish.recovered, told_start });
        let outcome = notify::Outcome::of(pipeline, run.trigger, record, &attempted, report, news);
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
