//! What a pipeline wants in the cluster, object by object: the final form of each object
//! (namespace, labels, annotations), its kind as the server knows it, and its per-object
//! policies read from annotations. Pure: the caller brings discovery and the namespaces'
//! opt-in labels.

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ApplyError;
use super::prune::Owner;
use super::report::ObjectOutcome;
use super::resources::{self, Resolved, Resources};
use crate::config::PipelineSpec;
use crate::labels::{APPLY_POLICY, ENABLED, INSTANCE_LABEL, MANAGED_BY, PIPELINE_LABEL, UPDATE, WAVE};
use crate::object::{ObjKey, Object};

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

/// A namespace's `moor.dev/enabled` label, for pipelines with `namespace_opt_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptIn {
    On,
    DryRun,
    Off,
}

impl OptIn {
    pub fn of(label: Option<&str>) -> OptIn {
        match label {
            Some("on") => OptIn::On,
            Some("dry-run") => OptIn::DryRun,
            _ => OptIn::Off,
        }
    }
}

/// One object on its way to the cluster.
#[derive(Debug, Clone)]
pub struct Desired {
    pub object: Object,
    pub r: ObjKey,
    /// `None` for kinds defined by a CRD of this same pipeline: resolved after stage zero.
    pub resolved: Option<Resolved>,
    pub stage_zero: bool,
    pub wave: i64,
    pub update: Update,
    pub policy: Policy,
    /// Digest of the object as applied, kept in the inventory.
    pub hash: String,
    /// Only a server dry-run for this object (namespace labelled `dry-run`).
    pub dry_run_only: bool,
}

/// What the pipeline wants, and what it sets aside (with why).
#[derive(Debug, Default)]
pub struct Wanted {
    pub desired: Vec<Desired>,
    pub skipped: Vec<ObjectOutcome>,
}

/// What [`desire`] needs to know besides the objects.
pub struct Context<'a> {
    pub pipeline: &'a PipelineSpec,
    pub owner: Owner<'a>,
    pub resources: &'a Resources,
    /// Namespace of objects that name none.
    pub default_namespace: &'a str,
    /// `moor.dev/enabled` of the namespaces the objects use (with `namespace_opt_in`).
    pub opt_in: &'a HashMap<String, OptIn>,
}

/// Each object's final form, kind and policies; ignored and opted-out objects set aside.
pub fn desire(objects: Vec<Object>, cx: &Context<'_>) -> Result<Wanted, ApplyError> {
    let pipeline = cx.pipeline;
    // Kinds this pipeline's own CRDs define, and whether they are namespaced.
    let crd_kinds: HashMap<(String, String), bool> = objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .filter_map(|crd| {
            let namespaced = crd.value.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
            resources::crd_defines(crd).map(|key| (key, namespaced))
        })
        .collect();
    let mut wanted = Wanted { desired: Vec::with_capacity(objects.len()), skipped: Vec::new() };
    for mut object in objects {
        if ignored_kind(pipeline, &object) {
            wanted.skipped.push(ObjectOutcome::skipped(&object, "kind is ignored by the pipeline".into()));
            continue;
        }
        if object.label(ENABLED) == Some("off") {
            wanted.skipped.push(ObjectOutcome::skipped(&object, format!("labelled {ENABLED}=off")));
            continue;
        }
        let resolved = cx.resources.resolve(object.api_version(), object.kind());
        let namespaced = match &resolved {
            Some(r) => r.namespaced,
            None => match crd_kinds.get(&(object.group().to_owned(), object.kind().to_owned())) {
                Some(namespaced) => *namespaced,
                None => {
                    return Err(ApplyError::UnknownKind {
                        object: object.display_name(),
                        origin: object.origin(),
                        api_version: object.api_version().into(),
                        kind: object.kind().into(),
                    });
                }
            },
        };
        place(&mut object, namespaced, pipeline, cx.default_namespace);
        if let Some(reason) = outside(pipeline, &object) {
            return Err(refused(&object, reason));
        }
        let mut dry_run_only = false;
        if pipeline.namespace_opt_in {
            let ns = object.namespace().unwrap_or(if object.kind() == "Namespace" { object.name() } else { "" });
            match cx.opt_in.get(ns).copied().unwrap_or(OptIn::Off) {
                _ if ns.is_empty() => {}
                OptIn::On => {}
                OptIn::DryRun => dry_run_only = true,
                OptIn::Off => {
                    let why = format!("namespace `{ns}` is not labelled {ENABLED}=on");
                    wanted.skipped.push(ObjectOutcome::skipped(&object, why));
                    continue;
                }
            }
        }
        stamp(&mut object, pipeline, cx.owner);
        let (update, policy, wave) = policies(&object).map_err(|reason| refused(&object, reason))?;
        if policy == Policy::Ignore {
            wanted.skipped.push(ObjectOutcome::skipped(&object, format!("{APPLY_POLICY}=ignore")));
            continue;
        }
        let r = object.key();
        let hash = digest(&object.value);
        let stage_zero = resources::is_stage_zero(&object);
        wanted.desired.push(Desired { object, r, resolved, stage_zero, wave, update, policy, hash, dry_run_only });
    }
    Ok(wanted)
}

/// Why `object`, placed, is somewhere its pipeline may not apply to: a namespace outside
/// the pipeline's `namespaces` or its tenant's, or a cluster-scoped kind its tenant is not
/// granted.
fn outside(pipeline: &PipelineSpec, object: &Object) -> Option<String> {
    if let (Some(allowed), Some(ns)) = (&pipeline.namespaces, object.namespace())
        && !allowed.iter().any(|a| a == ns)
    {
        return Some(format!("namespace `{ns}` is outside the pipeline's namespaces ({})", allowed.join(", ")));
    }
    let tenant = pipeline.tenant.as_ref()?;
    match object.namespace() {
        Some(ns) => tenant.refuses_namespace(ns),
        None => tenant.refuses_cluster_scoped(object.group(), object.kind(), object.name()),
    }
}

/// `ignore_kinds`: `Kind` or `group/Kind`.
fn ignored_kind(pipeline: &PipelineSpec, o: &Object) -> bool {
    pipeline.ignore_kinds.iter().any(|k| k.matches(o.group(), o.kind()))
}

/// The namespace an object lands in: the pipeline's `target_namespace`, else its own, else
/// the default; none for cluster-scoped kinds.
fn place(object: &mut Object, namespaced: bool, pipeline: &PipelineSpec, default_namespace: &str) {
    if namespaced {
        let ns = pipeline
            .target_namespace
            .clone()
            .or_else(|| object.namespace().map(str::to_owned))
            .unwrap_or_else(|| default_namespace.to_owned());
        object.value["metadata"]["namespace"] = Value::String(ns);
    } else if let Some(m) = object.value["metadata"].as_object_mut() {
        m.remove("namespace");
    }
}

/// The pipeline's labels and annotations, then moor's own labels (which win).
fn stamp(object: &mut Object, pipeline: &PipelineSpec, owner: Owner<'_>) {
    for (k, v) in &pipeline.labels {
        object.set_label(k, v);
    }
    for (k, v) in &pipeline.annotations {
        object.set_annotation(k, v);
    }
    object.set_label(MANAGED_BY.0, MANAGED_BY.1);
    object.set_label(PIPELINE_LABEL, owner.pipeline);
    object.set_label(INSTANCE_LABEL, owner.instance);
}

/// The object's `moor.dev/update`, `moor.dev/apply` and `moor.dev/wave`, or what is wrong
/// with one of them.
pub fn policies(object: &Object) -> Result<(Update, Policy, i64), String> {
    let annotation =
        |key: &str| object.value.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str);
    let update = match annotation(UPDATE) {
        None | Some("update") => Update::Update,
        Some("never") => Update::Never,
        Some("recreate") => Update::Recreate,
        Some(other) => return Err(format!("{UPDATE}: `{other}` is not update, never or recreate")),
    };
    let policy = match annotation(APPLY_POLICY) {
        None | Some("override") => Policy::Override,
        Some("merge") => Policy::Merge,
        Some("if-not-present") => Policy::IfNotPresent,
        Some("ignore") => Policy::Ignore,
        Some(other) => {
            return Err(format!("{APPLY_POLICY}: `{other}` is not override, merge, if-not-present or ignore"));
        }
    };
    let wave = match annotation(WAVE) {
        None => 0,
        Some(w) => w.trim().parse().map_err(|_| format!("{WAVE}: `{w}` is not an integer"))?,
    };
    Ok((update, policy, wave))
}

fn refused(object: &Object, reason: String) -> ApplyError {
    ApplyError::Refused { object: object.display_name(), origin: object.origin(), reason }
}

/// A short digest of an object as applied.
pub fn digest(value: &Value) -> String {
    hex::encode(&Sha256::digest(value.to_string().as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(annotations: Value) -> Object {
        Object::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": annotations}}),
            "a.yaml",
            3,
        )
    }

    #[test]
    fn annotations_choose_update_policy_and_wave_with_defaults() {
        assert_eq!(policies(&object(json!({}))), Ok((Update::Update, Policy::Override, 0)));
        let all = object(json!({UPDATE: "recreate", APPLY_POLICY: "if-not-present", WAVE: "-2"}));
        assert_eq!(policies(&all), Ok((Update::Recreate, Policy::IfNotPresent, -2)));
        assert_eq!(
            policies(&object(json!({UPDATE: "never", APPLY_POLICY: "merge"}))).map(|p| (p.0, p.1)),
            Ok((Update::Never, Policy::Merge))
        );
    }

    #[test]
    fn a_bad_annotation_value_is_an_error_naming_the_annotation_and_the_choices() {
        assert_eq!(
            policies(&object(json!({UPDATE: "sometimes"}))),
            Err("moor.dev/update: `sometimes` is not update, never or recreate".into())
        );
        assert!(policies(&object(json!({APPLY_POLICY: "force"}))).unwrap_err().starts_with("moor.dev/apply: `force`"));
        assert_eq!(policies(&object(json!({WAVE: "first"}))), Err("moor.dev/wave: `first` is not an integer".into()));
    }

    fn pipeline(extra: &str) -> PipelineSpec {
        let text =
            format!("[[source]]\nname = \"s\"\npath = \".\"\n[[pipeline]]\nname = \"p\"\nsource = \"s\"\n{extra}");
        let config = crate::config::Config::parse(std::path::Path::new("/x/moor.toml"), text, &["yaml"]).unwrap();
        config.pipelines[0].clone()
    }

    #[test]
    fn objects_land_in_the_target_namespace_else_their_own_else_the_default_and_cluster_scoped_in_none() {
        let p = pipeline("");
        let mut named = Object::new(json!({"metadata": {"name": "a", "namespace": "mine"}}), "", 0);
        place(&mut named, true, &p, "default");
        assert_eq!(named.namespace(), Some("mine"));
        let mut bare = Object::new(json!({"metadata": {"name": "a"}}), "", 0);
        place(&mut bare, true, &p, "default");
        assert_eq!(bare.namespace(), Some("default"));
        let mut cluster = Object::new(json!({"metadata": {"name": "a", "namespace": "stray"}}), "", 0);
        place(&mut cluster, false, &p, "default");
        assert_eq!(cluster.namespace(), None);
        let mut moved = named.clone();
        place(&mut moved, true, &pipeline("target_namespace = \"prod\""), "default");
        assert_eq!(moved.namespace(), Some("prod"));
    }

    #[test]
    fn a_tenants_pipeline_applies_only_to_its_namespaces_and_the_cluster_scoped_kinds_it_is_granted() {
        let platform = "[[source]]\nname = \"s\"\npath = \".\"\n[[tenant]]\nname = \"team-a\"\n\
                        source = { path = \"a\" }\nnamespaces = [\"team-a-*\"]\nservice_account = \"team-a-ci/ci\"\nplugins = [\"yaml\"]\n\
                        cluster_kinds = [\"Namespace\"]\n";
        let mut config =
            crate::config::Config::parse(std::path::Path::new("/x/moor.toml"), platform.into(), &["yaml"]).unwrap();
        let team = "[[source]]\nname = \"s\"\npath = \".\"\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\n\
                    target_namespace = \"team-a-web\"\n";
        let team = config.parse_tenant(0, std::path::Path::new("/s/a"), "1a", team.into()).unwrap();
        config.admit(team);
        let web = config.pipeline("team-a/web").unwrap();
        let placed = |kind: &str, name: &str, namespace: Option<&str>| {
            let mut o = Object::new(json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}), "", 0);
            if let Some(ns) = namespace {
                o.value["metadata"]["namespace"] = json!(ns);
            }
            outside(web, &o)
        };
        assert_eq!(placed("ConfigMap", "c", Some("team-a-web")), None);
        assert!(placed("ConfigMap", "c", Some("kube-system")).unwrap().contains("not one of tenant `team-a`'s"));
        assert_eq!(placed("Namespace", "team-a-web", None), None);
        assert!(placed("Namespace", "kube-system", None).is_some());
        assert!(
            placed("ClusterRole", "admin", None).unwrap().contains("not granted the cluster-scoped kind `ClusterRole`")
        );
        // The platform's own pipelines are held only to their own `namespaces`.
        let own = pipeline("namespaces = [\"a\"]");
        let cm =
            |ns: &str| Object::new(json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}}), "", 0);
        assert_eq!(outside(&own, &cm("a")), None);
        assert!(outside(&own, &cm("b")).unwrap().contains("outside the pipeline's namespaces"));
        assert_eq!(
            outside(&pipeline(""), &Object::new(json!({"kind": "ClusterRole", "metadata": {"name": "x"}}), "", 0)),
            None
        );
    }

    #[test]
    fn moors_labels_win_over_the_pipelines_and_the_objects() {
        let p =
            pipeline("labels = { team = \"a\", \"moor.dev/pipeline\" = \"other\" }\nannotations = { note = \"x\" }");
        let mut o = Object::new(json!({"metadata": {"name": "a", "labels": {"moor.dev/instance": "forged"}}}), "", 0);
        stamp(&mut o, &p, Owner { instance: "i", pipeline: "p" });
        assert_eq!(o.label("team"), Some("a"));
        assert_eq!(o.label(PIPELINE_LABEL), Some("p"));
        assert_eq!(o.label(INSTANCE_LABEL), Some("i"));
        assert_eq!(o.label(MANAGED_BY.0), Some("moor"));
        assert_eq!(o.value["metadata"]["annotations"]["note"], "x");
    }

    #[test]
    fn ignore_kinds_match_a_kind_or_a_group_and_kind() {
        let p = pipeline("ignore_kinds = [\"Secret\", \"apps/Deployment\"]");
        let of = |api: &str, kind: &str| Object::new(json!({"apiVersion": api, "kind": kind}), "", 0);
        assert!(ignored_kind(&p, &of("v1", "Secret")));
        assert!(ignored_kind(&p, &of("apps/v1", "Deployment")));
        assert!(!ignored_kind(&p, &of("example.com/v1", "Deployment")));
        assert!(!ignored_kind(&p, &of("v1", "ConfigMap")));
    }

    #[test]
    fn opt_in_labels_read_as_kube_applier_does() {
        assert_eq!(OptIn::of(Some("on")), OptIn::On);
        assert_eq!(OptIn::of(Some("dry-run")), OptIn::DryRun);
        assert_eq!(OptIn::of(Some("yes")), OptIn::Off);
        assert_eq!(OptIn::of(None), OptIn::Off);
    }
}
