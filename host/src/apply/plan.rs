//! Deciding what changes: unchanged objects cost nothing, changed ones a server dry-run, so
//! that nothing is written when the server would keep the object as it is. An object no
//! LIST or cache saw is applied as new, and the write's answer tells whether it was there
//! already (an unlabelled object: configured, not created); a GET first only where the
//! answer must come before writing (a dry run, `if-not-present`, `never`, an apply that is
//! not forced, a cluster-scoped object of a namespace-restricted pipeline). The dry-run
//! comparison is shared with `moor diff`.

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::desired::{Desired, Policy, Update};
use super::inventory::Inventory;
use super::observe::{Observed, Seen};
use super::prune::Owner;
pub use super::report::Action;
use super::{ApplyError, CONCURRENCY, compare};
use crate::config::PipelineSpec;
use crate::kube_api::{api_for, is_immutable};
use crate::labels::{INSTANCE_LABEL, MANAGER, PIPELINE_LABEL};

/// The server-side apply parameters of an object: field manager `moor`, forced only when
/// the pipeline says so and the object's policy is `override`.
pub fn patch_params(pipeline: &PipelineSpec, d: &Desired) -> PatchParams {
    let mut pp = PatchParams::apply(MANAGER);
    if pipeline.force && d.policy == Policy::Override {
        pp = pp.force();
    }
    pp
}

/// The object as the server would keep it after applying `d` (a dry-run apply), as it is
/// compared and shown.
pub async fn as_server_would(
    api: &Api<DynamicObject>,
    pipeline: &PipelineSpec,
    d: &Desired,
) -> Result<Value, kube::Error> {
    let answer = api.patch(&d.r.name, &patch_params(pipeline, d).dry_run(), &Patch::Apply(&d.object.value)).await?;
    Ok(compare::for_display(serde_json::to_value(answer).unwrap_or_default()))
}

/// Whether an object no LIST or cache saw must be read before it is written: in a dry run
/// (nothing is written to tell), where its policy depends on whether it exists
/// (`if-not-present`, `never`), where the apply is not forced (another manager's fields
/// are a conflict, found at plan before anything is written), or where a
/// namespace-restricted pipeline may take a cluster-scoped object only when it is its own
/// already. Any other is applied as [`Action::Created`], and the write's answer tells if
/// it was there.
pub fn looks_first(pipeline: &PipelineSpec, d: &Desired, dry_run: bool) -> bool {
    let cluster_scoped = d.resolved.as_ref().is_some_and(|r| !r.namespaced);
    // Only an `override` apply is forced: `if-not-present` and `merge` never are.
    let forced = pipeline.force && d.policy == Policy::Override;
    dry_run || !forced || d.update == Update::Never || (pipeline.namespaces.is_some() && cluster_scoped)
}

/// Whether applying would change `live`: `after` is [`as_server_would`]'s answer.
pub fn changes(live: &Value, after: &Value) -> bool {
    &compare::for_display(live.clone()) != after
}

/// What each object needs, in object order.
pub async fn decide(
    client: &kube::Client,
    pipeline: &PipelineSpec,
    owner: Owner<'_>,
    desired: &[Desired],
    old: &Inventory,
    observed: &Observed,
    dry_run: bool,
) -> Result<Vec<(Desired, Action)>, ApplyError> {
    let decisions = futures::stream::iter(desired.iter().cloned())
        .map(|d| async move {
            let action = decide_one(client, pipeline, owner, &d, old, observed, dry_run).await?;
            Ok((d, action))
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<Result<_, ApplyError>>>()
        .await;
    let mut planned = decisions.into_iter().collect::<Result<Vec<_>, _>>()?;
    planned.sort_by(|a, b| a.0.r.cmp(&b.0.r));
    Ok(planned)
}

async fn decide_one(
    client: &kube::Client,
    pipeline: &PipelineSpec,
    owner: Owner<'_>,
    d: &Desired,
    old: &Inventory,
    observed: &Observed,
    dry_run: bool,
) -> Result<Action, ApplyError> {
    let Some(resolved) = &d.resolved else { return Ok(Action::Created) };
    let api = api_for(client, &resolved.resource, &d.r.namespace);
    let current = match observed.seen(d, &resolved.resource) {
        Seen::Live(v) => Some(v.clone()),
        Seen::Absent => None,
        Seen::Unknown if !looks_first(pipeline, d, dry_run) => return Ok(Action::Created),
        Seen::Unknown => api
            .get_opt(&d.r.name)
            .await
            .map_err(|e| ApplyError::object(d, e))?
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
    };
    // A namespace-restricted pipeline may take cluster-scoped objects only when nobody else
    // manages them (FA-6).
    let ours = |v: &Value| {
        let label = |key: &str| v.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str);
        label(PIPELINE_LABEL) == Some(owner.pipeline) && label(INSTANCE_LABEL) == Some(owner.instance)
    };
    if pipeline.namespaces.is_some() && !resolved.namespaced && current.as_ref().is_some_and(|v| !ours(v)) {
        return Err(ApplyError::Refused {
            object: d.object.display_name(),
            origin: d.object.origin(),
            reason: "exists and is not managed by this namespace-restricted pipeline".into(),
        });
    }
    let Some(current) = current else { return Ok(Action::Created) };
    if d.policy == Policy::IfNotPresent || d.update == Update::Never {
        return Ok(Action::Unchanged);
    }
    let same_in_git = old.get(&d.r).is_some_and(|e| e.hash == d.hash);
    if same_in_git && compare::covers(&current, &compare::stored(&d.object.value)) {
        return Ok(Action::Unchanged);
    }
    // Changed in Git or in the cluster: ask the server what applying would give.
    match as_server_would(&api, pipeline, d).await {
        Ok(after) if changes(&current, &after) => Ok(Action::Configured),
        Ok(_) => Ok(Action::Unchanged),
        Err(e) if d.update == Update::Recreate && is_immutable(&e) => Ok(Action::Recreated),
        Err(e) => Err(ApplyError::object(d, e)),
    }
}
