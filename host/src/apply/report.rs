//! What the cluster half of one run did, object by object, in one vocabulary: kept whole
//! when a stage fails, so that what happened before the failure is still told. Counts and
//! the views others need (changed objects, kinds, files) are methods, not stored copies.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

pub use super::health::Health as ObjectHealth;
use crate::object::{ObjKey, Object};

/// What happened, or would happen in a dry run, to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Recreated,
    Pruned,
    /// Left alone: a namespace labelled for dry runs, an ignored kind, `moor.dev/apply: ignore`.
    Skipped,
    /// Left in the cluster and dropped from the inventory.
    Orphaned,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Recreated => "recreated",
            Action::Pruned => "pruned",
            Action::Skipped => "skipped",
            Action::Orphaned => "orphaned",
        }
    }

    /// What a plan or a diff says it would do: `create`, `configure`, `unchanged` or
    /// `prune`; `None` for what a run leaves alone.
    pub fn planned(self) -> Option<&'static str> {
        match self {
            Action::Created => Some("create"),
            Action::Configured | Action::Recreated => Some("configure"),
            Action::Unchanged => Some("unchanged"),
            Action::Pruned => Some("prune"),
            Action::Skipped | Action::Orphaned => None,
        }
    }

    /// Whether the object was written or deleted (what Kubernetes Events are sent for).
    pub fn changes(self) -> bool {
        matches!(self, Action::Created | Action::Configured | Action::Recreated | Action::Pruned)
    }

    /// Whether the object was applied, changed or not.
    pub fn applies(self) -> bool {
        matches!(self, Action::Created | Action::Configured | Action::Unchanged | Action::Recreated)
    }
}

/// What a run did to the objects of one source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FileCounts {
    pub changed: usize,
    pub unchanged: usize,
}

/// One object of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectOutcome {
    pub key: ObjKey,
    /// Where it came from (`file:line`); empty for what only the inventory named.
    pub file: String,
    pub line: u32,
    pub action: Action,
    /// Why it was skipped or orphaned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// What its status said when the health wait ended; `None` when it was not waited for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<ObjectHealth>,
}

impl ObjectOutcome {
    pub fn new(key: ObjKey, action: Action) -> ObjectOutcome {
        ObjectOutcome { key, file: String::new(), line: 0, action, why: None, health: None }
    }

    /// What happened to a rendered object.
    pub fn of(object: &Object, action: Action) -> ObjectOutcome {
        ObjectOutcome { file: object.file.clone(), line: object.line, ..ObjectOutcome::new(object.key(), action) }
    }

    /// A rendered object left alone, and why.
    pub fn skipped(object: &Object, why: String) -> ObjectOutcome {
        ObjectOutcome { why: Some(why), ..ObjectOutcome::of(object, Action::Skipped) }
    }

    /// `file:line`, as objects' origins are shown.
    pub fn origin(&self) -> String {
        match (self.file.as_str(), self.line) {
            ("", _) => String::new(),
            (f, 0) => f.into(),
            (f, l) => format!("{f}:{l}"),
        }
    }
}

/// Whether the run's objects became healthy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Health {
    /// Not waited for (`wait = false`, a dry run, or the run stopped before health).
    #[default]
    NotChecked,
    Ready,
    Failed(String),
}

/// What the cluster half of a run did, partial when a stage failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub objects: Vec<ObjectOutcome>,
    pub health: Health,
    /// Every object as it was applied, for the controller's drift watch.
    #[serde(skip)]
    pub applied: Vec<(ObjKey, Value)>,
}

impl Report {
    /// How many objects had `action`.
    pub fn count(&self, action: Action) -> usize {
        self.objects.iter().filter(|o| o.action == action).count()
    }

    /// Objects written or deleted.
    pub fn changed(&self) -> impl Iterator<Item = &ObjectOutcome> {
        self.objects.iter().filter(|o| o.action.changes())
    }

    /// Per source file, its objects that this run applied: how many it changed (created,
    /// configured or recreated) and how many were already as wanted.
    pub fn files(&self) -> BTreeMap<&str, FileCounts> {
        let mut files: BTreeMap<&str, FileCounts> = BTreeMap::new();
        for o in self.objects.iter().filter(|o| o.action.applies()) {
            let counts = files.entry(o.file.as_str()).or_default();
            match o.action {
                Action::Unchanged => counts.unchanged += 1,
                _ => counts.changed += 1,
            }
        }
        files
    }

    /// `(apiVersion, kind)` of every applied object, for the controller's drift watch.
    pub fn kinds(&self) -> BTreeSet<(String, String)> {
        self.applied.iter().map(|(r, _)| (r.api_version(), r.kind.clone())).collect()
    }

    /// Gives each object the health the wait ended with.
    pub(super) fn record_health(&mut self, mut states: BTreeMap<ObjKey, ObjectHealth>) {
        for o in &mut self.objects {
            if let Some(health) = states.remove(&o.key) {
                o.health = Some(health);
            }
        }
    }

    pub(super) fn push(&mut self, outcome: ObjectOutcome) {
        self.objects.push(outcome);
    }

    pub(super) fn push_why(&mut self, key: ObjKey, action: Action, why: String) {
        self.objects.push(ObjectOutcome { why: Some(why), ..ObjectOutcome::new(key, action) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, name: &str) -> ObjKey {
        ObjKey {
            version: "v1".into(),
            kind: kind.into(),
            namespace: "a".into(),
            name: name.into(),
            ..ObjKey::default()
        }
    }

    fn applied(name: &str, file: &str, action: Action) -> ObjectOutcome {
        ObjectOutcome { file: file.into(), line: 3, ..ObjectOutcome::new(key("ConfigMap", name), action) }
    }

    #[test]
    fn counts_changes_files_and_kinds_are_derived_from_the_one_list() {
        let mut report = Report::default();
        report.push(applied("a", "x.yaml", Action::Created));
        report.push(applied("b", "x.yaml", Action::Unchanged));
        report.push(applied("c", "y.yaml", Action::Recreated));
        report.push(ObjectOutcome::new(key("ConfigMap", "old"), Action::Pruned));
        report.push_why(key("ConfigMap", "skip"), Action::Skipped, "ignored kind".into());
        report.applied.push((key("ConfigMap", "a"), Value::Null));
        assert_eq!((report.count(Action::Created), report.count(Action::Pruned)), (1, 1));
        let changed: Vec<_> = report.changed().map(|o| o.key.name.as_str()).collect();
        assert_eq!(changed, ["a", "c", "old"]);
        let files = report.files();
        assert_eq!(
            files,
            BTreeMap::from([
                ("x.yaml", FileCounts { changed: 1, unchanged: 1 }),
                ("y.yaml", FileCounts { changed: 1, unchanged: 0 })
            ])
        );
        assert_eq!(report.kinds(), BTreeSet::from([("v1".to_owned(), "ConfigMap".to_owned())]));
        assert_eq!(report.objects[0].origin(), "x.yaml:3");
        assert_eq!(report.objects[3].origin(), "");
    }

    #[test]
    fn health_is_not_checked_until_a_wait_says_otherwise() {
        let report = Report::default();
        assert_eq!(report.health, Health::NotChecked);
        let json = serde_json::to_value(Health::Failed("Deployment/a/web: timed out".into())).unwrap();
        assert_eq!(json, serde_json::json!({"state": "failed", "reason": "Deployment/a/web: timed out"}));
    }
}
