//! One run of one pipeline, the same for every entry point: `moor build`, `plan`, `apply`,
//! `diff` and the controller. [`RunContext`] is what a run reads once before it starts
//! (its secrets, where its objects go, what its renderers are told); [`Moor::run`] goes
//! down the picture in ARCHITECTURE.md and always returns a [`RunReport`]: what each stage
//! did, partial when one failed, and the failure with its stage.

use futures::future::BoxFuture;
use serde::Serialize;

use super::{Finding, Moor, Prepared, StageError, blocking};
use crate::apply::clusters::Place;
use crate::apply::diff::ObjectDiff;
use crate::apply::{self, Progress, RunOptions, Target};
use crate::config::PipelineSpec;
use crate::interrupt::Interrupt;
use crate::object::Object;
use crate::plugins::RenderContext;
use crate::secrets::SecretValues;
use crate::stage::Stage;

/// What a run does once its objects are rendered and validated.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Nothing more: the objects are the result (`moor build`, a plan without a cluster).
    Render,
    /// Apply them (`moor apply`, the controller), or only dry-run them (`moor plan`).
    Apply(RunOptions),
    /// Compare them with the cluster (`moor diff`).
    Diff,
}

/// What one run reads before it starts, once: the pipeline's secrets, where its objects go
/// and what its renderers are told. Without a cluster (`moor build`, an offline plan) only
/// environment variables are read and there is no place.
pub struct RunContext<'r> {
    pub prepared: &'r Prepared,
    pub pipeline: &'r PipelineSpec,
    pub secrets: SecretValues,
    /// The cluster its objects are in (`pipeline.cluster`, else the one moor runs in).
    pub place: Option<Place<'r>>,
    pub render: RenderContext,
    /// Stops the fetch and the plugin calls of this run.
    pub interrupt: Interrupt,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext").field("pipeline", &self.pipeline.name).finish_non_exhaustive()
    }
}

impl<'r> RunContext<'r> {
    /// Reads the pipeline's secrets, places it (connecting a `[[cluster]]` when needed) and
    /// asks its cluster what it serves when a renderer is told so. Failures are of stage
    /// `prepare`: nothing of the pipeline has been read yet.
    pub async fn new(
        prepared: &'r Prepared,
        pipeline: &'r PipelineSpec,
        target: Option<&'r Target>,
        interrupt: Interrupt,
    ) -> Result<RunContext<'r>, RunFailure> {
        let config = &prepared.config;
        let client = target.map(|t| &t.client);
        let secrets = SecretValues::for_pipeline(client, config, pipeline)
            .await
            .map_err(|e| RunFailure::at(Stage::Prepare)(StageError::Secrets { at: String::new(), source: e }))?;
        let place = match target {
            Some(target) => {
                let cluster = pipeline.cluster.as_deref();
                Some(target.place(config, cluster).await.map_err(|e| RunFailure::from(apply::at(Stage::Prepare)(e)))?)
            }
            None => None,
        };
        let namespace =
            pipeline.target_namespace.clone().or_else(|| place.as_ref().map(|p| p.default_namespace.clone()));
        let mut render = RenderContext {
            pipeline: pipeline.name.clone(),
            namespace: namespace.unwrap_or_else(|| "default".into()),
            cluster: None,
        };
        let told = pipeline.render.iter().any(|step| prepared.plugin(&step.uses).is_ok_and(|p| p.sees_context()));
        if let Some(place) = place.as_ref().filter(|_| told) {
            render.cluster =
                Some(place.cluster().await.map_err(|e| RunFailure::at(Stage::Prepare)(StageError::Cluster(e)))?);
        }
        Ok(RunContext { prepared, pipeline, secrets, place, render, interrupt })
    }
}

/// Told once the revision is known, before the cluster half starts, with the revision the
/// pipeline's inventory was last written for (the controller tells the notifiers of the
/// `status-notifier` world that a run starts).
pub trait OnStart: Sync {
    fn started<'c>(&'c self, ctx: &'c RunContext<'c>, revision: &'c str, applied: &'c str) -> BoxFuture<'c, ()>;
}

/// A failure and the stage it happened in, set where it happened. Shown as
/// `stage: message`; status keeps the two apart.
#[derive(Debug)]
pub struct RunFailure {
    pub stage: Stage,
    /// Boxed: a run's result is mostly `Ok`, and passed around by value.
    pub error: Box<StageError>,
}

impl RunFailure {
    /// Tags errors with the stage they happen in: `.map_err(RunFailure::at(Stage::Source))`.
    pub fn at<E: Into<StageError>>(stage: Stage) -> impl Fn(E) -> RunFailure {
        move |e| RunFailure { stage, error: Box::new(e.into()) }
    }

    /// This failure, its message with `revealed` plaintext hidden when it quotes any (an
    /// apiserver error echoing a value a decrypting step revealed).
    pub fn hiding(self, revealed: &[String]) -> RunFailure {
        let message = self.error.to_string();
        let hidden = crate::secrets::redact(&message, revealed);
        if hidden == message {
            self
        } else {
            RunFailure { stage: self.stage, error: Box::new(StageError::Hidden { message: hidden }) }
        }
    }
}

impl From<apply::Failed> for RunFailure {
    fn from(failed: apply::Failed) -> RunFailure {
        RunFailure { stage: failed.stage, error: Box::new(StageError::Apply(failed)) }
    }
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.stage, self.error)
    }
}

/// What one run did: always returned, also when a stage failed.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub pipeline: String,
    /// The revision fetched; empty when the run failed before it knew one.
    pub revision: String,
    /// Warnings and infos from validators.
    pub findings: Vec<Finding>,
    /// What the cluster half did (partial when it failed; empty when it did not start).
    pub cluster: apply::Report,
    /// The rendered objects, in [`Mode::Render`].
    #[serde(skip)]
    pub objects: Vec<Object>,
    /// What would change, in [`Mode::Diff`].
    #[serde(skip)]
    pub diffs: Vec<ObjectDiff>,
    #[serde(skip)]
    pub outcome: Result<(), RunFailure>,
}

impl RunReport {
    fn new(pipeline: &str) -> RunReport {
        RunReport {
            pipeline: pipeline.into(),
            revision: String::new(),
            findings: Vec::new(),
            cluster: apply::Report::default(),
            objects: Vec::new(),
            diffs: Vec::new(),
            outcome: Ok(()),
        }
    }

    /// The report of a run that failed before it started (its context could not be built).
    pub fn failed(pipeline: &str, failure: RunFailure) -> RunReport {
        RunReport { outcome: Err(failure), ..RunReport::new(pipeline) }
    }

    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }

    pub fn error(&self) -> Option<&RunFailure> {
        self.outcome.as_ref().err()
    }

    pub fn stage(&self) -> Option<Stage> {
        self.outcome.as_ref().err().map(|f| f.stage)
    }
}

impl Moor {
    /// One run of `pipeline` from start to end for the one-shot commands: its context, then
    /// [`Moor::run`]. Without a target, nothing is read from a cluster.
    pub async fn reconcile(
        &self,
        prepared: &Prepared,
        pipeline: &PipelineSpec,
        target: Option<&Target>,
        mode: Mode,
        progress: Progress<'_>,
    ) -> RunReport {
        match RunContext::new(prepared, pipeline, target, Interrupt::new()).await {
            Ok(ctx) => self.run(&ctx, mode, None, progress).await,
            Err(e) => RunReport::failed(&pipeline.name, e),
        }
    }

    /// One run of `ctx.pipeline`, stage by stage, as in ARCHITECTURE.md's picture.
    pub async fn run(
        &self,
        ctx: &RunContext<'_>,
        mode: Mode,
        on_start: Option<&dyn OnStart>,
        progress: Progress<'_>,
    ) -> RunReport {
        let mut report = RunReport::new(&ctx.pipeline.name);
        // source → snapshot → render chain → objects → validate chain
        let rendered = match blocking(|| self.render(ctx, &mut report.revision)) {
            Ok(rendered) => rendered,
            Err(failure) => return RunReport { outcome: Err(failure), ..report },
        };
        report.findings = rendered.findings;
        // `Some`: apply with these options; `None`: diff.
        let (place, applying) = match (&ctx.place, mode) {
            (Some(place), Mode::Apply(options)) => (place, Some(options)),
            (Some(place), Mode::Diff) => (place, None),
            (None, _) | (_, Mode::Render) => {
                report.objects = rendered.objects;
                return report;
            }
        };
        // plan → apply → prune → health → record, in the pipeline's own cluster, from
        // the inventory read once
        let hidden = |failed: apply::Failed| RunFailure::from(failed).hiding(&rendered.revealed);
        let settings = &ctx.prepared.config.settings;
        let old = match place.inventories(settings).load(&ctx.pipeline.label).await {
            Ok(old) => old,
            Err(e) => return RunReport { outcome: Err(hidden(apply::at(Stage::Plan)(e))), ..report },
        };
        if let Some(on_start) = on_start {
            on_start.started(ctx, &report.revision, &old.revision).await;
        }
        match applying {
            Some(options) => {
                let input =
                    apply::Input { pipeline: ctx.pipeline, revision: &report.revision, objects: rendered.objects, old };
                let (cluster, outcome) = apply::apply(place, settings, input, options, &ctx.interrupt, progress).await;
                report.cluster = cluster;
                report.outcome = outcome.map_err(hidden);
            }
            None => match apply::diff::diff(place, settings, ctx.pipeline, rendered.objects, &old, progress).await {
                Ok(diffs) => report.diffs = diffs,
                Err(e) => report.outcome = Err(hidden(apply::at(Stage::Plan)(e))),
            },
        }
        report
    }
}
