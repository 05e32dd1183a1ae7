//! Sharding across replicas (`moor run --shard`): replicas of one Deployment split the
//! pipelines between them, with `coordination.k8s.io` Leases as the only coordination.
//!
//! Each member holds its own Lease, `moor-<instance>-shard-<digest of its identity>`,
//! labelled `moor.dev/shard-of=<instance>`, renewed every third of the lease duration. Its
//! annotation `moor.dev/view` publishes the [`View`] the member acts on. A member lists the
//! shard's Leases on each renewal; those not renewed within their duration are gone.
//! Pipelines are assigned by rendezvous hashing over the live members ([`core`]).
//!
//! Fencing (no pipeline run by two members at once) has two parts:
//! - **The handshake.** A member stops the runs of pipelines it no longer owns before it
//!   publishes its new view, and starts a pipeline only when no other live member's
//!   published view gives that pipeline to that member.
//! - **Self-fencing.** A member that could not renew its Lease for the lease duration less
//!   the renewal grace stops every run, before the others count it gone (as a leader that
//!   loses its Lease does). This assumes clocks that agree to within the grace.
//!
//! On SIGTERM a member deletes its Lease, so the others take over at their next renewal.

pub mod core;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use self::core::{Member, Membership, Placement, View, Work};
use super::Controller;
use crate::labels::{SHARD_OF_LABEL, VIEW_ANNOTATION};

/// The Lease of one member.
fn lease_name(instance: &str, identity: &str) -> String {
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(identity.as_bytes()).into();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("moor-{instance}-shard-{hex}")
}

/// The other live members, from the shard's Leases.
fn live_members(leases: &[Lease], me: &str, now_ms: i64) -> Vec<Member> {
    leases
        .iter()
        .filter_map(|lease| {
            let spec = lease.spec.as_ref()?;
            let identity = spec.holder_identity.clone()?;
            let renewed = spec.renew_time.as_ref()?.0.as_millisecond();
            let expires = renewed + i64::from(spec.lease_duration_seconds?) * 1000;
            if identity == me || expires <= now_ms {
                return None;
            }
            // A view that cannot be read agrees with nothing: nothing runs until it is fixed.
            let view = lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(VIEW_ANNOTATION))
                .and_then(|v| serde_json::from_str::<View>(v).ok())
                .unwrap_or_else(|| View { members: Vec::new(), keys: "unreadable".into() });
            Some(Member { identity, view })
        })
        .collect()
}

/// What the shard looks like from one member, for the status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardStatus {
    pub identity: String,
    /// The live members this one sees (itself included).
    pub members: Vec<String>,
    /// The pipelines it owns.
    pub owned: Vec<String>,
}

impl Controller {
    /// Takes part in the shard until stopped: renews this member's Lease, follows the
    /// others' and acts on the membership.
    pub(super) async fn shard_loop(self: Arc<Self>) {
        let settings = self.config().settings.clone();
        let api: Api<Lease> = Api::namespaced(self.target.client.clone(), &settings.namespace);
        let name = lease_name(&settings.instance, &self.options.identity);
        let duration = self.options.lease_duration;
        let period = (duration / 3).max(Duration::from_millis(500));
        let mut renewed: Option<Instant> = None;
        // A member settles a lease duration after it first published: by then it has seen
        // every live member, also those started with it.
        let mut first: Option<Instant> = None;
        if let Err(e) = crate::apply::inventory::ensure_namespace(&self.target.client, &settings.namespace).await {
            tracing::warn!("shard: {e}");
        }
        loop {
            let settled = first.is_some_and(|at| at.elapsed() >= duration);
            match self.shard_tick(&api, &name, &settings.instance, settled).await {
                Ok(()) => {
                    renewed = Some(Instant::now());
                    first = first.or(renewed);
                }
                Err(e) => tracing::warn!(lease = name, "shard: cannot renew this member's Lease: {e}"),
            }
            // Self-fencing: stop before the others may count this member gone.
            let fresh = renewed.is_some_and(|at| at.elapsed() + self.options.lease_grace < duration);
            self.set_leader(fresh);
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = self.shard_wake.notified() => {}
            }
            if self.lifecycle.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
        }
    }

    /// One round: the live members, the view to act on (stopping what moves away first),
    /// then this member's Lease renewed with that view.
    async fn shard_tick(
        self: &Arc<Self>,
        api: &Api<Lease>,
        name: &str,
        instance: &str,
        settled: bool,
    ) -> kube::Result<()> {
        let leases = api.list(&ListParams::default().labels(&format!("{SHARD_OF_LABEL}={instance}"))).await?;
        let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
        let others = live_members(&leases.items, &self.options.identity, now_ms);
        let (view, removals) = self.follow_membership(others, settled);
        let lease = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "labels": { SHARD_OF_LABEL: instance },
                "annotations": { VIEW_ANNOTATION: serde_json::to_string(&view).expect("a view serializes") },
            },
            "spec": {
                "holderIdentity": self.options.identity,
                "leaseDurationSeconds": self.options.lease_duration.as_secs().max(1),
                "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
            },
        });
        let params = PatchParams::apply(&format!("moor-shard-{}", self.options.identity)).force();
        api.patch(name, &params, &Patch::Apply(&lease)).await?;
        if removals {
            tokio::spawn(self.clone().remove_gone_pipelines());
        }
        Ok(())
    }

    /// Acts on the members now seen: the new view, the runs of pipelines that move away
    /// stopped, the pipelines that move here due now. Returns the view to publish, and
    /// whether this member just became the one that removes pipelines gone from the config.
    fn follow_membership(&self, others: Vec<Member>, settled: bool) -> (View, bool) {
        let now = Instant::now();
        let mut st = self.lock();
        let keys = st.shard_keys.clone();
        let Some(before) = st.membership.clone() else { return (View::default(), false) };
        let view = before.next_view(&others, &st.keys_digest);
        let after = Membership { me: before.me.clone(), mine: view.clone(), others, settled };
        let me = Some(after.me.as_str());
        let key = |name: &str| keys.get(name).cloned().unwrap_or_else(|| name.to_owned());
        let mut owned = 0;
        for (name, tracked) in st.pipelines.iter_mut() {
            let key = key(name);
            let (was, is) = (before.owner(Work::Pipelines(&key)) == me, after.owner(Work::Pipelines(&key)) == me);
            owned += usize::from(is);
            if was && !is {
                if let Some(run) = tracked.run.take() {
                    let why = "moved to another member of the shard";
                    run.stop(why);
                    tracked.slot.stop(now, why);
                }
            } else if is && !was {
                tracked.slot.due_now(now);
            }
        }
        let removals = after.may_run(Work::Removals) && !before.may_run(Work::Removals);
        // Placed once per round, so the scheduler's checks are lookups.
        st.placements =
            st.pipelines.keys().map(|name| (name.clone(), after.place(Work::Pipelines(&key(name))))).collect();
        st.removals = after.place(Work::Removals);
        if before.mine != after.mine {
            tracing::info!(members = ?after.mine.members, owned, "shard membership changed");
        }
        self.metrics.shard_members.set(after.mine.members.len() as i64);
        self.metrics.shard_pipelines.set(owned as i64);
        st.membership = Some(after);
        drop(st);
        self.wake.notify_one();
        (view, removals)
    }

    /// Leaves the shard: deletes this member's Lease so the others take over at once.
    pub(super) async fn leave_shard(&self) {
        let settings = self.config().settings.clone();
        let api: Api<Lease> = Api::namespaced(self.target.client.clone(), &settings.namespace);
        let name = lease_name(&settings.instance, &self.options.identity);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(lease = name, "left the shard"),
            Err(e) => tracing::warn!(lease = name, "leaving the shard: {e}"),
        }
    }
}

impl super::State {
    /// Where `pipeline` runs as of the last round; `None` when not sharded. A pipeline
    /// newer than the last round waits for the next.
    fn placement(&self, pipeline: &str) -> Option<&Placement> {
        self.membership.as_ref()?;
        Some(self.placements.get(pipeline).unwrap_or(&Placement::Arriving))
    }

    /// Whether this member may run `pipeline` now (always, when not sharded).
    pub(super) fn runs_here(&self, pipeline: &str) -> bool {
        self.placement(pipeline).is_none_or(|p| *p == Placement::Here)
    }

    /// Whether this member may remove the pipelines gone from the config now (always, when
    /// not sharded).
    pub(super) fn removes_here(&self) -> bool {
        self.membership.is_none() || self.removals == Placement::Here
    }

    /// Whether this member owns `pipeline` in its view (always, when not sharded).
    pub(super) fn owns(&self, pipeline: &str) -> bool {
        !matches!(self.placement(pipeline), Some(Placement::Elsewhere(_)))
    }

    /// Who runs `pipeline` when it is not this member.
    pub(super) fn owner_elsewhere(&self, pipeline: &str) -> Option<&str> {
        match self.placement(pipeline)? {
            Placement::Elsewhere(owner) => Some(owner),
            _ => None,
        }
    }

    /// Sets the config's shard keys; a change is published at once.
    pub(super) fn set_shard_keys(&mut self, keys: BTreeMap<String, String>) -> bool {
        let digest = core::keys_digest(&keys);
        self.shard_keys = keys;
        std::mem::replace(&mut self.keys_digest, digest) != self.keys_digest
    }

    pub(super) fn shard_status(&self) -> Option<ShardStatus> {
        let m = self.membership.as_ref()?;
        let mut owned: Vec<String> = self.pipelines.keys().filter(|p| self.owns(p)).cloned().collect();
        owned.sort();
        Some(ShardStatus { identity: m.me.clone(), members: m.mine.members.clone(), owned })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn lease(identity: &str, renewed_ms: i64, view: Option<&str>) -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": lease_name("default", identity), "annotations": view.map(|v| serde_json::json!({VIEW_ANNOTATION: v}))},
            "spec": {
                "holderIdentity": identity,
                "leaseDurationSeconds": 15,
                "renewTime": Timestamp::from_millisecond(renewed_ms).unwrap().to_string(),
            }
        }))
        .unwrap()
    }

    #[test]
    fn live_members_are_the_others_renewed_within_their_duration() {
        let now = 1_800_000_000_000;
        let view = r#"{"members":["a","b"],"keys":"k"}"#;
        let leases = [
            lease("me", now, Some(view)),
            lease("a", now - 14_000, Some(view)),
            lease("gone", now - 16_000, Some(view)),
            lease("b", now, Some("not json")),
        ];
        let live = live_members(&leases, "me", now);
        assert_eq!(live.iter().map(|m| m.identity.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(live[0].view.members, ["a", "b"]);
        assert_eq!(live[1].view.keys, "unreadable", "an unreadable view agrees with nothing");
    }

    #[test]
    fn lease_names_are_valid_and_differ_by_identity() {
        let name = lease_name("default", "moor-7d9f/Pod:1");
        assert!(name.starts_with("moor-default-shard-") && name.len() == "moor-default-shard-".len() + 12);
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert_ne!(name, lease_name("default", "moor-7d9f/Pod:2"));
    }
}
