//! Writing: stage zero (CRDs, Namespaces, cluster roles, classes) applied and waited for,
//! then waves (`moor.dev/wave`) in order, each in kind order and healthy before the next.
//! Objects of one kind rank in one wave are applied concurrently with server-side apply.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch};
use serde_json::Value;

use super::desired::{Desired, Update};
use super::health::{self, Health};
use super::plan::{Action, patch_params};
use super::resources::{self, Resolved, Resources};
use super::{ApplyError, CONCURRENCY, Failed, Progress, at};
use crate::config::PipelineSpec;
use crate::kube_api::{api_for, apply_telling_created, is_immutable, status_code};
use crate::object::ObjKey;
use crate::stage::Stage;

/// An object and what is to be done with it.
pub type Planned = (Desired, Action);

/// The order of writes: stage zero, then waves by number, each a list of kind groups.
#[derive(Debug, Default)]
pub struct Order {
    pub zero: Vec<Planned>,
    pub waves: Vec<Wave>,
}

/// One wave: groups of objects of one kind rank, in kind order.
#[derive(Debug)]
pub struct Wave {
    pub number: i64,
    pub groups: Vec<Vec<Planned>>,
}

impl Order {
    /// Sorts `planned` into stage zero and waves.
    pub fn of(planned: Vec<Planned>) -> Order {
        let (zero, rest): (Vec<_>, Vec<_>) = planned.into_iter().partition(|(d, _)| d.stage_zero);
        let mut by_wave: BTreeMap<i64, Vec<Planned>> = BTreeMap::new();
        for item in rest {
            by_wave.entry(item.0.wave).or_default().push(item);
        }
        let waves = by_wave
            .into_iter()
            .map(|(number, mut items)| {
                items.sort_by_key(|(d, _)| resources::kind_rank(&d.object));
                let mut groups: Vec<Vec<Planned>> = Vec::new();
                for item in items {
                    match groups.last_mut() {
                        Some(group)
                            if resources::kind_rank(&group[0].0.object) == resources::kind_rank(&item.0.object) =>
                        {
                            group.push(item)
                        }
                        _ => groups.push(vec![item]),
                    }
                }
                Wave { number, groups }
            })
            .collect();
        Order { zero, waves }
    }
}

/// One object written (or only dry-run), and the server's answer.
#[derive(Debug)]
pub struct Written {
    pub d: Desired,
    pub action: Action,
    pub answer: Option<Value>,
}

/// What the writes did.
#[derive(Debug, Default)]
pub struct Writes {
    pub written: Vec<Written>,
    /// Kinds resolved after stage zero (defined by the pipeline's own CRDs).
    pub late: HashMap<ObjKey, Resolved>,
}

impl Writes {
    /// The live objects the server answered, by key.
    pub fn answers(&self) -> HashMap<ObjKey, Value> {
        self.written.iter().filter_map(|w| Some((w.d.r.clone(), w.answer.clone()?))).collect()
    }
}

/// Writes `planned` in [`Order`]: stage zero, waited for; then each wave, healthy before
/// the next when the pipeline waits (a wave's health failing is a failure of stage health).
/// What was written before a failure is in the [`Writes`] all the same.
pub async fn write(
    target: &super::Target,
    client: &kube::Client,
    pipeline: &PipelineSpec,
    planned: Vec<Planned>,
    progress: Progress<'_>,
) -> (Writes, Result<(), Failed>) {
    let mut writes = Writes::default();
    let outcome = write_into(&mut writes, target, client, pipeline, planned, progress).await;
    (writes, outcome)
}

async fn write_into(
    writes: &mut Writes,
    target: &super::Target,
    client: &kube::Client,
    pipeline: &PipelineSpec,
    planned: Vec<Planned>,
    progress: Progress<'_>,
) -> Result<(), Failed> {
    let Order { zero, mut waves } = Order::of(planned);

    let changed: Vec<Desired> = zero.iter().filter(|(_, a)| *a != Action::Unchanged).map(|(d, _)| d.clone()).collect();
    apply_group(writes, client, pipeline, zero, progress).await.map_err(at(Stage::Apply))?;
    wait_stage_zero(client, &changed, progress).await.map_err(at(Stage::Apply))?;

    if waves.iter().flat_map(|w| w.groups.iter().flatten()).any(|(d, _)| d.resolved.is_none()) {
        // Kinds defined by this pipeline's CRDs: discovery sees them now, and from now on
        // the next runs and the drift watches do too.
        let fresh = Resources::discover(client).await.map_err(|source| {
            at(Stage::Apply)(ApplyError::Kube { what: "discovery after stage zero".into(), source })
        })?;
        let fresh = std::sync::Arc::new(fresh);
        target.learn(fresh.clone());
        for (d, _) in waves.iter_mut().flat_map(|w| w.groups.iter_mut().flatten()).filter(|(d, _)| d.resolved.is_none())
        {
            let resolved = fresh.resolve(d.object.api_version(), d.object.kind()).ok_or_else(|| {
                at(Stage::Apply)(ApplyError::UnknownKind {
                    object: d.r.to_string(),
                    origin: d.object.origin(),
                    api_version: d.object.api_version().into(),
                    kind: d.object.kind().into(),
                })
            })?;
            writes.late.insert(d.r.clone(), resolved.clone());
            d.resolved = Some(resolved);
        }
    }
    let count = waves.len();
    for (i, wave) in waves.into_iter().enumerate() {
        let objects: Vec<Desired> = wave.groups.iter().flatten().map(|(d, _)| d.clone()).collect();
        for group in wave.groups {
            apply_group(writes, client, pipeline, group, progress).await.map_err(at(Stage::Apply))?;
        }
        // A wave must be healthy before the next one starts.
        if pipeline.wait && i + 1 < count {
            progress(&format!("wave {} applied; waiting for it to be healthy", wave.number));
            let answers = writes.answers();
            let pending = objects.iter().filter_map(|d| Some((d, answers.get(&d.r)?.clone()))).collect();
            health::wait(client, pipeline, pending, progress).await.outcome.map_err(at(Stage::Health))?;
        }
    }
    Ok(())
}

/// Applies a group of objects concurrently; unchanged ones are not sent. What was written
/// goes into `writes`, also when another object of the group failed.
async fn apply_group(
    writes: &mut Writes,
    client: &kube::Client,
    pipeline: &PipelineSpec,
    group: Vec<Planned>,
    progress: Progress<'_>,
) -> Result<(), ApplyError> {
    let results = futures::stream::iter(group)
        .map(|(d, action)| async move {
            if action == Action::Unchanged {
                return Ok(Written { d, action, answer: None });
            }
            let resolved = d.resolved.clone().expect("resolved before applying");
            let api = api_for(client, &resolved.resource, &d.r.namespace);
            let mut pp = patch_params(pipeline, &d);
            if d.dry_run_only {
                pp = pp.dry_run();
            }
            if action == Action::Recreated {
                delete_and_wait(&api, &d.r.name).await.map_err(|e| ApplyError::object(&d, e))?;
            }
            let (action, answer) = match server_side_apply(&api, &d, &pp, action).await {
                Ok(done) => done,
                Err(e) if d.update == Update::Recreate && is_immutable(&e) => {
                    delete_and_wait(&api, &d.r.name).await.map_err(|e| ApplyError::object(&d, e))?;
                    let obj = api
                        .patch(&d.r.name, &pp, &Patch::Apply(&d.object.value))
                        .await
                        .map_err(|e| ApplyError::object(&d, e))?;
                    (Action::Recreated, obj)
                }
                Err(e) => return Err(ApplyError::object(&d, e)),
            };
            Ok(Written { d, action, answer: Some(serde_json::to_value(answer).unwrap_or_default()) })
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let written = &mut writes.written;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(w) => {
                if w.action != Action::Unchanged {
                    progress(&format!("{} {}", w.d.r, w.action.as_str()));
                }
                written.push(w);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Applies `d`. An object planned as new that the server already had (its answer is 200,
/// not 201) was configured: it existed without this pipeline's labels.
async fn server_side_apply(
    api: &Api<DynamicObject>,
    d: &Desired,
    pp: &kube::api::PatchParams,
    planned: Action,
) -> Result<(Action, DynamicObject), kube::Error> {
    let (created, answer) = apply_telling_created(api, &d.r.name, pp, &d.object.value).await?;
    let action = match planned {
        Action::Created if !created => Action::Configured,
        other => other,
    };
    Ok((action, answer))
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

/// How long stage zero's CRDs and Namespaces may take to be ready.
const STAGE_ZERO_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until the CRDs of stage zero are Established and its namespaces exist.
async fn wait_stage_zero(client: &kube::Client, objects: &[Desired], progress: Progress<'_>) -> Result<(), ApplyError> {
    let deadline = Instant::now() + STAGE_ZERO_TIMEOUT;
    for d in objects.iter().filter(|d| d.object.kind() == "CustomResourceDefinition" || d.object.kind() == "Namespace")
    {
        let Some(resolved) = &d.resolved else { continue };
        let api = api_for(client, &resolved.resource, "");
        loop {
            let live = api.get_opt(&d.r.name).await.map_err(|e| ApplyError::object(d, e))?;
            let value = live.map(|o| serde_json::to_value(o).unwrap_or_default());
            match value.as_ref().map(|v| health::check(&d.r.group, &d.r.kind, v)) {
                Some(Health::Ready) => break,
                Some(Health::Failed(reason)) => return Err(ApplyError::Unhealthy { object: d.r.to_string(), reason }),
                _ if Instant::now() > deadline => {
                    return Err(ApplyError::HealthTimeout {
                        timeout: STAGE_ZERO_TIMEOUT,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::object::Object;

    fn planned(kind: &str, name: &str, wave: i64) -> Planned {
        let api = if kind == "Deployment" { "apps/v1" } else { "v1" };
        let object = Object::new(json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}}), "", 0);
        let d = Desired {
            r: object.key(),
            stage_zero: resources::is_stage_zero(&object),
            object,
            resolved: None,
            wave,
            update: Update::Update,
            policy: super::super::desired::Policy::Override,
            hash: String::new(),
            dry_run_only: false,
        };
        (d, Action::Created)
    }

    fn names(groups: &[Vec<Planned>]) -> Vec<Vec<String>> {
        groups.iter().map(|g| g.iter().map(|(d, _)| d.r.to_string()).collect()).collect()
    }

    #[test]
    fn stage_zero_goes_first_then_waves_in_order_each_grouped_by_kind_in_kind_order() {
        let order = Order::of(vec![
            planned("Deployment", "web", 0),
            planned("ConfigMap", "late", 5),
            planned("ConfigMap", "settings", 0),
            planned("Namespace", "team", 3),
            planned("ServiceAccount", "runner", 0),
            planned("Deployment", "first", -1),
            planned("ConfigMap", "more", 0),
        ]);
        // A Namespace is stage zero whatever its wave.
        assert_eq!(names(&[order.zero]), [["Namespace/team"]]);
        let waves: Vec<i64> = order.waves.iter().map(|w| w.number).collect();
        assert_eq!(waves, [-1, 0, 5]);
        assert_eq!(
            names(&order.waves[1].groups),
            [vec!["ServiceAccount/runner"], vec!["ConfigMap/settings", "ConfigMap/more"], vec!["Deployment/web"]]
        );
    }
}
