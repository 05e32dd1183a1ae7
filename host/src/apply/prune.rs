//! Pruning: what the inventory names and the render no longer does, the guard that refuses
//! mass deletions, and the deletion itself, which only ever touches objects still labelled
//! as the owner's.

use std::collections::HashSet;

use kube::api::DeleteParams;

use super::Progress;
use super::inventory::{Inventory, ObjKey};
use super::target::Target;
use crate::config::PruneGuard;
use crate::kube_api::{api_for, kube_message, status_code};
use crate::labels::{INSTANCE_LABEL, PIPELINE_LABEL, PRUNE};

/// The flag that lets one run go past the size guards.
pub const OVERRIDE_FLAG: &str = "--allow-mass-prune";

/// Why a guard refused to prune at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the render is empty and would delete all {total} object(s); set {guard}.allow_empty to allow it")]
    EmptyRender { guard: String, total: usize },
    #[error(
        "it would delete {deleting} of {total} object(s) ({:.0}%), over {guard}.max_fraction ({:.0}%); raise it, or pass {OVERRIDE_FLAG} once",
        *deleting as f64 * 100.0 / (*total).max(1) as f64,
        max * 100.0
    )]
    Fraction { guard: String, deleting: usize, total: usize, max: f64 },
    #[error(
        "it would delete {deleting} object(s), over {guard}.max_count ({max}); raise it, or pass {OVERRIDE_FLAG} once"
    )]
    Count { guard: String, deleting: usize, max: usize },
}

/// How much a prune deletes, for the guard.
#[derive(Debug, Clone, Copy)]
pub struct Deletion {
    /// Objects it would delete.
    pub deleting: usize,
    /// Objects they are part of: the pipeline's inventory, or the instance's inventories.
    pub total: usize,
    /// The render came back empty (a broken source or chain, more often than not).
    pub empty_render: bool,
}

/// Checks `deletion` against `guard` (named `guard_key` in messages). `allow_mass_prune`
/// (the command-line override) lifts the fraction and count limits, not the empty-render one.
pub fn check(guard: &PruneGuard, guard_key: &str, deletion: Deletion, allow_mass_prune: bool) -> Result<(), Refusal> {
    let Deletion { deleting, total, empty_render } = deletion;
    if deleting == 0 {
        return Ok(());
    }
    if empty_render && !guard.allow_empty {
        return Err(Refusal::EmptyRender { guard: guard_key.into(), total });
    }
    if allow_mass_prune || empty_render {
        return Ok(());
    }
    if deleting as f64 / total.max(1) as f64 > guard.max_fraction {
        return Err(Refusal::Fraction { guard: guard_key.into(), deleting, total, max: guard.max_fraction });
    }
    match guard.max_count {
        Some(max) if deleting > max => Err(Refusal::Count { guard: guard_key.into(), deleting, max }),
        _ => Ok(()),
    }
}

/// What `old` names and `keep` does not.
pub fn candidates<'a>(old: &Inventory, keep: impl IntoIterator<Item = &'a ObjKey>) -> Vec<ObjKey> {
    let keep: HashSet<&ObjKey> = keep.into_iter().collect();
    old.refs().filter(|r| !keep.contains(r)).cloned().collect()
}

/// Kinds a prune leaves alone unless its guard allows them: why, or `None`.
pub fn protected(guard: &PruneGuard, r: &ObjKey) -> Option<String> {
    let crd = r.kind == "CustomResourceDefinition" && !guard.allow_crds;
    let namespace = r.kind == "Namespace" && r.group.is_empty() && !guard.allow_namespaces;
    (crd || namespace).then(|| format!("{}s are not pruned unless the prune guard allows it", r.kind))
}

/// Whose objects a prune may delete: those labelled with this instance and pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub instance: &'a str,
    pub pipeline: &'a str,
}

impl Owner<'_> {
    /// Why a live object with `labels` is not (or no longer) the owner's, or `None`.
    fn disowned(&self, labels: &std::collections::BTreeMap<String, String>) -> Option<String> {
        let pipeline = labels.get(PIPELINE_LABEL).map(String::as_str);
        let instance = labels.get(INSTANCE_LABEL).map(String::as_str);
        if pipeline == Some(self.pipeline) && instance == Some(self.instance) {
            return None;
        }
        Some(format!(
            "no longer labelled {PIPELINE_LABEL}={} and {INSTANCE_LABEL}={} (another pipeline or tool took it over)",
            self.pipeline, self.instance
        ))
    }
}

/// What [`delete`] did.
#[derive(Debug, Default)]
pub struct Deleted {
    pub pruned: Vec<ObjKey>,
    /// Left in the cluster and dropped from the inventory (object, why).
    pub orphaned: Vec<(ObjKey, String)>,
    /// Could not be deleted (object, error): they stay in the inventory.
    pub failed: Vec<(ObjKey, String)>,
}

/// Where deletions go, and whose objects they may touch.
#[derive(Clone, Copy)]
pub struct Pruner<'a> {
    pub target: &'a Target,
    /// The client of the run (impersonating the pipeline's service account, if any).
    pub client: &'a kube::Client,
    pub owner: Owner<'a>,
}

impl Pruner<'_> {
    /// Deletes `refs` one by one, after the guard's size check passed: see [`delete`].
    pub async fn delete(&self, guard: &PruneGuard, refs: Vec<ObjKey>, progress: Progress<'_>) -> Deleted {
        delete(self.target, self.client, self.owner, guard, refs, progress).await
    }
}

/// Deletes `refs` one by one, after the guard's size check passed. An object is deleted only
/// when it is still labelled as `owner`'s and not annotated `moor.dev/prune=disabled`;
/// CRDs and Namespaces only when `guard` allows them.
async fn delete(
    target: &Target,
    client: &kube::Client,
    owner: Owner<'_>,
    guard: &PruneGuard,
    refs: Vec<ObjKey>,
    progress: Progress<'_>,
) -> Deleted {
    let mut done = Deleted::default();
    for r in refs {
        if let Some(why) = protected(guard, &r) {
            done.orphaned.push((r, why));
            continue;
        }
        let Some(resolved) = target.resources().resolve(&r.api_version(), &r.kind) else {
            // The kind is no longer served: nothing of it can be left.
            done.pruned.push(r);
            continue;
        };
        let api = api_for(client, &resolved.resource, &r.namespace);
        let live = match api.get_opt(&r.name).await {
            Ok(Some(live)) => live,
            Ok(None) => continue,
            Err(e) => {
                done.failed.push((r, kube_message(&e)));
                continue;
            }
        };
        if let Some(why) = owner.disowned(&live.metadata.labels.clone().unwrap_or_default()) {
            done.orphaned.push((r, why));
            continue;
        }
        let annotations = live.metadata.annotations.clone().unwrap_or_default();
        if annotations.get(PRUNE).map(String::as_str) == Some("disabled") {
            done.orphaned.push((r, format!("annotated {PRUNE}=disabled")));
            continue;
        }
        match api.delete(&r.name, &DeleteParams::background()).await {
            Ok(_) => {
                progress(&format!("{r} pruned"));
                done.pruned.push(r);
            }
            Err(e) if status_code(&e) == Some(404) => done.pruned.push(r),
            Err(e) => done.failed.push((r, kube_message(&e))),
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> PruneGuard {
        PruneGuard::default()
    }

    fn deletion(deleting: usize, total: usize) -> Deletion {
        Deletion { deleting, total, empty_render: false }
    }

    #[test]
    fn a_prune_up_to_the_fraction_passes_and_one_over_it_is_refused_naming_the_count_and_override() {
        assert_eq!(check(&guard(), "prune_guard", deletion(2, 4), false), Ok(()));
        let refusal = check(&guard(), "prune_guard", deletion(3, 4), false).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "it would delete 3 of 4 object(s) (75%), over prune_guard.max_fraction (50%); raise it, or pass --allow-mass-prune once"
        );
        assert_eq!(check(&guard(), "prune_guard", deletion(3, 4), true), Ok(()));
    }

    #[test]
    fn the_count_cap_refuses_many_deletions_even_under_the_fraction() {
        let capped = PruneGuard { max_count: Some(10), max_fraction: 1.0, ..guard() };
        assert_eq!(check(&capped, "[moor] prune_guard", deletion(10, 1000), false), Ok(()));
        let refusal = check(&capped, "[moor] prune_guard", deletion(11, 1000), false).unwrap_err();
        assert!(
            refusal.to_string().starts_with("it would delete 11 object(s), over [moor] prune_guard.max_count (10)")
        );
        assert_eq!(check(&capped, "[moor] prune_guard", deletion(11, 1000), true), Ok(()));
    }

    #[test]
    fn an_empty_render_never_prunes_unless_allowed_and_the_override_does_not_lift_that() {
        let empty = Deletion { deleting: 5, total: 5, empty_render: true };
        let refusal = check(&guard(), "prune_guard", empty, true).unwrap_err();
        assert!(refusal.to_string().starts_with("the render is empty and would delete all 5 object(s)"));
        let allowed = PruneGuard { allow_empty: true, ..guard() };
        assert_eq!(check(&allowed, "prune_guard", empty, false), Ok(()));
    }

    #[test]
    fn nothing_to_delete_always_passes() {
        let strict = PruneGuard { max_fraction: 0.0, max_count: Some(0), ..guard() };
        assert_eq!(
            check(&strict, "prune_guard", Deletion { deleting: 0, total: 0, empty_render: true }, false),
            Ok(())
        );
    }

    fn r(group: &str, kind: &str, ns: &str, name: &str) -> ObjKey {
        ObjKey { group: group.into(), version: "v1".into(), kind: kind.into(), namespace: ns.into(), name: name.into() }
    }

    #[test]
    fn crds_and_namespaces_are_protected_unless_the_guard_allows_them() {
        let crd = r("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com");
        let ns = r("", "Namespace", "", "team");
        assert!(protected(&guard(), &crd).is_some());
        assert!(protected(&guard(), &ns).is_some());
        // A Namespace kind of another group is an ordinary object.
        assert!(protected(&guard(), &r("example.com", "Namespace", "", "x")).is_none());
        let open = PruneGuard { allow_crds: true, allow_namespaces: true, ..guard() };
        assert!(protected(&open, &crd).is_none() && protected(&open, &ns).is_none());
    }

    #[test]
    fn candidates_are_what_the_inventory_has_and_the_render_does_not_whatever_the_version() {
        let mut old = Inventory::default();
        old.insert(r("apps", "Deployment", "a", "web"), Default::default());
        old.insert(r("", "ConfigMap", "a", "gone"), Default::default());
        let mut newer = r("apps", "Deployment", "a", "web");
        newer.version = "v2".into();
        assert_eq!(candidates(&old, [&newer]), vec![r("", "ConfigMap", "a", "gone")]);
    }

    #[test]
    fn only_objects_labelled_with_the_owners_instance_and_pipeline_are_its_own() {
        let owner = Owner { instance: "a", pipeline: "web" };
        let labels = |i: &str, p: &str| {
            [(INSTANCE_LABEL.to_owned(), i.to_owned()), (PIPELINE_LABEL.to_owned(), p.to_owned())].into_iter().collect()
        };
        assert_eq!(owner.disowned(&labels("a", "web")), None);
        assert!(owner.disowned(&labels("b", "web")).is_some(), "another instance's pipeline of the same name");
        assert!(owner.disowned(&labels("a", "api")).is_some());
        assert!(owner.disowned(&Default::default()).is_some());
    }
}
