//! Removing whole pipelines: those that left their config (FA-10), behind the instance's
//! prune guard, and those `moor delete` is told to delete.
//!
//! Only the instance that owns an inventory ever acts on it; inventories of other instances
//! are counted and left alone.

use std::collections::{BTreeMap, HashSet};

use super::inventory::{Inventory, Store};
use super::prune::{self, Deletion, Owner, Pruner};
use super::{Action, ApplyError, ObjectOutcome, Progress, Report, Target};
use crate::config::{Config, DeletionPolicy, PruneGuard};

/// Why a pipeline is being removed.
#[derive(Debug, Clone, Copy)]
pub enum Why<'a> {
    /// It left the config: its `deletion_policy` (kept in the inventory) decides, and the
    /// guard's size check has already passed for the whole removal.
    LeftConfig,
    /// `moor delete`: its objects are deleted whatever the deletion policy; CRDs and
    /// Namespaces only when `guard` (the pipeline's own, when still configured) allows.
    Deleted { guard: &'a PruneGuard, dry_run: bool },
}

/// What a look at the cluster's inventories found for one instance.
#[derive(Debug, Default)]
pub struct Census {
    /// This instance's pipelines with an inventory, and how many objects each names.
    pub ours: BTreeMap<String, usize>,
    /// Other instances with inventories in the same namespace, and how many pipelines each has.
    pub others: BTreeMap<String, usize>,
}

impl Census {
    /// One LIST of the metadata of the namespace's inventories (a read of an inventory only
    /// where an older version did not note its size).
    pub async fn take(store: &Store) -> Result<Census, ApplyError> {
        let mut census = Census::default();
        for listed in store.list().await? {
            if listed.instance != store.instance() {
                *census.others.entry(listed.instance).or_default() += 1;
                continue;
            }
            let objects = match listed.objects {
                Some(n) => n,
                None => store.load(&listed.pipeline).await?.len(),
            };
            census.ours.insert(listed.pipeline, objects);
        }
        Ok(census)
    }

    /// Objects every inventory of this instance names.
    pub fn managed(&self) -> usize {
        self.ours.values().sum()
    }

    /// A line saying which other instances were seen and left alone, if any.
    pub fn others_note(&self, namespace: &str) -> Option<String> {
        (!self.others.is_empty()).then(|| {
            let list: Vec<String> = self.others.iter().map(|(i, n)| format!("{i} ({n} pipeline(s))")).collect();
            format!("inventories of other instances in {namespace} were left alone: {}", list.join(", "))
        })
    }
}

/// The pipelines of this instance that have an inventory and are not in `configured`.
/// Their deletions are checked together against `[moor] prune_guard`, as a share of every
/// object the instance manages; a refusal removes nothing.
pub async fn remove_gone(
    target: &Target,
    config: &Config,
    census: &Census,
    configured: &HashSet<&str>,
    allow_mass_prune: bool,
    progress: Progress<'_>,
) -> Vec<(String, Result<Report, ApplyError>)> {
    let settings = &config.settings;
    let store = target.inventories(settings);
    let mut gone = Vec::new();
    for pipeline in census.ours.keys().filter(|p| !configured.contains(p.as_str())) {
        match store.load(pipeline).await {
            Ok(inventory) => gone.push((pipeline.clone(), inventory)),
            Err(e) => return vec![(pipeline.clone(), Err(e.into()))],
        }
    }
    let deleting =
        gone.iter().filter(|(_, inv)| inv.deletion_policy == DeletionPolicy::Delete).map(|(_, inv)| inv.len()).sum();
    let deletion = Deletion { deleting, total: census.managed(), empty_render: false };
    if let Err(refusal) = prune::check(&settings.prune_guard, "[moor] prune_guard", deletion, allow_mass_prune) {
        let names: Vec<&str> = gone.iter().map(|(p, _)| p.as_str()).collect();
        let reason = format!("removing pipeline(s) {} that left the config: {refusal}", names.join(", "));
        return gone.into_iter().map(|(p, _)| (p, Err(ApplyError::PruneRefused(reason.clone())))).collect();
    }
    let mut results = Vec::new();
    for (pipeline, inventory) in gone {
        let result = remove(target, config, &pipeline, &inventory, Why::LeftConfig, progress).await;
        results.push((pipeline, result));
    }
    results
}

/// Removes one pipeline of this instance: deletes (or orphans) what `inventory` names, then
/// the inventory. What could not be deleted stays in it.
pub async fn remove(
    home: &Target,
    config: &Config,
    pipeline: &str,
    inventory: &Inventory,
    why: Why<'_>,
    progress: Progress<'_>,
) -> Result<Report, ApplyError> {
    let settings = &config.settings;
    let store = home.inventories(settings);
    // Its objects are in the cluster its inventory names.
    let target = &home.place(config, (!inventory.cluster.is_empty()).then_some(inventory.cluster.as_str())).await?;
    let mut report = Report::default();
    let refs: Vec<_> = inventory.refs().cloned().collect();
    let default_guard = PruneGuard::default();
    let guard = match why {
        Why::LeftConfig if inventory.deletion_policy == DeletionPolicy::Orphan => {
            for r in refs {
                report.push_why(r, Action::Orphaned, "the pipeline was removed with deletion_policy = orphan".into());
            }
            store.delete(pipeline).await?;
            return Ok(report);
        }
        Why::LeftConfig => &default_guard,
        Why::Deleted { guard, dry_run: true } => {
            report.dry_run = true;
            for r in refs {
                match prune::protected(guard, &r) {
                    Some(why) => report.push_why(r, Action::Orphaned, why),
                    None => report.push(ObjectOutcome::new(r, Action::Pruned)),
                }
            }
            return Ok(report);
        }
        Why::Deleted { guard, .. } => guard,
    };
    let pruner = Pruner { target, client: &target.client, owner: Owner { instance: &settings.instance, pipeline } };
    let mut deleted = pruner.delete(guard, refs, progress).await;
    let failures = std::mem::take(&mut deleted.failed);
    report.record_pruned(deleted);
    if failures.is_empty() {
        store.delete(pipeline).await?;
        return Ok(report);
    }
    store.save(pipeline, &inventory.keeping(failures.iter().map(|(r, _)| r))).await?;
    Err(ApplyError::Prune(failures.into_iter().map(|(r, e)| format!("{r}: {e}")).collect()))
}
