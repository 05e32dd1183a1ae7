//! The apply engine: staged server-side apply, inventory, guarded prune, health.
//!
//! [`apply`] runs the cluster half of the pipeline for one rendered pipeline, top to
//! bottom like ARCHITECTURE.md's picture: plan (`desired` → `observe` → `plan`), apply
//! (inventory union first, then `write`: stage zero, waves), `prune`, `health`, record
//! (the inventory). Each stage records what it did in the run's [`Report`], which `apply`
//! returns whole or partial, beside the failure tagged with the [`Stage`] it happened in.
//!
//! A reconcile where nothing changed costs the inventory read, and in `moor run` nothing
//! else: the drift watches' cache ([`live`]) answers for the live objects (`moor apply`
//! LISTs each kind). An object is compared locally with its live copy
//! ([`compare::covers`]) and is only sent to the server when it differs or is new.

pub mod clusters;
pub mod compare;
pub mod desired;
pub mod diff;
pub mod health;
pub mod inventory;
pub mod live;
mod observe;
pub mod plan;
pub mod prune;
pub mod remove;
pub mod report;
pub mod requests;
pub mod resources;
pub mod target;
mod write;

use std::collections::HashMap;

use crate::config::{PipelineSpec, Settings};
use crate::interrupt::Interrupt;
use crate::kube_api::kube_message;
use crate::object::{ObjKey, Object};
use crate::stage::Stage;
use desired::{Desired, Wanted};
use inventory::{Entry, Inventory, InventoryError};
pub use report::{Action, FileCounts, Health, ObjectHealth, ObjectOutcome, Report};
pub use target::{Kubeconfig, Target};

/// Requests in flight at once per pipeline.
const CONCURRENCY: usize = 32;

/// Why the cluster half of a pipeline failed. Messages name the object or resource, not
/// the stage ([`Failed`] carries that).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no usable kubeconfig ({kubeconfig}) and not running in a cluster")]
    NoConfig { kubeconfig: String, source: kube::config::InferConfigError },
    #[error("kubeconfig {file}: {source}")]
    Kubeconfig { file: String, source: kube::config::KubeconfigError },
    #[error("cannot reach the cluster: {}", kube_message(.0))]
    Connect(#[source] kube::Error),
    #[error("{object} ({origin}): the cluster does not serve {api_version} {kind}")]
    UnknownKind { object: String, origin: String, api_version: String, kind: String },
    #[error("{object} ({origin}): {reason}")]
    Refused { object: String, origin: String, reason: String },
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error("{object} ({origin}): {}", kube_message(.source))]
    Apply { object: String, origin: String, source: kube::Error },
    #[error("{what}: {}", kube_message(.source))]
    Kube { what: String, source: kube::Error },
    #[error("prune refused: {0}")]
    PruneRefused(String),
    #[error("{} object(s) could not be pruned: {}", .0.len(), .0.join("; "))]
    Prune(Vec<String>),
    #[error("cluster `{name}`: {message}")]
    Cluster { name: String, message: String },
    #[error(
        "the pipeline's objects are in cluster `{was}` and it now names `{now}`: remove the pipeline from the config first (its objects are pruned), then add it back"
    )]
    ClusterChanged { was: String, now: String },
    #[error("{object} is unhealthy: {reason}")]
    Unhealthy { object: String, reason: String },
    /// The run was stopped (its timeout, a lost lease) while this stage ran.
    #[error("stopped: {0}")]
    Stopped(String),
    #[error("health checks timed out after {} waiting for {}", humantime::format_duration(*timeout), waiting.join(", "))]
    HealthTimeout { timeout: std::time::Duration, waiting: Vec<String> },
}

impl ApplyError {
    /// The server refused a request about one desired object.
    fn object(d: &Desired, source: kube::Error) -> ApplyError {
        ApplyError::Apply { object: d.r.to_string(), origin: d.object.origin(), source }
    }
}

/// An [`ApplyError`] and the stage it happened in.
#[derive(Debug)]
pub struct Failed {
    pub stage: Stage,
    pub error: ApplyError,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Tags an error with the stage it happened in: `.map_err(at(Stage::Prune))`.
pub fn at<E: Into<ApplyError>>(stage: Stage) -> impl FnOnce(E) -> Failed {
    move |e| Failed { stage, error: e.into() }
}

/// How one run treats a pipeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Server-side dry-run only (the pipeline's own `dry_run` also counts).
    pub dry_run: bool,
    /// Go past the prune guards' fraction and count limits for this run
    /// ([`prune::OVERRIDE_FLAG`]).
    pub allow_mass_prune: bool,
}

impl Report {
    fn record(&mut self, action: Action, d: &Desired) {
        self.push(ObjectOutcome::of(&d.object, action));
        self.applied.push((d.r.clone(), d.object.value.clone()));
    }

    fn record_written(&mut self, writes: &write::Writes) {
        for w in &writes.written {
            if w.d.dry_run_only {
                let why = "namespace is labelled dry-run: server dry-run only".to_owned();
                self.push(ObjectOutcome::skipped(&w.d.object, why));
            } else {
                self.record(w.action, &w.d);
            }
        }
    }

    fn record_pruned(&mut self, deleted: prune::Deleted) {
        for r in deleted.pruned {
            self.push(ObjectOutcome::new(r, Action::Pruned));
        }
        for (r, why) in deleted.orphaned {
            self.push_why(r, Action::Orphaned, why);
        }
    }
}

/// Progress lines for a terminal.
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// What the cluster half works on: a pipeline's objects rendered at `revision`, and its
/// inventory as the run read it.
pub struct Input<'a> {
    pub pipeline: &'a PipelineSpec,
    pub revision: &'a str,
    pub objects: Vec<Object>,
    pub old: Inventory,
}

/// The cluster half of a pipeline: what it did, also when a stage failed (then partial),
/// and the failure tagged with its stage. An `interrupt` raised stops it where it is,
/// failing the stage it was in.
pub async fn apply(
    target: &Target,
    settings: &Settings,
    input: Input<'_>,
    run: RunOptions,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> (Report, Result<(), Failed>) {
    let mut report = Report { dry_run: run.dry_run || input.pipeline.dry_run, ..Report::default() };
    let mut reached = Stage::Plan;
    let finished = {
        let work = apply_into(&mut report, &mut reached, target, settings, input, run, progress);
        tokio::select! {
            outcome = work => Some(outcome),
            () = interrupt.raised() => None,
        }
    };
    // Stopped: what was done so far is in the report, and the next run converges from it.
    let outcome = finished.unwrap_or_else(|| {
        let why = interrupt.why().unwrap_or_else(|| "the run was stopped".into());
        Err(at(reached)(ApplyError::Stopped(why)))
    });
    (report, outcome)
}

/// [`apply`], stage by stage, each recording what it did in `report` before the next starts.
async fn apply_into(
    report: &mut Report,
    reached: &mut Stage,
    target: &Target,
    settings: &Settings,
    Input { pipeline, revision, objects, old }: Input<'_>,
    run: RunOptions,
    progress: Progress<'_>,
) -> Result<(), Failed> {
    let name = pipeline.label.as_str();
    let owner = prune::Owner { instance: &settings.instance, pipeline: name };
    let dry_run = report.dry_run;
    let client = target.client_for(pipeline).map_err(at(Stage::Plan))?;
    let store = target.inventories(settings);

    // plan: what the pipeline wants, what is there, what changes
    let Wanted { mut desired, skipped } =
        wanted(target, &client, pipeline, owner, objects).await.map_err(at(Stage::Plan))?;
    report.objects.extend(skipped);
    // Its objects are where its inventory says; a pipeline that moved would prune the wrong cluster.
    if !old.is_empty() && old.cluster != cluster_of(pipeline) {
        let named = |c: &str| if c.is_empty() { "(the one moor runs in)".to_owned() } else { c.to_owned() };
        let error = ApplyError::ClusterChanged { was: named(&old.cluster), now: named(cluster_of(pipeline)) };
        return Err(at(Stage::Plan)(error));
    }
    let looks_first = |d: &Desired| plan::looks_first(pipeline, d, dry_run);
    let observed = observe::observe(&client, &target.live, owner, &desired, old.is_empty(), looks_first)
        .await
        .map_err(at(Stage::Plan))?;
    let planned =
        plan::decide(&client, pipeline, owner, &desired, &old, &observed, dry_run).await.map_err(at(Stage::Plan))?;
    if dry_run {
        for (d, action) in &planned {
            report.record(*action, d);
        }
        if pipeline.prune {
            for r in prune::candidates(&old, desired.iter().map(|d| &d.r)) {
                report.push(ObjectOutcome::new(r, Action::Pruned));
            }
        }
        return Ok(());
    }

    // apply: the inventory names old and new objects before anything new is created
    *reached = Stage::Apply;
    record_union(&store, pipeline, &old, &desired).await.map_err(at(Stage::Apply))?;
    let (writes, written) = write::write(target, &client, pipeline, planned, progress).await;
    report.record_written(&writes);
    written?;
    // Kinds this pipeline's CRDs defined were resolved on the way; health needs them too.
    for d in desired.iter_mut().filter(|d| d.resolved.is_none()) {
        d.resolved = writes.late.get(&d.r).cloned();
    }

    // prune: what the inventory has and the render no longer does, behind the guard
    *reached = Stage::Prune;
    let pruner = prune::Pruner { target, client: &client, owner };
    let pruned = prune(pruner, pipeline, &old, &desired, run, progress).await;
    let kept = pruned.deleted.failed.clone();
    report.record_pruned(pruned.deleted);

    // health
    *reached = Stage::Health;
    let health = if pipeline.wait {
        let answers = writes.answers();
        let pending = desired
            .iter()
            .filter(|d| !d.dry_run_only && d.resolved.is_some())
            .filter_map(|d| Some((d, answers.get(&d.r).or_else(|| observed.live.get(&d.r))?.clone())))
            .collect();
        let waited = health::wait(&client, pipeline, pending, progress).await;
        report.record_health(waited.states);
        report.health = match &waited.outcome {
            Ok(()) => Health::Ready,
            Err(e) => Health::Failed(e.to_string()),
        };
        waited.outcome
    } else {
        Ok(())
    };

    // record: the inventory becomes what the pipeline now manages
    *reached = Stage::Record;
    record(&store, pipeline, revision, &desired, &old, &kept).await.map_err(at(Stage::Record))?;

    health.map_err(at(Stage::Health))?;
    if let Some(refusal) = pruned.refused {
        return Err(at(Stage::Prune)(ApplyError::PruneRefused(refusal)));
    }
    if !kept.is_empty() {
        return Err(at(Stage::Prune)(ApplyError::Prune(kept.into_iter().map(|(r, e)| format!("{r}: {e}")).collect())));
    }
    Ok(())
}

/// What the pipeline wants: its objects' final form, with the namespaces' opt-in labels
/// read first when the pipeline needs them.
async fn wanted(
    target: &Target,
    client: &kube::Client,
    pipeline: &PipelineSpec,
    owner: prune::Owner<'_>,
    objects: Vec<Object>,
) -> Result<Wanted, ApplyError> {
    let opt_in = if pipeline.namespace_opt_in { observe::opt_in(client, &objects).await? } else { HashMap::new() };
    let resources = target.resources();
    let cx = desired::Context {
        pipeline,
        owner,
        resources: &resources,
        // A tenant's objects that name no namespace go to the tenant's.
        default_namespace: pipeline
            .tenant
            .as_ref()
            .and_then(|t| t.default_namespace())
            .unwrap_or(&target.default_namespace),
        opt_in: &opt_in,
    };
    desired::desire(objects, &cx)
}

/// The `[[cluster]]` a pipeline applies to, as its inventory records it ("" at home).
fn cluster_of(pipeline: &PipelineSpec) -> &str {
    pipeline.cluster.as_deref().unwrap_or_default()
}

/// Before anything new is created, the inventory names old and new objects alike.
async fn record_union(
    store: &inventory::Store,
    pipeline_spec: &PipelineSpec,
    old: &Inventory,
    desired: &[Desired],
) -> Result<(), InventoryError> {
    let pipeline = pipeline_spec.label.as_str();
    if desired.iter().all(|d| old.contains(&d.r)) {
        return Ok(());
    }
    let mut union = old.clone();
    union.cluster = cluster_of(pipeline_spec).into();
    for d in desired.iter().filter(|d| !old.contains(&d.r)) {
        union.insert(d.r.clone(), Entry::default());
    }
    store.save(pipeline, &union).await
}

/// What prune did, and why it refused to, if it did.
#[derive(Debug, Default)]
struct Pruned {
    /// What was deleted and orphaned; `failed` stays in the inventory (all candidates when
    /// refused).
    deleted: prune::Deleted,
    /// Why the guard refused to prune at all.
    refused: Option<String>,
}

/// Deletes what the inventory has and the render no longer does, behind the guard.
async fn prune(
    pruner: prune::Pruner<'_>,
    pipeline: &PipelineSpec,
    old: &Inventory,
    desired: &[Desired],
    run: RunOptions,
    progress: Progress<'_>,
) -> Pruned {
    if !pipeline.prune {
        return Pruned::default();
    }
    let candidates = prune::candidates(old, desired.iter().map(|d| &d.r));
    let deletion = prune::Deletion { deleting: candidates.len(), total: old.len(), empty_render: desired.is_empty() };
    if let Err(refusal) = prune::check(&pipeline.prune_guard, "prune_guard", deletion, run.allow_mass_prune) {
        let failed = candidates.into_iter().map(|r| (r, "prune refused".to_owned())).collect();
        return Pruned { deleted: prune::Deleted { failed, ..Default::default() }, refused: Some(refusal.to_string()) };
    }
    let deleted = pruner.delete(&pipeline.prune_guard, candidates, progress).await;
    Pruned { deleted, refused: None }
}

/// The inventory becomes what the pipeline now manages, plus what could not be deleted.
async fn record(
    store: &inventory::Store,
    pipeline: &PipelineSpec,
    revision: &str,
    desired: &[Desired],
    old: &Inventory,
    failed_deletes: &[(ObjKey, String)],
) -> Result<(), InventoryError> {
    let name = pipeline.label.as_str();
    let mut next = Inventory {
        deletion_policy: pipeline.deletion_policy,
        revision: revision.into(),
        cluster: cluster_of(pipeline).into(),
        ..Inventory::default()
    };
    for d in desired.iter().filter(|d| !d.dry_run_only) {
        next.insert(d.r.clone(), Entry { hash: d.hash.clone() });
    }
    for (r, _) in failed_deletes {
        next.insert(r.clone(), old.get(r).cloned().unwrap_or_default());
    }
    let next = store.stamped(name, next);
    if &next == old {
        return Ok(());
    }
    store.save(name, &next).await
}
