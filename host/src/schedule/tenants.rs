//! The tenants of a running controller: each tenant's config is read from its source when
//! its poll is due, and a new revision that loads is admitted into the platform config and
//! installed; only that tenant's pipelines run again for it. One that does not load is
//! shown (status, log, an Event) and changes nothing: the tenant's last good config keeps
//! running, or, with none, the tenant is held (its pipelines neither run nor are removed).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{Controller, Reconfigure, Trigger};
use crate::config::Config;
use crate::reconcile::{Prepared, admit_tenants, blocking, check_tenant};

/// What the status shows of a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub name: String,
    /// The revision of its config that runs; none while it is held.
    pub revision: Option<String>,
    /// Held: no config of it loads, so its pipelines neither run nor are removed.
    pub held: bool,
    /// Why its newest config does not load.
    pub error: Option<String>,
}

impl Controller {
    /// Installs `platform`, a platform config just loaded, with the configs of its tenants
    /// as last read admitted (each checked again against its new rules).
    pub(super) fn install_platform(self: &Arc<Self>, platform: Config, trigger: Trigger) {
        let platform = Arc::new(platform);
        let config = {
            let mut st = self.lock();
            st.platform = platform.clone();
            let now = Instant::now();
            st.tenant_polls.retain(|name, _| platform.tenant(name).is_some());
            for tenant in &platform.tenants {
                st.tenant_polls.entry(tenant.name.clone()).or_insert(now);
            }
            admit_tenants(&platform, &mut st.tenants)
        };
        self.report_tenants();
        let prepared = blocking(|| self.moor.prepare(config));
        self.install(Arc::new(prepared), trigger, Reconfigure::All);
    }

    /// Reads the config of each tenant whose poll is due; when one changed, installs the
    /// platform config with it, running again only that tenant's pipelines.
    pub(super) async fn reload_tenants(self: &Arc<Self>) {
        let now = Instant::now();
        let (prepared, platform, due): (Arc<Prepared>, Arc<Config>, Vec<usize>) = {
            let mut st = self.lock();
            let platform = st.platform.clone();
            let due: Vec<usize> = (platform.tenants.iter().enumerate())
                .filter(|(_, t)| st.tenant_polls.get(&t.name).is_some_and(|next| *next <= now))
                .map(|(i, _)| i)
                .collect();
            for &i in &due {
                let tenant = &platform.tenants[i];
                let every = tenant.source.poll_interval.0;
                if every.is_zero() {
                    st.tenant_polls.remove(&tenant.name);
                } else {
                    st.tenant_polls.insert(tenant.name.clone(), now + every);
                }
            }
            (st.prepared.clone(), platform, due)
        };
        if due.is_empty() {
            return;
        }
        let interrupt = crate::interrupt::Interrupt::after(crate::reconcile::FETCH_TIMEOUT);
        let mut changed = Vec::new();
        for i in due {
            let read = self.moor.read_tenant(&prepared, i, Some(&self.target.client), &interrupt).await;
            let name = &platform.tenants[i].name;
            let mut st = self.lock();
            if !Arc::ptr_eq(&st.platform, &platform) {
                // A new platform config meanwhile: its tenants are read next.
                return;
            }
            let state = st.tenants.entry(name.clone()).or_default();
            if state.read(read.map_err(|e| e.to_string()), |r| check_tenant(&platform, i, r)) {
                changed.push(name.clone());
            }
        }
        if changed.is_empty() {
            return;
        }
        self.report_tenants();
        let config = admit_tenants(&platform, &mut self.lock().tenants);
        let prepared = blocking(|| self.moor.prepare(config));
        {
            let st = self.lock();
            if !Arc::ptr_eq(&st.platform, &platform) {
                return;
            }
        }
        for name in &changed {
            tracing::info!(tenant = name, "tenant config loaded");
        }
        self.install(Arc::new(prepared), Trigger::Config, Reconfigure::Tenants(changed));
    }

    /// Says, once each, why a tenant's config does not load: in the log and as an Event.
    fn report_tenants(&self) {
        let mut st = self.lock();
        let namespace = st.prepared.config.settings.namespace.clone();
        let errors: Vec<(String, String)> =
            st.tenants.iter().filter_map(|(name, t)| Some((name.clone(), t.error.clone()?))).collect();
        for (name, error) in errors {
            let said = format!("tenant {name}: {error}");
            if st.noted.insert(said) {
                tracing::error!(tenant = name, "tenant config rejected: {error}");
                self.events.config_rejected(&namespace, &self.options.identity, &format!("tenant `{name}`: {error}"));
            }
        }
    }

    /// The tenants, for the status.
    pub(super) fn tenant_statuses(st: &super::State) -> Vec<TenantStatus> {
        let config = &st.prepared.config;
        (st.platform.tenants.iter())
            .map(|tenant| {
                let state = st.tenants.get(&tenant.name);
                let held = !config.admits(&tenant.name);
                TenantStatus {
                    name: tenant.name.clone(),
                    revision: state.and_then(|s| s.good.as_ref()).filter(|_| !held).map(|g| g.revision.clone()),
                    held,
                    error: state.and_then(|s| s.error.clone()),
                }
            })
            .collect()
    }
}
