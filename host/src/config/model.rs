//! The shape of a config file, as deserialized: plain values. What serde cannot check is
//! checked at load (`check.rs`), and errors name key paths that the source map locates.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{RawPlugin, RawSource, RawTenant, Seconds, Step, WaitFor};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    #[serde(default)]
    pub moor: Settings,
    /// A bootstrap config: where the platform config is.
    pub config: Option<ConfigRef>,
    #[serde(default)]
    pub source: Vec<RawSource>,
    #[serde(default)]
    pub plugin: Vec<RawPlugin>,
    #[serde(default)]
    pub pipeline: Vec<PipelineSpec>,
    /// Remote clusters pipelines may apply to (`pipeline.cluster`).
    #[serde(default)]
    pub cluster: Vec<ClusterSpec>,
    /// Notify steps for many pipelines, each picking them by `pipelines` (globs), as a Flux
    /// Alert picks its sources; loading adds each to the `notify` of the pipelines it picks.
    #[serde(default)]
    pub notify: Vec<Step>,
    /// Teams whose pipelines come from configs of their own.
    #[serde(default)]
    pub tenant: Vec<RawTenant>,
}

/// Settings of the whole instance (`[moor]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Namespace of the controller, where pipeline inventories are stored.
    pub namespace: String,
    /// Name of this instance: inventories and every applied object carry it, and a run only
    /// ever prunes or removes what its own instance applied. Empty in the file: derived from
    /// the config file's location (see [`super::Config::load`]); set it when one config is
    /// applied from more than one place (a CI job and a controller).
    pub instance: String,
    /// Whether `instance` was derived rather than named in the file.
    #[serde(skip)]
    pub instance_derived: bool,
    /// The config file these settings come from, as given (recorded in inventories).
    #[serde(skip)]
    pub file: PathBuf,
    /// The guard on removing pipelines that left the config: their objects count against
    /// it as a fraction of everything the instance manages, and as a count.
    pub prune_guard: PruneGuard,
    /// Controller mode: how many pipeline runs may go at once.
    pub workers: usize,
    /// Controller mode: a link to a revision on the status page, with `{revision}` (and
    /// `{pipeline}`) replaced: `"https://github.com/org/repo/commit/{revision}"` (KA-5).
    pub diff_url: Option<String>,
    /// Controller mode: the bearer token that manual runs, suspend and resume need
    /// (API and status page). Without one, those are refused.
    pub api_token: Option<SecretRef>,
    /// Controller mode: how often the config file is checked for changes.
    pub reload_interval: Seconds,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: "moor-system".into(),
            instance: String::new(),
            instance_derived: false,
            file: PathBuf::new(),
            prune_guard: PruneGuard::default(),
            workers: 4,
            diff_url: None,
            api_token: None,
            reload_interval: Seconds(std::time::Duration::from_secs(2)),
        }
    }
}

/// A secret value: a key of a Kubernetes Secret (read by the host at run time), or an
/// environment variable of the moor process. Plugins only ever see values given to them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "RawSecretRef")]
pub enum SecretRef {
    /// `{ secret = "name", key = "key" }`: a key of a Secret; `namespace/name` for one
    /// outside `[moor] namespace`.
    Secret { secret: String, key: String },
    /// `{ env = "VARIABLE" }`: an environment variable instead of a Secret.
    Env(String),
}

/// A secret reference as written, before it is one of the two forms.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    secret: Option<String>,
    key: Option<String>,
    env: Option<String>,
}

impl TryFrom<RawSecretRef> for SecretRef {
    type Error = String;

    fn try_from(raw: RawSecretRef) -> Result<Self, String> {
        match (raw.secret, raw.key, raw.env) {
            (Some(secret), Some(key), None) if !secret.is_empty() && !key.is_empty() => {
                Ok(SecretRef::Secret { secret, key })
            }
            (None, None, Some(env)) if !env.is_empty() => Ok(SecretRef::Env(env)),
            _ => Err("a secret reference is `{ secret = \"name\", key = \"key\" }` or `{ env = \"VARIABLE\" }`".into()),
        }
    }
}

/// A remote cluster (`[[cluster]]`), as Flux's `kubeConfig.secretRef` and Argo CD's
/// cluster Secrets name one: a kubeconfig in a Secret of the cluster moor runs in (or an
/// environment variable in CLI use). Inventories stay in moor's own cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub name: String,
    /// The kubeconfig's text: `{ secret = "prod-kubeconfig", key = "value" }`.
    pub kubeconfig: SecretRef,
    /// A context of that kubeconfig other than its current one.
    pub context: Option<String>,
}

/// A bootstrap config's `[config]` as written: the platform config is the file `path` of the
/// newest revision of source `source`, loaded again on each new revision.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigRef {
    pub source: String,
    pub path: String,
}

/// What to do with objects a removed pipeline managed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

/// A pipeline: a source directory, rendered, validated, applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub name: String,
    /// What its objects and inventory are labelled with: the name, or for a tenant's
    /// pipeline `team-a/web` the label value `team-a.web`. Set at load.
    #[serde(skip)]
    pub label: String,
    /// The tenant it belongs to, whose rules confine it; `None` for the platform's own.
    #[serde(skip)]
    pub tenant: Option<std::sync::Arc<super::Tenant>>,
    /// The source's name; [`super::Config::source_of`] gives the source itself.
    pub source: String,
    /// The index of `source` in `Config::sources`, resolved at load.
    #[serde(skip)]
    pub(super) source_index: usize,
    /// Directory inside the source.
    #[serde(default)]
    pub path: String,
    /// Defaults to `[{ use = "yaml" }]`.
    #[serde(default = "default_render")]
    pub render: Vec<Step>,
    #[serde(default)]
    pub validate: Vec<Step>,
    #[serde(default)]
    pub notify: Vec<Step>,
    /// Controller mode: a full run this often, even without a new revision.
    #[serde(default = "default_interval")]
    pub interval: Seconds,
    /// Controller mode: after a failure, retries back off exponentially up to this.
    #[serde(default = "default_retry_interval")]
    pub retry_interval: Seconds,
    /// Controller mode: a run taking longer than this is stopped.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// Controller mode: `POST /hooks/<pipeline>` needs a GitHub-style HMAC-SHA256 signature
    /// made with this secret. Without it the pipeline has no webhook.
    pub webhook_secret: Option<SecretRef>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// `depends_on` as indices into `Config::pipelines`, resolved at load.
    #[serde(skip)]
    pub(super) dependencies: Vec<usize>,
    /// Gates (KE-4): what must hold in the cluster before a run, as `moor wait` checks it.
    #[serde(default)]
    pub wait_for: Vec<WaitFor>,
    /// `wait_for` as the dependencies it names, checked at load; names without a
    /// namespace are in the `target_namespace`, else `[moor] namespace`.
    #[serde(skip)]
    pub gates: Vec<crate::wait::Dependency>,
    /// `moor apply`: how long it waits for `wait_for` before failing the pipeline (in
    /// controller mode the pipeline waits, shown as waiting, until the gate opens).
    #[serde(default = "default_health_timeout")]
    pub wait_for_timeout: Seconds,
    #[serde(default = "yes")]
    pub prune: bool,
    pub target_namespace: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub suspend: bool,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Take fields other managers own on conflict (server-side apply `force`).
    #[serde(default = "yes")]
    pub force: bool,
    /// Labels and annotations added to every object.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Prune guards.
    #[serde(default)]
    pub prune_guard: PruneGuard,
    /// Wait for the objects to be healthy, and for how long.
    #[serde(default = "yes")]
    pub wait: bool,
    #[serde(default = "default_health_timeout")]
    pub health_timeout: Seconds,
    /// Kinds never applied nor pruned: `Kind` or `group/Kind`.
    #[serde(default)]
    pub ignore_kinds: Vec<KindMatch>,
    /// When set, the pipeline may only touch these namespaces (and cluster-scoped objects
    /// that are its own or nobody's).
    pub namespaces: Option<Vec<String>>,
    /// Apply as this service account (`namespace/name`), by impersonation.
    pub service_account: Option<ServiceAccount>,
    /// Apply to this `[[cluster]]` instead of the one moor runs in.
    pub cluster: Option<String>,
    /// kube-applier's convention: a namespace is managed only when labelled
    /// `moor.dev/enabled=on` (or `dry-run`); a resource labelled `moor.dev/enabled=off` is left alone.
    #[serde(default)]
    pub namespace_opt_in: bool,
    /// JSON pointers (`/data/password`) of fields redacted in diffs, for every object.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Custom health checks, as CEL expressions over `object`.
    #[serde(default)]
    pub health: Vec<HealthCheck>,
    /// `health`, compiled at load.
    #[serde(skip)]
    pub health_rules: Vec<HealthRule>,
}

/// A service account, written `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl TryFrom<String> for ServiceAccount {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(ServiceAccount { namespace: namespace.into(), name: name.into() })
            }
            _ => Err(format!("`{text}` is not `namespace/name`")),
        }
    }
}

impl std::fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A kind `ignore_kinds` names: `Kind`, or `group/Kind` (the core group is ``).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct KindMatch {
    pub group: Option<String>,
    pub kind: String,
}

impl From<String> for KindMatch {
    fn from(text: String) -> Self {
        match text.split_once('/') {
            Some((group, kind)) => KindMatch { group: Some(group.into()), kind: kind.into() },
            None => KindMatch { group: None, kind: text },
        }
    }
}

impl KindMatch {
    pub fn matches(&self, group: &str, kind: &str) -> bool {
        self.kind == kind && self.group.as_deref().is_none_or(|g| g == group)
    }
}

/// A custom readiness rule for one kind (FX-8), in CEL, with the live object as `object`:
/// `{ kind = "Widget", ready = "object.status.phase == 'Ready'", failed = "object.status.phase == 'Failed'" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// `Kind` or `group/Kind`.
    pub kind: String,
    pub ready: String,
    pub failed: Option<String>,
}

/// A `health` check compiled at load: its kind split from its group, its expressions parsed.
#[derive(Debug, Clone)]
pub struct HealthRule {
    pub group: Option<String>,
    pub kind: String,
    pub ready: Cel,
    pub failed: Option<Cel>,
}

/// A CEL expression, parsed, and its text (for messages).
#[derive(Clone)]
pub struct Cel {
    pub program: std::sync::Arc<cel::Program>,
    pub text: String,
}

impl std::fmt::Debug for Cel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl HealthCheck {
    /// The check compiled; else the field whose expression does not parse, and why.
    pub(super) fn compile(&self) -> Result<HealthRule, (&'static str, String)> {
        let cel = |field: &'static str, text: &str| {
            let program = cel::Program::compile(text).map_err(|e| {
                (field, format!("invalid CEL expression: {}", e.to_string().lines().next().unwrap_or_default()))
            })?;
            Ok(Cel { program: std::sync::Arc::new(program), text: text.to_owned() })
        };
        let (group, kind) = match self.kind.split_once('/') {
            Some((g, k)) => (Some(g.to_owned()), k.to_owned()),
            None => (None, self.kind.clone()),
        };
        let ready = cel("ready", &self.ready)?;
        let failed = self.failed.as_deref().map(|f| cel("failed", f)).transpose()?;
        Ok(HealthRule { group, kind, ready, failed })
    }
}

impl PipelineSpec {
    /// The pipeline's plugin chains, by name: `render`, `validate`, `notify`.
    pub fn chain_lists(&self) -> [(&'static str, &[Step]); 3] {
        [("render", &self.render), ("validate", &self.validate), ("notify", &self.notify)]
    }

    /// Every step of every chain, with its chain's name.
    pub fn chains(&self) -> impl Iterator<Item = (&'static str, &Step)> {
        self.chain_lists().into_iter().flat_map(|(chain, steps)| steps.iter().map(move |step| (chain, step)))
    }
}

/// When pruning is refused.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PruneGuard {
    /// Allow a render with no objects to prune everything.
    pub allow_empty: bool,
    /// Refuse to prune more than this fraction of the inventory at once.
    pub max_fraction: f64,
    /// Refuse to prune more than this many objects at once (no cap when unset).
    pub max_count: Option<usize>,
    pub allow_crds: bool,
    pub allow_namespaces: bool,
}

impl Default for PruneGuard {
    fn default() -> Self {
        PruneGuard {
            allow_empty: false,
            max_fraction: 0.5,
            max_count: None,
            allow_crds: false,
            allow_namespaces: false,
        }
    }
}

fn default_interval() -> Seconds {
    Seconds(std::time::Duration::from_secs(600))
}

fn default_retry_interval() -> Seconds {
    Seconds(std::time::Duration::from_secs(300))
}

fn default_timeout() -> Seconds {
    Seconds(std::time::Duration::from_secs(900))
}

fn default_health_timeout() -> Seconds {
    Seconds(std::time::Duration::from_secs(300))
}

fn default_render() -> Vec<Step> {
    vec![Step {
        uses: "yaml".into(),
        config: None,
        secrets: BTreeMap::new(),
        allow_hosts: Vec::new(),
        vars_from: Vec::new(),
        on: Vec::new(),
        min_severity: None,
        pipelines: Vec::new(),
        at: String::new(),
        text: None,
        cap: crate::plugins::Cap::default(),
    }]
}

fn yes() -> bool {
    true
}
