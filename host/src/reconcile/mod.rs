//! The delivery pipeline, one stage per function, in the order of the picture in
//! ARCHITECTURE.md: source → snapshot → render chain → objects → validate chain → plan.
//!
//! This module holds the offline half (everything before the cluster). Each stage fails
//! with its own [`StageError`] variant naming the stage and the plugin, and a failure in
//! one pipeline never stops another.

mod config_run;
mod findings;
mod overlay;
mod platform;
mod revealed;
mod run;
mod stages;
mod step;
mod tenants;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub use config_run::ConfigRun;
pub use findings::{Finding, Level};
pub use platform::{FETCH_TIMEOUT, SourcedConfigError};
pub use run::{Mode, OnStart, RunContext, RunFailure, RunReport};
use serde::Serialize;
use stages::{render, validate};
pub use step::blocking;
use step::resolve_chain;
pub(crate) use step::{StepCall, resolve_step};
pub use tenants::{TenantRead, TenantState, Tenants, admit_tenants, check_tenant};

use crate::apply;
use crate::config::{Config, ConfigError, PluginOrigin, SourceSpec};
use crate::interrupt::Interrupt;
use crate::object::Object;
use crate::plugins::{self, CallError, Limits, Plugin, PluginSource, Renderer, Runtime, Validator};
use crate::secrets::SecretValues;
use crate::source::{Snapshot, SourceError, Sources};
use crate::stage::Stage;

/// Why a pipeline stopped, by stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A secret the run needs; `at` is the step (`pipeline[0].render[1].`), if a step's.
    #[error("{at}{source}")]
    Secrets { at: String, source: crate::secrets::SecretError },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    SourceCall(CallError),
    #[error("{0}")]
    Load(String),
    #[error(transparent)]
    RenderCall(CallError),
    #[error("reading the cluster's version and API versions for the renderers: {0}")]
    Cluster(#[source] kube::Error),
    #[error("plugin `{plugin}` failed with {} error(s)", findings.len())]
    Render { plugin: String, findings: Vec<Finding> },
    #[error("plugin `{plugin}` produced an object that is not valid: {message}")]
    Object { plugin: String, message: String },
    /// A renderer of the `tree-renderer` world whose rewrite of the tree cannot be used.
    #[error("plugin `{plugin}` cannot rewrite the tree: {message}")]
    Rewrite { plugin: String, message: String },
    /// Nothing SOPS-encrypted is applied (FX-3): the host's own check after the chain.
    #[error(
        "{object} ({origin}) is still SOPS-encrypted after the render chain: add a `sops` step after the \
         renderer that reads it, with the age key as a secret"
    )]
    Encrypted { object: String, origin: String },
    #[error(transparent)]
    ValidateCall(CallError),
    #[error("plugin `{plugin}` failed: {message}")]
    Validator { plugin: String, message: String },
    #[error("{} error(s) block the apply", findings.iter().filter(|f| f.is_error()).count())]
    Blocked { findings: Vec<Finding> },
    /// The cluster half, tagged with the stage where it failed; its messages name the
    /// object or resource, and say the stage in their own words where it helps.
    #[error(transparent)]
    Apply(#[from] apply::Failed),
    /// The run was stopped (its timeout, a lost lease or shard) before a stage began.
    #[error("stopped: {0}")]
    Stopped(String),
    /// A failure whose message quoted plaintext a decrypting step revealed (an apiserver
    /// error echoing a value): the message with it hidden, instead of the error itself.
    #[error("{message}")]
    Hidden { message: String },
}

impl StageError {
    /// Findings that explain the failure, if any.
    pub fn findings(&self) -> &[Finding] {
        match self {
            StageError::Render { findings, .. } | StageError::Blocked { findings } => findings,
            _ => &[],
        }
    }
}

/// What the offline stages produced for one pipeline.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Rendered {
    pub pipeline: String,
    pub revision: String,
    pub objects: Vec<Object>,
    /// Warnings and infos from validators (errors end up in [`StageError::Blocked`]).
    pub findings: Vec<Finding>,
    /// The plaintext a decrypting step revealed, hidden from every message after it.
    #[serde(skip)]
    pub revealed: Vec<String>,
}

/// How one pipeline fared in a run, as `moor apply` prints it.
#[derive(Debug, Serialize)]
pub struct PipelineResult {
    pub pipeline: String,
    /// The revision rendered; empty when none was.
    pub revision: String,
    pub ok: bool,
    /// The stage that failed.
    pub stage: Option<Stage>,
    /// What went wrong (or, with `ok`, why nothing was done: suspended).
    pub error: Option<String>,
    /// What the cluster half did, partial when it failed; none when it did not start.
    pub report: Option<apply::Report>,
}

impl PipelineResult {
    pub fn succeeded(name: &str, report: apply::Report) -> PipelineResult {
        let revision = String::new();
        PipelineResult { pipeline: name.into(), revision, ok: true, stage: None, error: None, report: Some(report) }
    }

    pub fn failed(name: &str, failure: &RunFailure) -> PipelineResult {
        PipelineResult {
            pipeline: name.into(),
            revision: String::new(),
            ok: false,
            stage: Some(failure.stage),
            error: Some(explained(&failure.error)),
            report: None,
        }
    }

    /// The result of one run.
    pub fn of(run: RunReport) -> PipelineResult {
        let (stage, error) = match &run.outcome {
            Ok(()) => (None, None),
            Err(f) => (Some(f.stage), Some(explained(&f.error))),
        };
        let started = !run.revision.is_empty();
        PipelineResult {
            pipeline: run.pipeline,
            revision: run.revision,
            ok: stage.is_none(),
            stage,
            error,
            report: started.then_some(run.cluster),
        }
    }
}

/// An error with the findings that explain it, one per line.
pub fn explained(e: &StageError) -> String {
    let mut error = e.to_string();
    for finding in e.findings() {
        error.push_str(&format!("\n  {finding}"));
    }
    error
}

/// The host: plugin runtime, sources and the cache they share.
pub struct Moor {
    runtime: Runtime,
    sources: Sources,
}

impl std::fmt::Debug for Moor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moor").finish_non_exhaustive()
    }
}

/// The plugins of one config, loaded; a plugin that failed to load fails only the
/// pipelines that use it.
pub struct Prepared {
    pub config: Arc<Config>,
    plugins: HashMap<String, Result<Plugin, String>>,
}

impl Prepared {
    /// One plugin, or why it did not load.
    pub fn plugin(&self, name: &str) -> Result<&Plugin, String> {
        match self.plugins.get(name) {
            Some(Ok(plugin)) => Ok(plugin),
            Some(Err(message)) => Err(message.clone()),
            None => Err(format!("plugin `{name}` was not loaded")),
        }
    }
}

impl Moor {
    pub fn new(cache_dir: &Path) -> Result<Moor, plugins::EngineError> {
        Ok(Moor { runtime: Runtime::new(cache_dir)?, sources: Sources::new(cache_dir) })
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Loads every plugin the config's pipelines use.
    pub fn prepare(&self, config: Arc<Config>) -> Prepared {
        let mut plugins = HashMap::new();
        let used = config
            .pipelines
            .iter()
            .flat_map(|p| p.chains().map(|(_, step)| step))
            .chain(config.sources.iter().filter_map(SourceSpec::plugin))
            .chain(config.tenants.iter().filter_map(|t| t.source.plugin()));
        for step in used {
            let name = step.uses.as_str();
            if plugins.contains_key(name) {
                continue;
            }
            plugins.insert(name.to_owned(), self.load_plugin(&config, name).map_err(|e| e.to_string()));
        }
        Prepared { config, plugins }
    }

    fn load_plugin(&self, config: &Config, name: &str) -> Result<Plugin, plugins::LoadError> {
        let spec = config.plugin(name);
        let defaults = Limits::default();
        let limits = Limits {
            timeout: spec.and_then(|s| s.timeout).map(|t| t.0).unwrap_or(defaults.timeout),
            memory: spec.and_then(|s| s.memory).map(|m| m.0.min(plugins::MAX_MEMORY)).unwrap_or(defaults.memory),
            output: spec.and_then(|s| s.max_output).map(|m| m.0).unwrap_or(defaults.output),
            log: defaults.log,
        };
        let source = match spec.map_or(&PluginOrigin::Builtin, |s| &s.origin) {
            PluginOrigin::File { path, sha256 } => {
                PluginSource::File { path: config.resolve(path), sha256: sha256.clone() }
            }
            PluginOrigin::Oci { reference, insecure } => self.runtime.pull(name, reference, *insecure)?,
            PluginOrigin::Builtin => self.runtime.standard(name)?,
        };
        self.runtime.load(name, source, limits)
    }

    /// The offline stages of a run: fetch, render, validate. `revision` is set as soon as
    /// the fetch knows it: a run that fails to render or validate is still a run of it.
    fn render(&self, ctx: &RunContext<'_>, revision: &mut String) -> Result<Rendered, RunFailure> {
        let RunContext { prepared, pipeline, secrets, interrupt, .. } = ctx;
        let mut renderers = resolve_chain::<Renderer>(prepared, "render", &pipeline.render, secrets, interrupt)
            .map_err(RunFailure::at(Stage::Prepare))?;
        let mut validators = resolve_chain::<Validator>(prepared, "validate", &pipeline.validate, secrets, interrupt)
            .map_err(RunFailure::at(Stage::Prepare))?;

        let source = prepared.config.source_of(pipeline);
        let snapshot = self.fetch(prepared, source, secrets, interrupt).map_err(RunFailure::at(Stage::Source))?;
        revision.clone_from(&snapshot.revision);
        let (objects, revealed) =
            render(&snapshot, &pipeline.path, &mut renderers, &ctx.render).map_err(RunFailure::at(Stage::Render))?;
        validators.iter_mut().for_each(|v| v.hide(&revealed));
        let findings = validate(&objects, &validators).map_err(RunFailure::at(Stage::Validate))?;
        let pipeline = pipeline.name.clone();
        Ok(Rendered { pipeline, revision: snapshot.revision, objects, findings, revealed })
    }

    /// Stage 1: the source's snapshot.
    pub fn fetch(
        &self,
        prepared: &Prepared,
        spec: &SourceSpec,
        secrets: &SecretValues,
        interrupt: &Interrupt,
    ) -> Result<Snapshot, StageError> {
        let config = &prepared.config;
        let Some(step) = spec.plugin() else {
            return Ok(self.sources.snapshot(config, spec, secrets, interrupt)?);
        };
        let call = resolve_step::<plugins::Source>(prepared, "source", step, secrets, Some(interrupt))?;
        let plugin = call.plugin();
        let failed = |message: String| SourceError::Plugin {
            source_name: spec.name.clone(),
            plugin: plugin.name().into(),
            message: call.redact(&message),
        };
        match call.run(|source, with, scope| source.fetch(with, None, scope)).map_err(StageError::SourceCall)? {
            Ok(Some(snapshot)) => {
                Ok(self.sources.from_plugin(spec, plugin.name(), &snapshot.revision, &snapshot.files)?)
            }
            Ok(None) => Err(failed("returned no snapshot when none was known".into()).into()),
            Err(message) => Err(failed(message).into()),
        }
    }
}
