//! A whole config, once (`moor apply`): every pipeline in `depends_on` order, then this
//! instance's pipelines that left the config removed behind `[moor] prune_guard`.

use std::sync::Arc;

use serde::Serialize;

use super::{Mode, Moor, PipelineResult};
use crate::apply::{self, Progress, RunOptions, Target};
use crate::config::Config;
use crate::stage::Stage;

/// What one run of a whole config did.
#[derive(Debug, Serialize)]
pub struct ConfigRun {
    /// One per pipeline run or removed.
    pub results: Vec<PipelineResult>,
    /// Things worth saying once: inventories of other instances left alone.
    pub notes: Vec<String>,
}

/// Waits for a pipeline's `wait_for` gates (KE-4), at most its `wait_for_timeout`.
async fn wait_for(
    pipeline: &crate::config::PipelineSpec,
    target: &Target,
    progress: Progress<'_>,
) -> Result<(), crate::wait::TimedOut> {
    let gates = &pipeline.gates;
    if gates.is_empty() {
        return Ok(());
    }
    progress(&format!("pipeline {}: waiting for its gates", pipeline.name));
    let gate = crate::wait::Gate::start(Some(&target.client), gates, &crate::wait::Viewpoint::Pipeline);
    gate.wait(Some(pipeline.wait_for_timeout.0), std::time::Duration::from_secs(10)).await
}

impl Moor {
    /// Reconciles every pipeline of `config` once (or only `only`), in `depends_on` order;
    /// a pipeline whose dependency failed is not run. Without `only`, this instance's
    /// pipelines that have an inventory in the cluster but left the config are removed (FA-10).
    pub async fn apply_config(
        &self,
        config: Arc<Config>,
        target: &Target,
        only: Option<&str>,
        run: RunOptions,
        progress: Progress<'_>,
    ) -> ConfigRun {
        let prepared = self.prepare(config.clone());
        let mut results = Vec::new();
        let mut failed = std::collections::HashSet::new();
        for pipeline in config.pipelines_in_order() {
            let name = pipeline.name.as_str();
            if only.is_some_and(|o| o != name) {
                continue;
            }
            if pipeline.suspend {
                results.push(PipelineResult {
                    pipeline: name.into(),
                    revision: String::new(),
                    ok: true,
                    stage: None,
                    error: Some("suspended".into()),
                    report: None,
                });
                continue;
            }
            if let Some(dep) = pipeline.depends_on.iter().find(|d| failed.contains(d.as_str())) {
                failed.insert(name);
                let error = format!("dependency `{dep}` did not become ready");
                results.push(PipelineResult {
                    pipeline: name.into(),
                    revision: String::new(),
                    ok: false,
                    stage: Some(Stage::Dependencies),
                    error: Some(error),
                    report: None,
                });
                continue;
            }
            if !run.dry_run
                && let Err(e) = wait_for(pipeline, target, progress).await
            {
                failed.insert(name);
                results.push(PipelineResult {
                    pipeline: name.into(),
                    revision: String::new(),
                    ok: false,
                    stage: Some(Stage::Dependencies),
                    error: Some(format!("wait_for: {e}")),
                    report: None,
                });
                continue;
            }
            progress(&format!("pipeline {name}"));
            let report = self.reconcile(&prepared, pipeline, Some(target), Mode::Apply(run), progress).await;
            if !report.ok() {
                failed.insert(name);
            }
            results.push(PipelineResult::of(report));
        }
        if only.is_some() || run.dry_run {
            return ConfigRun { results, notes: Vec::new() };
        }
        let (removed, notes) = self.remove_gone(&config, target, run, progress).await;
        results.extend(removed);
        ConfigRun { results, notes }
    }

    /// Removes this instance's pipelines that left `config` (FA-10), behind `[moor]
    /// prune_guard`. Inventories of other instances are left alone; the notes say so.
    pub async fn remove_gone(
        &self,
        config: &Config,
        target: &Target,
        run: RunOptions,
        progress: Progress<'_>,
    ) -> (Vec<PipelineResult>, Vec<String>) {
        let settings = &config.settings;
        let store = target.inventories(settings);
        let census = match apply::remove::Census::take(&store).await {
            Ok(census) => census,
            Err(e) => {
                let failed = apply::at(Stage::Prune)(e);
                return (vec![PipelineResult::failed("(removed pipelines)", &failed.into())], Vec::new());
            }
        };
        let notes: Vec<String> = census.others_note(&settings.namespace).into_iter().collect();
        // A held tenant's pipelines are as good as configured: its config did not load.
        let held = census.ours.keys().filter(|label| config.holds(label)).map(String::as_str);
        let configured: std::collections::HashSet<&str> =
            config.pipelines.iter().map(|p| p.label.as_str()).chain(held).collect();
        let removed =
            apply::remove::remove_gone(target, config, &census, &configured, run.allow_mass_prune, progress).await;
        let results = removed
            .into_iter()
            .map(|(gone, result)| {
                let name = format!("{gone} (removed from the config)");
                match result {
                    Ok(report) => PipelineResult::succeeded(&name, report),
                    Err(e) => PipelineResult::failed(&name, &apply::at(Stage::Prune)(e).into()),
                }
            })
            .collect();
        (results, notes)
    }
}
