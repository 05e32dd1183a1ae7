//! The apply engine: staged server-side apply, inventory, guarded prune, health.
//!
//! [`apply`] runs the cluster half of the pipeline for one rendered pipeline, one function
//! per stage: `prepare` (labels, namespaces, kinds, policies) → `observe` (one LIST per kind
//! of what the pipeline manages) → `decide` (what changes; dry-runs only where something
//! did) → `record_union` (inventory first) → `apply_staged` (CRDs, namespaces and cluster
//! roles first, then waves in kind order) → `prune` → `wait_healthy` → `record`.
//!
//! A reconcile where nothing changed costs the inventory read and one LIST per kind: an
//! object is compared locally with its live copy ([`compare::covers`]) and is only sent to
//! the server when it differs or is new.

pub mod compare;
pub mod diff;
pub mod health;
pub mod inventory;
pub mod resources;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{PipelineSpec, Settings, SpannedStr};
use crate::object::Object;
use health::Health;
use inventory::{Entry, Inventory, ObjRef, PIPELINE_LABEL};
use resources::{Resolved, Resources};

/// The field manager of every write.
pub const MANAGER: &str = "moor";
/// Labels every applied object carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "moor");
/// Per-object annotations.
pub const WAVE: &str = "moor.dev/wave";
pub const UPDATE: &str = "moor.dev/update";
pub const APPLY_POLICY: &str = "moor.dev/apply";
pub const PRUNE: &str = "moor.dev/prune";
/// kube-applier opt-in label, on namespaces (`on`, `dry-run`, `off`) and resources (`off`).
pub const ENABLED: &str = "moor.dev/enabled";

/// Requests in flight at once per pipeline.
const CONCURRENCY: usize = 32;

/// Why the cluster half of a pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot reach the cluster: {0}")]
    Connect(String),
    #[error("{object} ({origin}): the cluster does not serve {api_version} {kind}")]
    UnknownKind { object: String, origin: String, api_version: String, kind: String },
    #[error("{object} ({origin}): {reason}")]
    Refused { object: String, origin: String, reason: String },
    #[error("{0}")]
    Inventory(String),
    #[error("{object} ({origin}): {message}")]
    Apply { object: String, origin: String, message: String },
    #[error("prune refused: {0}")]
    PruneRefused(String),
    #[error("prune: {} object(s) could not be deleted: {}", .0.len(), .0.join("; "))]
    Prune(Vec<String>),
    #[error("{object} is unhealthy: {reason}")]
    Unhealthy { object: String, reason: String },
    #[error("health: timed out after {} waiting for {}", humantime::format_duration(*timeout), waiting.join(", "))]
    HealthTimeout { timeout: Duration, waiting: Vec<String> },
    #[error("{0}")]
    Kube(String),
}

/// A connection to the cluster, shared by the pipelines of one run.
pub struct Target {
    pub client: kube::Client,
    /// The configuration `client` was made from; impersonating clients start from it.
    config: kube::Config,
    pub resources: Resources,
    /// Namespace of objects that name none.
    pub default_namespace: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("default_namespace", &self.default_namespace).finish_non_exhaustive()
    }
}

impl Target {
    /// Connects with the ambient kubeconfig (or in-cluster config) and runs discovery.
    pub async fn connect() -> Result<Target, ApplyError> {
        let config = kube::Config::infer().await.map_err(|_| {
            let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
            ApplyError::Connect(format!("no usable kubeconfig ({kubeconfig}) and not running in a cluster"))
        })?;
        Target::with_config(config).await
    }

    pub async fn with_config(config: kube::Config) -> Result<Target, ApplyError> {
        let client = kube::Client::try_from(config.clone()).map_err(|e| ApplyError::Connect(e.to_string()))?;
        Target::from_client(client, config).await
    }

    /// A target around an existing client (say, one with extra layers) made from `config`.
    pub async fn from_client(client: kube::Client, config: kube::Config) -> Result<Target, ApplyError> {
        let default_namespace = config.default_namespace.clone();
        let resources = Resources::discover(&client).await.map_err(|e| ApplyError::Connect(e.to_string()))?;
        Ok(Target { client, config, resources, default_namespace })
    }

    /// The client a pipeline writes with: impersonating its service account, if it has one.
    fn client_for(&self, pipeline: &PipelineSpec) -> Result<kube::Client, ApplyError> {
        let Some(sa) = &pipeline.service_account else { return Ok(self.client.clone()) };
        let (ns, name) = sa.split_once('/').expect("checked at load");
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{name}"));
        config.auth_info.impersonate_groups = Some(vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ]);
        kube::Client::try_from(config).map_err(|e| ApplyError::Connect(e.to_string()))
    }
}

/// How one run treats a pipeline.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Server-side dry-run only (the pipeline's own `dry_run` also counts).
    pub dry_run: bool,
}

/// Per-object update strategy (FA-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Update,
    Never,
    Recreate,
}

/// Per-object apply policy (FX-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Override,
    Merge,
    IfNotPresent,
    Ignore,
}

/// What happened, or would happen, to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Recreated,
}

/// One object on its way to the cluster.
#[derive(Debug, Clone)]
struct Desired {
    object: Object,
    r: ObjRef,
    /// `None` for kinds defined by a CRD of this same pipeline: resolved after stage zero.
    resolved: Option<Resolved>,
    stage_zero: bool,
    wave: i64,
    update: Update,
    policy: Policy,
    hash: String,
    /// Only a server dry-run for this object (namespace labelled `dry-run`).
    dry_run_only: bool,
}

/// Summary of one pipeline's run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub pipeline: String,
    pub revision: String,
    pub dry_run: bool,
    pub created: Vec<String>,
    pub configured: Vec<String>,
    pub unchanged: Vec<String>,
    pub recreated: Vec<String>,
    pub pruned: Vec<String>,
    /// Object and why it was left alone.
    pub skipped: Vec<(String, String)>,
    /// Objects left in the cluster but dropped from the inventory, and why.
    pub orphaned: Vec<(String, String)>,
    /// Object and its health at the end.
    pub health: Vec<(String, String)>,
    pub healthy: bool,
    /// Each applied object's origin file and what happened to it (per-file results, KA-7).
    #[serde(skip)]
    pub files: Vec<(String, Action)>,
    /// Objects created, configured, recreated or pruned, for Kubernetes Events.
    #[serde(skip)]
    pub changed: Vec<(ObjRef, &'static str)>,
    /// `(apiVersion, kind)` of every applied object, for the controller's drift watch.
    #[serde(skip)]
    pub kinds: std::collections::BTreeSet<(String, String)>,
    /// Every object as it was applied, for the controller's drift watch.
    #[serde(skip)]
    pub applied: Vec<(ObjRef, Value)>,
}

impl Report {
    fn record(&mut self, action: Action, d: &Desired) {
        let name = d.r.to_string();
        match action {
            Action::Created => self.created.push(name),
            Action::Configured => self.configured.push(name),
            Action::Unchanged => self.unchanged.push(name),
            Action::Recreated => self.recreated.push(name),
        }
        self.files.push((d.object.file.clone(), action));
        if action != Action::Unchanged {
            self.changed.push((d.r.clone(), action.as_str()));
        }
        self.kinds.insert((d.r.api_version(), d.r.kind.clone()));
        self.applied.push((d.r.clone(), d.object.value.clone()));
    }

    fn record_pruned(&mut self, r: &ObjRef) {
        self.pruned.push(r.to_string());
        self.changed.push((r.clone(), "pruned"));
    }
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Recreated => "recreated",
        }
    }
}

/// Progress lines for a terminal.
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// The cluster half of the pipeline for `objects` rendered at `revision`.
pub async fn apply(
    target: &Target,
    settings: &Settings,
    pipeline: &PipelineSpec,
    revision: &str,
    objects: Vec<Object>,
    run: RunOptions,
    progress: Progress<'_>,
) -> Result<Report, ApplyError> {
    let name = pipeline.name.s();
    let dry_run = run.dry_run || pipeline.dry_run;
    let mut report = Report { pipeline: name.into(), revision: revision.into(), dry_run, ..Report::default() };
    let client = target.client_for(pipeline)?;
    let store = inventory::Store::new(target.client.clone(), &settings.namespace, &settings.instance);

    let mut desired = prepare(target, &client, pipeline, objects, &mut report).await?;
    let old = store.load(name).await.map_err(ApplyError::Inventory)?;
    let observed = observe(&client, name, &desired, old.is_empty()).await?;
    let planned = decide(&client, pipeline, &desired, &old, &observed).await?;

    if dry_run {
        for (d, action) in &planned {
            report.record(*action, d);
        }
        // What a real run would prune.
        report.pruned = prune_candidates(pipeline, &old, &desired).iter().map(ToString::to_string).collect();
        report.healthy = true;
        return Ok(report);
    }

    record_union(&store, name, &old, &desired).await?;
    let (applied, late) = apply_staged(&client, pipeline, planned, &mut report, progress).await?;
    // Kinds this pipeline's CRDs defined were resolved on the way; health needs them too.
    for d in desired.iter_mut().filter(|d| d.resolved.is_none()) {
        d.resolved = late.get(&live_key(&d.r)).cloned();
    }
    let pruned = prune(target, &client, pipeline, &old, &desired, &mut report, progress).await;
    let health = if pipeline.wait {
        wait_healthy(&client, pipeline, &desired, &applied, &observed.live, &mut report, progress).await
    } else {
        Ok(())
    };
    record(&store, pipeline, revision, &desired, &old, &pruned.kept).await?;

    match (pruned.refused, pruned.kept.is_empty(), health) {
        (_, _, Err(e)) => Err(e),
        (Some(reason), _, _) => Err(ApplyError::PruneRefused(reason)),
        (None, false, _) => Err(ApplyError::Prune(pruned.kept.into_iter().map(|(r, e)| format!("{r}: {e}")).collect())),
        (None, true, Ok(())) => Ok(report),
    }
}

/// What prune did not delete and must stay in the inventory.
#[derive(Debug, Default)]
struct Pruned {
    /// Objects that could not be deleted, with the error, or all candidates when refused.
    kept: Vec<(ObjRef, String)>,
    /// Why the guards refused to prune at all.
    refused: Option<String>,
}

fn digest(value: &Value) -> String {
    hex::encode(&Sha256::digest(value.to_string().as_bytes())[..8])
}

fn annotation<'a>(object: &'a Object, key: &str) -> Option<&'a str> {
    object.value.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

fn label<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.pointer("/metadata/labels").and_then(|a| a.get(key)).and_then(Value::as_str)
}

fn set_meta(value: &mut Value, field: &str, key: &str, v: &str) {
    if value["metadata"].get(field).is_none_or(|m| !m.is_object()) {
        value["metadata"][field] = Value::Object(Default::default());
    }
    value["metadata"][field][key] = Value::String(v.to_owned());
}

fn refused(object: &Object, reason: String) -> ApplyError {
    ApplyError::Refused { object: object.display_name(), origin: object.origin(), reason }
}

/// The server's message for an API error; the error itself otherwise.
pub(crate) fn kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Stage: fix each object's final form (namespace, labels, annotations), resolve its kind,
/// read its policies, and set aside what is ignored or not allowed.
async fn prepare(
    target: &Target,
    client: &kube::Client,
    pipeline: &PipelineSpec,
    objects: Vec<Object>,
    report: &mut Report,
) -> Result<Vec<Desired>, ApplyError> {
    let name = pipeline.name.s();
    // Kinds this pipeline's own CRDs define, and whether they are namespaced.
    let crd_kinds: HashMap<(String, String), bool> = objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .filter_map(|crd| {
            let namespaced = crd.value.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
            resources::crd_defines(crd).map(|key| (key, namespaced))
        })
        .collect();
    let ignored = |o: &Object| {
        pipeline.ignore_kinds.iter().any(|k| match k.split_once('/') {
            Some((group, kind)) => group == o.group() && kind == o.kind(),
            None => k == o.kind(),
        })
    };
    let namespace_modes =
        if pipeline.namespace_opt_in { namespace_modes(client, &objects).await? } else { HashMap::new() };

    let mut desired = Vec::with_capacity(objects.len());
    for mut object in objects {
        if ignored(&object) {
            report.skipped.push((object.display_name(), "kind is ignored by the pipeline".into()));
            continue;
        }
        if label(&object.value, ENABLED) == Some("off") {
            report.skipped.push((object.display_name(), format!("labelled {ENABLED}=off")));
            continue;
        }
        let resolved = target.resources.resolve(object.api_version(), object.kind());
        let namespaced = match &resolved {
            Some(r) => r.namespaced,
            None if let Some(namespaced) = crd_kinds.get(&(object.group().to_owned(), object.kind().to_owned())) => {
                *namespaced
            }
            None => {
                return Err(ApplyError::UnknownKind {
                    object: object.display_name(),
                    origin: object.origin(),
                    api_version: object.api_version().into(),
                    kind: object.kind().into(),
                });
            }
        };
        if namespaced {
            let ns = pipeline
                .target_namespace
                .clone()
                .or_else(|| object.namespace().map(str::to_owned))
                .unwrap_or_else(|| target.default_namespace.clone());
            object.value["metadata"]["namespace"] = Value::String(ns);
        } else if let Some(m) = object.value["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if let (Some(allowed), Some(ns)) = (&pipeline.namespaces, object.namespace())
            && !allowed.iter().any(|a| a == ns)
        {
            return Err(refused(
                &object,
                format!("namespace `{ns}` is outside the pipeline's namespaces ({})", allowed.join(", ")),
            ));
        }
        let mut dry_run_only = false;
        if pipeline.namespace_opt_in {
            let ns = object.namespace().unwrap_or(if object.kind() == "Namespace" { object.name() } else { "" });
            match namespace_modes.get(ns).map(String::as_str) {
                _ if ns.is_empty() => {}
                Some("on") => {}
                Some("dry-run") => dry_run_only = true,
                _ => {
                    report
                        .skipped
                        .push((object.display_name(), format!("namespace `{ns}` is not labelled {ENABLED}=on")));
                    continue;
                }
            }
        }
        for (k, v) in &pipeline.labels {
            set_meta(&mut object.value, "labels", k, v);
        }
        for (k, v) in &pipeline.annotations {
            set_meta(&mut object.value, "annotations", k, v);
        }
        set_meta(&mut object.value, "labels", MANAGED_BY.0, MANAGED_BY.1);
        set_meta(&mut object.value, "labels", PIPELINE_LABEL, name);

        let update = match annotation(&object, UPDATE) {
            None | Some("update") => Update::Update,
            Some("never") => Update::Never,
            Some("recreate") => Update::Recreate,
            Some(other) => {
                return Err(refused(&object, format!("{UPDATE}: `{other}` is not update, never or recreate")));
            }
        };
        let policy = match annotation(&object, APPLY_POLICY) {
            None | Some("override") => Policy::Override,
            Some("merge") => Policy::Merge,
            Some("if-not-present") => Policy::IfNotPresent,
            Some("ignore") => Policy::Ignore,
            Some(other) => {
                return Err(refused(
                    &object,
                    format!("{APPLY_POLICY}: `{other}` is not override, merge, if-not-present or ignore"),
                ));
            }
        };
        if policy == Policy::Ignore {
            report.skipped.push((object.display_name(), format!("{APPLY_POLICY}=ignore")));
            continue;
        }
        let wave = match annotation(&object, WAVE) {
            None => 0,
            Some(w) => w.parse().map_err(|_| refused(&object, format!("{WAVE}: `{w}` is not an integer")))?,
        };
        let (group, version) =
            object.api_version().rsplit_once('/').map(|(g, v)| (g.to_owned(), v.to_owned())).unwrap_or_default();
        let version = if group.is_empty() { object.api_version().to_owned() } else { version };
        let r = ObjRef {
            group,
            version,
            kind: object.kind().into(),
            namespace: object.namespace().unwrap_or("").into(),
            name: object.name().into(),
        };
        let hash = digest(&object.value);
        let stage_zero = resources::is_stage_zero(&object);
        desired.push(Desired { object, r, resolved, stage_zero, wave, update, policy, hash, dry_run_only });
    }
    Ok(desired)
}

/// `moor.dev/enabled` of every namespace the objects use (kube-applier convention).
async fn namespace_modes(client: &kube::Client, objects: &[Object]) -> Result<HashMap<String, String>, ApplyError> {
    let mut modes = HashMap::new();
    for o in objects.iter().filter(|o| o.kind() == "Namespace" && o.group().is_empty()) {
        modes.insert(o.name().to_owned(), label(&o.value, ENABLED).unwrap_or("off").to_owned());
    }
    let wanted: HashSet<&str> =
        objects.iter().filter_map(Object::namespace).filter(|ns| !modes.contains_key(*ns)).collect();
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in wanted {
        let mode = match api.get_opt(ns).await.map_err(|e| ApplyError::Kube(kube_error(&e)))? {
            Some(live) => live.metadata.labels.and_then(|l| l.get(ENABLED).cloned()).unwrap_or_else(|| "off".into()),
            None => "off".into(),
        };
        modes.insert(ns.to_owned(), mode);
    }
    Ok(modes)
}

/// Stage: what the pipeline's objects look like in the cluster: one LIST per kind, by the
/// pipeline label, across namespaces (per namespace when the identity may not list
/// cluster-wide).
async fn observe(
    client: &kube::Client,
    pipeline: &str,
    desired: &[Desired],
    first: bool,
) -> Result<Observed, ApplyError> {
    let mut kinds: BTreeMap<String, (ApiResource, bool, HashSet<String>)> = BTreeMap::new();
    // A pipeline without an inventory has nothing labelled as its own that a GET by name
    // would not find: the cluster-wide LISTs by label are for the runs after the first.
    for d in desired.iter().filter(|_| !first) {
        if let Some(r) = &d.resolved {
            let entry =
                kinds.entry(kind_of(&r.resource)).or_insert_with(|| (r.resource.clone(), r.namespaced, HashSet::new()));
            entry.2.insert(d.r.namespace.clone());
        }
    }
    let selector = format!("{PIPELINE_LABEL}={pipeline}");
    let mut live = HashMap::new();
    for (resource, namespaced, namespaces) in kinds.into_values() {
        let params = ListParams::default().labels(&selector);
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let items = match all.list(&params).await {
            Ok(list) => list.items,
            Err(e) if status_code(&e) == Some(403) && namespaced => {
                let mut items = Vec::new();
                for ns in namespaces {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
                    items.extend(api.list(&params).await.map_err(|e| ApplyError::Kube(kube_error(&e)))?.items);
                }
                items
            }
            Err(e) => return Err(ApplyError::Kube(format!("listing {}: {}", resource.plural, kube_error(&e)))),
        };
        live.extend(items.into_iter().map(|item| listed_item(&resource, item)));
    }

    // Objects the label did not find are new, or exist without our label. Where a kind
    // has many of them in one namespace, one LIST answers for all instead of a GET each.
    let mut missing: BTreeMap<(String, String), (ApiResource, usize)> = BTreeMap::new();
    for d in desired.iter().filter(|d| !live.contains_key(&live_key(&d.r))) {
        if let Some(r) = &d.resolved {
            let group = (kind_of(&r.resource), d.r.namespace.clone());
            missing.entry(group).or_insert_with(|| (r.resource.clone(), 0)).1 += 1;
        }
    }
    let mut listed = HashSet::new();
    for ((kind, namespace), (resource, count)) in missing {
        if count < LIST_INSTEAD_OF_GETS {
            continue;
        }
        let api = api_for(client, &resource, &namespace);
        let items = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            // Not allowed to list: fall back to one GET per object.
            Err(e) if status_code(&e) == Some(403) => continue,
            Err(e) => return Err(ApplyError::Kube(format!("listing {}: {}", resource.plural, kube_error(&e)))),
        };
        for (key, value) in items.into_iter().map(|item| listed_item(&resource, item)) {
            live.entry(key).or_insert(value);
        }
        listed.insert((kind, namespace));
    }
    Ok(Observed { live, listed })
}

/// An item of a LIST as a live object under its inventory key (`group/kind/namespace/name`).
/// Items of a list come without their type, so it is set here.
fn listed_item(resource: &ApiResource, item: DynamicObject) -> (String, Value) {
    let key = format!(
        "{}/{}/{}/{}",
        resource.group,
        resource.kind,
        item.metadata.namespace.as_deref().unwrap_or_default(),
        item.metadata.name.as_deref().unwrap_or_default()
    );
    let mut value = serde_json::to_value(&item).unwrap_or_default();
    value["apiVersion"] = Value::String(resource.api_version.clone());
    value["kind"] = Value::String(resource.kind.clone());
    (key, value)
}

/// `apiVersion/Kind` of a resource, to group objects by kind.
fn kind_of(resource: &ApiResource) -> String {
    format!("{}/{}", resource.api_version, resource.kind)
}

/// From this many new objects of one kind in one namespace, `observe` lists them.
const LIST_INSTEAD_OF_GETS: usize = 8;

/// What `observe` saw.
#[derive(Debug, Default)]
struct Observed {
    /// Live objects by key: the pipeline's own, and others that were listed.
    live: HashMap<String, Value>,
    /// (kind, namespace) groups listed in full: an object absent from `live` is absent.
    listed: HashSet<(String, String)>,
}

fn live_key(r: &ObjRef) -> String {
    inventory::map_key(r)
}

fn api_for(client: &kube::Client, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
    if namespace.is_empty() {
        Api::all_with(client.clone(), resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, resource)
    }
}

fn patch_params(pipeline: &PipelineSpec, d: &Desired) -> PatchParams {
    let mut pp = PatchParams::apply(MANAGER);
    if pipeline.force && d.policy == Policy::Override {
        pp = pp.force();
    }
    pp
}

/// Stage: what each object needs. Unchanged objects cost nothing; new ones a GET (they may
/// exist without our label); changed ones a dry-run apply, so that nothing is written
/// when the server would keep the object as it is.
async fn decide(
    client: &kube::Client,
    pipeline: &PipelineSpec,
    desired: &[Desired],
    old: &Inventory,
    observed: &Observed,
) -> Result<Vec<(Desired, Action)>, ApplyError> {
    let decisions = futures::stream::iter(desired.iter().cloned())
        .map(|d| async move {
            let Some(resolved) = &d.resolved else { return Ok((d, Action::Created)) };
            let api = api_for(client, &resolved.resource, &d.r.namespace);
            let group = (kind_of(&resolved.resource), d.r.namespace.clone());
            let current = match observed.live.get(&live_key(&d.r)) {
                Some(v) => Some(v.clone()),
                None if observed.listed.contains(&group) => None,
                None => api
                    .get_opt(&d.r.name)
                    .await
                    .map_err(|e| apply_error(&d, &e))?
                    .map(|o| serde_json::to_value(o).unwrap_or_default()),
            };
            // A namespace-restricted pipeline may take cluster-scoped objects only when
            // nobody else manages them (FA-6).
            let ours = |v: &Value| label(v, PIPELINE_LABEL) == Some(pipeline.name.s());
            if pipeline.namespaces.is_some() && !resolved.namespaced && current.as_ref().is_some_and(|v| !ours(v)) {
                let reason = "exists and is not managed by this namespace-restricted pipeline".to_owned();
                return Err(refused(&d.object, reason));
            }
            let Some(current) = current else { return Ok((d, Action::Created)) };
            if matches!(d.policy, Policy::IfNotPresent) || d.update == Update::Never {
                return Ok((d, Action::Unchanged));
            }
            let same_in_git = old.get(&d.r).is_some_and(|e| e.hash == d.hash);
            if same_in_git && compare::covers(&current, &d.object.value) {
                return Ok((d, Action::Unchanged));
            }
            // Changed in Git or in the cluster: ask the server what applying would give.
            let pp = patch_params(pipeline, &d).dry_run();
            match api.patch(&d.r.name, &pp, &Patch::Apply(&d.object.value)).await {
                Ok(result) => {
                    let result = compare::for_display(serde_json::to_value(result).unwrap_or_default());
                    let before = compare::for_display(current);
                    let action = if result == before { Action::Unchanged } else { Action::Configured };
                    Ok((d, action))
                }
                Err(e) if d.update == Update::Recreate && is_immutable(&e) => Ok((d, Action::Recreated)),
                Err(e) => Err(apply_error(&d, &e)),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<Result<_, ApplyError>>>()
        .await;
    let mut planned = decisions.into_iter().collect::<Result<Vec<_>, _>>()?;
    planned.sort_by(|a, b| a.0.r.cmp(&b.0.r));
    Ok(planned)
}

fn is_immutable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("immutable"))
}

fn apply_error(d: &Desired, e: &kube::Error) -> ApplyError {
    ApplyError::Apply { object: d.r.to_string(), origin: d.object.origin(), message: kube_error(e) }
}

/// Stage: before anything new is created, the inventory names old and new objects alike.
async fn record_union(
    store: &inventory::Store,
    pipeline: &str,
    old: &Inventory,
    desired: &[Desired],
) -> Result<(), ApplyError> {
    if desired.iter().all(|d| old.contains(&d.r)) {
        return Ok(());
    }
    let mut union = old.clone();
    for d in desired {
        if !union.contains(&d.r) {
            union.insert(d.r.clone(), Entry::default());
        }
    }
    store.save(pipeline, &union).await.map_err(ApplyError::Inventory)
}

/// Stage: stage zero (CRDs, namespaces, cluster roles, classes) applied and waited for,
/// then the rest by wave and kind order. Returns the live objects the server answered, and
/// the kinds resolved after stage zero (defined by the pipeline's own CRDs).
async fn apply_staged(
    client: &kube::Client,
    pipeline: &PipelineSpec,
    planned: Vec<(Desired, Action)>,
    report: &mut Report,
    progress: Progress<'_>,
) -> Result<(HashMap<String, Value>, HashMap<String, Resolved>), ApplyError> {
    let (zero, mut rest): (Vec<_>, Vec<_>) = planned.into_iter().partition(|(d, _)| d.stage_zero);
    let mut answered = HashMap::new();
    let mut late = HashMap::new();

    apply_group(client, pipeline, zero.clone(), report, &mut answered, progress).await?;
    let zero_changed: Vec<&Desired> = zero.iter().filter(|(_, a)| *a != Action::Unchanged).map(|(d, _)| d).collect();
    wait_stage_zero(client, &zero_changed, progress).await?;

    if rest.iter().any(|(d, _)| d.resolved.is_none()) {
        // Kinds defined by this pipeline's CRDs: discovery sees them now.
        let fresh = Resources::discover(client).await.map_err(|e| ApplyError::Kube(kube_error(&e)))?;
        for (d, _) in rest.iter_mut().filter(|(d, _)| d.resolved.is_none()) {
            d.resolved = fresh.resolve(d.object.api_version(), d.object.kind());
            match &d.resolved {
                Some(resolved) => {
                    late.insert(live_key(&d.r), resolved.clone());
                }
                None => {
                    return Err(ApplyError::UnknownKind {
                        object: d.r.to_string(),
                        origin: d.object.origin(),
                        api_version: d.object.api_version().into(),
                        kind: d.object.kind().into(),
                    });
                }
            }
        }
    }
    rest.sort_by(|(a, _), (b, _)| {
        (a.wave, resources::kind_rank(&a.object)).cmp(&(b.wave, resources::kind_rank(&b.object)))
    });
    let waves: Vec<i64> =
        rest.iter().map(|(d, _)| d.wave).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    for (i, wave) in waves.iter().enumerate() {
        let in_wave: Vec<(Desired, Action)> = rest.iter().filter(|(d, _)| d.wave == *wave).cloned().collect();
        let objects: Vec<Desired> = in_wave.iter().map(|(d, _)| d.clone()).collect();
        let mut by_kind: Vec<Vec<(Desired, Action)>> = Vec::new();
        for item in in_wave {
            match by_kind.last_mut() {
                Some(group) if resources::kind_rank(&group[0].0.object) == resources::kind_rank(&item.0.object) => {
                    group.push(item)
                }
                _ => by_kind.push(vec![item]),
            }
        }
        for group in by_kind {
            apply_group(client, pipeline, group, report, &mut answered, progress).await?;
        }
        // A wave must be healthy before the next one starts.
        if pipeline.wait && i + 1 < waves.len() {
            progress(&format!("wave {wave} applied; waiting for it to be healthy"));
            wait_healthy(client, pipeline, &objects, &answered, &HashMap::new(), report, progress).await?;
        }
    }
    Ok((answered, late))
}

/// Applies a group of objects concurrently.
async fn apply_group(
    client: &kube::Client,
    pipeline: &PipelineSpec,
    group: Vec<(Desired, Action)>,
    report: &mut Report,
    answered: &mut HashMap<String, Value>,
    progress: Progress<'_>,
) -> Result<(), ApplyError> {
    let results = futures::stream::iter(group)
        .map(|(d, action)| async move {
            if action == Action::Unchanged {
                return Ok((d, action, None));
            }
            let resolved = d.resolved.clone().expect("resolved before applying");
            let api = api_for(client, &resolved.resource, &d.r.namespace);
            let mut pp = patch_params(pipeline, &d);
            if d.dry_run_only {
                pp = pp.dry_run();
            }
            if action == Action::Recreated {
                delete_and_wait(&api, &d.r.name).await.map_err(|e| apply_error(&d, &e))?;
            }
            let result = api.patch(&d.r.name, &pp, &Patch::Apply(&d.object.value)).await;
            match result {
                Ok(obj) => Ok((d, action, Some(serde_json::to_value(obj).unwrap_or_default()))),
                Err(e) if d.update == Update::Recreate && is_immutable(&e) => {
                    delete_and_wait(&api, &d.r.name).await.map_err(|e| apply_error(&d, &e))?;
                    let obj = api
                        .patch(&d.r.name, &pp, &Patch::Apply(&d.object.value))
                        .await
                        .map_err(|e| apply_error(&d, &e))?;
                    Ok((d, Action::Recreated, Some(serde_json::to_value(obj).unwrap_or_default())))
                }
                Err(e) => Err(apply_error(&d, &e)),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut first_error = None;
    for result in results {
        match result {
            Ok((d, action, value)) => {
                if action != Action::Unchanged {
                    progress(&format!("{} {}", d.r, format!("{action:?}").to_lowercase()));
                }
                if d.dry_run_only {
                    report.skipped.push((d.r.to_string(), "namespace is labelled dry-run: server dry-run only".into()));
                } else {
                    report.record(action, &d);
                }
                if let Some(v) = value {
                    answered.insert(live_key(&d.r), v);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn delete_and_wait(api: &Api<DynamicObject>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(e) if status_code(&e) == Some(404) => return Ok(()),
        Err(e) => return Err(e),
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if api.get_opt(name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Waits until the CRDs of stage zero are Established and its namespaces exist.
async fn wait_stage_zero(
    client: &kube::Client,
    objects: &[&Desired],
    progress: Progress<'_>,
) -> Result<(), ApplyError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for d in objects.iter().filter(|d| d.object.kind() == "CustomResourceDefinition" || d.object.kind() == "Namespace")
    {
        let Some(resolved) = &d.resolved else { continue };
        let api = api_for(client, &resolved.resource, "");
        loop {
            let live = api.get_opt(&d.r.name).await.map_err(|e| apply_error(d, &e))?;
            let value = live.map(|o| serde_json::to_value(o).unwrap_or_default());
            match value.as_ref().map(|v| health::check(&d.r.group, &d.r.kind, v, None)) {
                Some(Health::Ready) => break,
                Some(Health::Failed(reason)) => return Err(ApplyError::Unhealthy { object: d.r.to_string(), reason }),
                _ if Instant::now() > deadline => {
                    return Err(ApplyError::HealthTimeout {
                        timeout: Duration::from_secs(60),
                        waiting: vec![d.r.to_string()],
                    });
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        progress(&format!("{} ready", d.r));
    }
    Ok(())
}

/// Stage: deletes what the inventory has and the render no longer does, behind the
/// guards. Returns the objects that could not be deleted (they stay in the inventory).
async fn prune(
    target: &Target,
    client: &kube::Client,
    pipeline: &PipelineSpec,
    old: &Inventory,
    desired: &[Desired],
    report: &mut Report,
    progress: Progress<'_>,
) -> Pruned {
    if !pipeline.prune {
        return Pruned::default();
    }
    let candidates = prune_candidates(pipeline, old, desired);
    prune_refs(
        target,
        client,
        pipeline.name.s(),
        &pipeline.prune_guard,
        old.len(),
        desired.is_empty(),
        candidates,
        report,
        progress,
    )
    .await
}

/// What the inventory has and the render no longer does.
fn prune_candidates(pipeline: &PipelineSpec, old: &Inventory, desired: &[Desired]) -> Vec<ObjRef> {
    if !pipeline.prune {
        return Vec::new();
    }
    let keep: HashSet<String> = desired.iter().map(|d| live_key(&d.r)).collect();
    old.refs().filter(|r| !keep.contains(&live_key(r))).cloned().collect()
}

/// Deletes `candidates` of a pipeline's inventory (of `inventory_size` objects).
#[allow(clippy::too_many_arguments)]
async fn prune_refs(
    target: &Target,
    client: &kube::Client,
    pipeline: &str,
    guard: &crate::config::PruneGuard,
    inventory_size: usize,
    empty_render: bool,
    candidates: Vec<ObjRef>,
    report: &mut Report,
    progress: Progress<'_>,
) -> Pruned {
    if candidates.is_empty() {
        return Pruned::default();
    }
    let refuse = |reason: String| Pruned {
        kept: candidates.iter().map(|r| (r.clone(), "prune refused".to_owned())).collect(),
        refused: Some(reason),
    };
    if empty_render && !guard.allow_empty {
        return refuse(format!(
            "the render is empty and would delete all {inventory_size} object(s); set prune_guard.allow_empty to allow it"
        ));
    }
    let fraction = candidates.len() as f64 / inventory_size.max(1) as f64;
    if !empty_render && fraction > guard.max_fraction {
        return refuse(format!(
            "it would delete {} of {inventory_size} object(s) ({:.0}%), over prune_guard.max_fraction ({:.0}%)",
            candidates.len(),
            fraction * 100.0,
            guard.max_fraction * 100.0
        ));
    }
    let mut failures = Vec::new();
    for r in candidates {
        if r.kind == "CustomResourceDefinition" && !guard.allow_crds
            || r.kind == "Namespace" && r.group.is_empty() && !guard.allow_namespaces
        {
            report
                .orphaned
                .push((r.to_string(), format!("{}s are not pruned unless the prune guard allows it", r.kind)));
            continue;
        }
        let Some(resolved) = target.resources.resolve(&r.api_version(), &r.kind) else {
            // The kind is no longer served: nothing of it can be left.
            report.record_pruned(&r);
            continue;
        };
        let api = api_for(client, &resolved.resource, &r.namespace);
        let live = match api.get_opt(&r.name).await {
            Ok(Some(live)) => live,
            Ok(None) => continue,
            Err(e) => {
                failures.push((r.clone(), kube_error(&e)));
                continue;
            }
        };
        let labels = live.metadata.labels.clone().unwrap_or_default();
        if labels.get(PIPELINE_LABEL).map(String::as_str) != Some(pipeline) {
            report.orphaned.push((r.to_string(), format!("no longer labelled {PIPELINE_LABEL}={pipeline}")));
            continue;
        }
        let annotations = live.metadata.annotations.clone().unwrap_or_default();
        if annotations.get(PRUNE).map(String::as_str) == Some("disabled") {
            report.orphaned.push((r.to_string(), format!("annotated {PRUNE}=disabled")));
            continue;
        }
        match api.delete(&r.name, &DeleteParams::background()).await {
            Ok(_) => {
                progress(&format!("{r} pruned"));
                report.record_pruned(&r);
            }
            Err(e) if status_code(&e) == Some(404) => report.record_pruned(&r),
            Err(e) => failures.push((r.clone(), kube_error(&e))),
        }
    }
    Pruned { kept: failures, refused: None }
}

/// Stage: waits until every object is ready; fails at once on a failed rollout.
async fn wait_healthy(
    client: &kube::Client,
    pipeline: &PipelineSpec,
    desired: &[Desired],
    answered: &HashMap<String, Value>,
    observed: &HashMap<String, Value>,
    report: &mut Report,
    progress: Progress<'_>,
) -> Result<(), ApplyError> {
    let timeout = pipeline.health_timeout.0;
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<(&Desired, Value)> = desired
        .iter()
        .filter(|d| !d.dry_run_only && d.resolved.is_some())
        .filter_map(|d| {
            let key = live_key(&d.r);
            answered.get(&key).or_else(|| observed.get(&key)).map(|v| (d, v.clone()))
        })
        .collect();
    let custom = health::Custom::compile(&pipeline.health);
    let mut states: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut still = Vec::new();
        for (d, value) in pending {
            let state = match custom.iter().find(|c| c.applies_to(&d.r.group, &d.r.kind)) {
                Some(rule) => rule.check(&value),
                None => {
                    let endpoints = if health::needs_endpoints(&d.r.group, &d.r.kind) {
                        Some(ready_endpoints(client, &d.r).await?)
                    } else {
                        None
                    };
                    health::check(&d.r.group, &d.r.kind, &value, endpoints)
                }
            };
            match state {
                Health::Ready => {
                    states.insert(d.r.to_string(), "ready".into());
                }
                Health::Failed(reason) => {
                    states.insert(d.r.to_string(), format!("failed: {reason}"));
                    report.health = states.into_iter().collect();
                    return Err(ApplyError::Unhealthy { object: d.r.to_string(), reason });
                }
                Health::Progressing(what) => {
                    states.insert(d.r.to_string(), what);
                    still.push((d, value));
                }
            }
        }
        if still.is_empty() {
            report.health = states.into_iter().collect();
            report.healthy = true;
            return Ok(());
        }
        if Instant::now() > deadline {
            report.health = states.into_iter().collect();
            return Err(ApplyError::HealthTimeout {
                timeout,
                waiting: still.iter().map(|(d, _)| d.r.to_string()).collect(),
            });
        }
        progress(&format!("waiting for {} object(s) to be ready", still.len()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut refreshed = Vec::with_capacity(still.len());
        for (d, old) in still {
            let resolved = d.resolved.as_ref().expect("filtered");
            let api = api_for(client, &resolved.resource, &d.r.namespace);
            let value = match api.get_opt(&d.r.name).await {
                Ok(Some(o)) => serde_json::to_value(o).unwrap_or_default(),
                Ok(None) => old,
                Err(e) => return Err(ApplyError::Kube(kube_error(&e))),
            };
            refreshed.push((d, value));
        }
        pending = refreshed;
    }
}

async fn ready_endpoints(client: &kube::Client, service: &ObjRef) -> Result<usize, ApplyError> {
    let api: Api<k8s_openapi::api::discovery::v1::EndpointSlice> = Api::namespaced(client.clone(), &service.namespace);
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={}", service.name));
    let slices = api.list(&params).await.map_err(|e| ApplyError::Kube(kube_error(&e)))?;
    Ok(slices
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count())
}

/// Stage: the inventory becomes what the pipeline now manages, plus what could not be
/// deleted.
async fn record(
    store: &inventory::Store,
    pipeline: &PipelineSpec,
    revision: &str,
    desired: &[Desired],
    old: &Inventory,
    failed_deletes: &[(ObjRef, String)],
) -> Result<(), ApplyError> {
    let mut next =
        Inventory { deletion_policy: pipeline.deletion_policy, revision: revision.into(), ..Inventory::default() };
    for d in desired.iter().filter(|d| !d.dry_run_only) {
        next.insert(d.r.clone(), Entry { hash: d.hash.clone() });
    }
    for (r, _) in failed_deletes {
        next.insert(r.clone(), old.get(r).cloned().unwrap_or_default());
    }
    if &next == old {
        return Ok(());
    }
    store.save(pipeline.name.s(), &next).await.map_err(ApplyError::Inventory)
}

/// Pipelines that have an inventory in the cluster but are gone from the config (FA-10):
/// prunes what they managed, or orphans it when their deletion policy says so.
pub async fn remove_pipeline(
    target: &Target,
    settings: &Settings,
    pipeline: &str,
    progress: Progress<'_>,
) -> Result<Report, ApplyError> {
    let store = inventory::Store::new(target.client.clone(), &settings.namespace, &settings.instance);
    let inventory = store.load(pipeline).await.map_err(ApplyError::Inventory)?;
    let mut report =
        Report { pipeline: pipeline.into(), revision: inventory.revision.clone(), healthy: true, ..Report::default() };
    if inventory.deletion_policy == crate::config::DeletionPolicy::Orphan {
        report.orphaned = inventory
            .refs()
            .map(|r| (r.to_string(), "the pipeline was removed with deletion_policy = orphan".into()))
            .collect();
    } else {
        // Removing the pipeline is the explicit intent: the size guards do not apply.
        let guard = crate::config::PruneGuard { allow_empty: true, max_fraction: 1.0, ..Default::default() };
        let refs: Vec<ObjRef> = inventory.refs().cloned().collect();
        let failures =
            prune_refs(target, &target.client, pipeline, &guard, inventory.len(), true, refs, &mut report, progress)
                .await
                .kept;
        if !failures.is_empty() {
            let mut rest = Inventory {
                deletion_policy: inventory.deletion_policy,
                revision: inventory.revision.clone(),
                ..Default::default()
            };
            for (r, _) in &failures {
                rest.insert(r.clone(), Entry::default());
            }
            store.save(pipeline, &rest).await.map_err(ApplyError::Inventory)?;
            return Err(ApplyError::Prune(failures.into_iter().map(|(r, e)| format!("{r}: {e}")).collect()));
        }
    }
    store.delete(pipeline).await.map_err(ApplyError::Inventory)?;
    Ok(report)
}

/// Names of pipelines of this instance with an inventory in the cluster.
pub async fn pipelines_in_cluster(target: &Target, settings: &Settings) -> Result<Vec<String>, ApplyError> {
    let store = inventory::Store::new(target.client.clone(), &settings.namespace, &settings.instance);
    store.pipelines().await.map_err(ApplyError::Inventory)
}
