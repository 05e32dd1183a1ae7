//! Readiness of live objects (FX-8): kstatus's rules for standard kinds, conditions for
//! custom resources, and a pipeline's own CEL rules over both; and the wait for a set of
//! objects to be ready. A failed rollout is reported at once, with its reason.

mod cel;
mod kstatus;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use cel::Custom;
pub use kstatus::{Health, check};

use super::desired::Desired;
use super::{ApplyError, Progress};
use crate::config::PipelineSpec;
use crate::kube_api::api_for;
use crate::object::ObjKey;

/// How a wait ended: each object's last state (`ready`, what it waits for, or
/// `failed: why`), and the outcome.
#[derive(Debug)]
pub struct Waited {
    /// Each object waited for, and what its status said last.
    pub states: BTreeMap<ObjKey, Health>,
    pub outcome: Result<(), ApplyError>,
}

/// How often objects not ready yet are read again.
const POLL: Duration = Duration::from_millis(500);

/// Waits until every object of `pending` (with its live form) is ready, up to the
/// pipeline's `health_timeout`; stops at once when one fails. The pipeline's CEL rules win
/// over the built-in ones.
pub async fn wait(
    client: &kube::Client,
    pipeline: &PipelineSpec,
    mut pending: Vec<(&Desired, Value)>,
    progress: Progress<'_>,
) -> Waited {
    let timeout = pipeline.health_timeout.0;
    let deadline = Instant::now() + timeout;
    let mut states: BTreeMap<ObjKey, Health> = BTreeMap::new();
    let done = |states, outcome| Waited { states, outcome };
    loop {
        let mut still = Vec::new();
        for (d, value) in pending {
            let state = match pipeline.health_rules.iter().map(Custom).find(|c| c.applies_to(&d.r.group, &d.r.kind)) {
                Some(rule) => rule.check(&value),
                None => check(&d.r.group, &d.r.kind, &value),
            };
            states.insert(d.r.clone(), state.clone());
            match state {
                Health::Ready => {}
                Health::Failed(reason) => {
                    return done(states, Err(ApplyError::Unhealthy { object: d.r.to_string(), reason }));
                }
                Health::Progressing(_) => still.push((d, value)),
            }
        }
        if still.is_empty() {
            return done(states, Ok(()));
        }
        if Instant::now() > deadline {
            let waiting = still.iter().map(|(d, _)| d.r.to_string()).collect();
            return done(states, Err(ApplyError::HealthTimeout { timeout, waiting }));
        }
        progress(&format!("waiting for {} object(s) to be ready", still.len()));
        tokio::time::sleep(POLL).await;
        let mut refreshed = Vec::with_capacity(still.len());
        for (d, old) in still {
            let resolved = d.resolved.as_ref().expect("only resolved objects are waited for");
            let api = api_for(client, &resolved.resource, &d.r.namespace);
            let value = match api.get_opt(&d.r.name).await {
                Ok(Some(o)) => serde_json::to_value(o).unwrap_or_default(),
                Ok(None) => old,
                Err(e) => return done(states, Err(ApplyError::object(d, e))),
            };
            refreshed.push((d, value));
        }
        pending = refreshed;
    }
}
