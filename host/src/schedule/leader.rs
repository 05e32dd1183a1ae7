//! Leader election on a `coordination.k8s.io` Lease (FA-7), with kube-lease-manager.
//!
//! The Lease is `moor-<instance>` in `[moor] namespace`. The holder renews it before it
//! expires; a standby takes it over once it expires (about the lease duration after the
//! leader died). Losing it stops every run at once (`Controller::set_leader`).

use std::sync::Arc;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::task::JoinHandle;

use super::Controller;

/// A lease being held or waited for.
pub(super) struct Lease {
    /// Dropping the receiver tells the manager to release the lease and stop.
    state: tokio::sync::watch::Receiver<bool>,
    manager: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    follower: JoinHandle<()>,
}

impl Lease {
    /// Starts taking part in the election; the controller follows the outcome.
    pub async fn acquire(controller: &Arc<Controller>) -> Result<Lease, String> {
        let settings = controller.config().settings.clone();
        let seconds = |d: std::time::Duration| d.as_secs().max(1);
        crate::apply::inventory::ensure_namespace(&controller.target.client, &settings.namespace)
            .await
            .map_err(|e| e.to_string())?;
        let manager = LeaseManagerBuilder::new(controller.target.client.clone(), format!("moor-{}", settings.instance))
            .with_namespace(&settings.namespace)
            .with_identity(&controller.options.identity)
            .with_field_manager(format!("moor-lease-{}", controller.options.identity))
            .with_duration(seconds(controller.options.lease_duration))
            .with_grace(seconds(controller.options.lease_grace))
            .build()
            .await
            .map_err(|e| format!("cannot use Lease `{}/moor-{}`: {e}", settings.namespace, settings.instance))?;
        let (state, manager) = manager.watch().await;
        let follower = {
            let mut state = state.clone();
            let controller = controller.clone();
            tokio::spawn(async move {
                loop {
                    let leading = *state.borrow_and_update();
                    controller.set_leader(leading);
                    if state.changed().await.is_err() {
                        controller.set_leader(false);
                        return;
                    }
                }
            })
        };
        Ok(Lease { state, manager, follower })
    }

    /// Gives the lease up so a standby takes over at once.
    pub async fn release(self) {
        self.follower.abort();
        drop(self.state);
        match self.manager.await {
            Ok(Ok(_)) => tracing::info!("lease released"),
            Ok(Err(e)) => tracing::warn!("releasing the lease: {e}"),
            Err(e) => tracing::warn!("releasing the lease: {e}"),
        }
    }
}
