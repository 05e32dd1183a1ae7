//! The tenants' configs (`[[tenant]]`): each read from the newest revision of its source,
//! checked against the tenant's rules and admitted into the platform config.
//!
//! A tenant whose newest config does not load keeps running its last good one, checked
//! again against the platform's current rules; one with none that loads is held: its
//! pipelines neither run nor are removed. Either way its error is shown, and no other
//! tenant and no pipeline of the platform's own is disturbed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::platform::read_file;
use super::{Moor, Prepared, SourcedConfigError};
use crate::config::Config;
use crate::interrupt::Interrupt;

/// A tenant's config as read from its source: kept so that a new platform config can check
/// it again against the tenant's new rules.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRead {
    pub revision: String,
    /// The snapshot it was read from, where its relative paths point.
    root: PathBuf,
    text: String,
}

/// What is known of one tenant's config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantState {
    /// The newest revision that loaded: what runs.
    pub good: Option<TenantRead>,
    /// The newest revision read, whether it loaded or not.
    pub seen: Option<String>,
    /// Why the newest revision does not load (or the good one no longer does, under the
    /// platform's current rules); `None` when what runs is the newest.
    pub error: Option<String>,
}

impl TenantState {
    /// Takes in what reading the tenant's newest revision gave, checked by `loads`;
    /// whether anything changed.
    pub fn read(
        &mut self,
        read: Result<TenantRead, String>,
        loads: impl FnOnce(&TenantRead) -> Result<(), String>,
    ) -> bool {
        let before = self.clone();
        match read {
            Ok(read) if self.seen.as_ref() == Some(&read.revision) => {
                // The same revision again: what it gave stands (a fetch error is over).
                if self.good.as_ref().is_some_and(|good| good.revision == read.revision) {
                    self.error = None;
                }
            }
            Ok(read) => {
                self.seen = Some(read.revision.clone());
                match loads(&read) {
                    Ok(()) => (self.good, self.error) = (Some(read), None),
                    Err(error) => self.error = Some(error),
                }
            }
            Err(error) => self.error = Some(error),
        }
        *self != before
    }
}

/// Every tenant's state, by name.
pub type Tenants = BTreeMap<String, TenantState>;

impl Moor {
    /// Tenant `tenant`'s config as its source's newest revision has it (not yet checked).
    pub async fn read_tenant(
        &self,
        platform: &Prepared,
        tenant: usize,
        client: Option<&kube::Client>,
        interrupt: &Interrupt,
    ) -> Result<TenantRead, SourcedConfigError> {
        let rules = &platform.config.tenants[tenant];
        let snapshot = self.config_snapshot(platform, &rules.source, client, interrupt).await?;
        let text = read_file(&snapshot, &rules.source.name, &rules.config)?;
        Ok(TenantRead { revision: snapshot.revision, root: snapshot.root, text })
    }

    /// `platform` with every tenant's config read now and admitted, for a one-shot command;
    /// and what did not load, by tenant.
    pub async fn with_tenants(&self, platform: Config, client: Option<&kube::Client>) -> (Config, Tenants) {
        let mut tenants = Tenants::new();
        if platform.tenants.is_empty() {
            return (platform, tenants);
        }
        let prepared = self.prepare(Arc::new(platform));
        let interrupt = Interrupt::after(super::FETCH_TIMEOUT);
        for (i, rules) in prepared.config.tenants.iter().enumerate() {
            let read = self.read_tenant(&prepared, i, client, &interrupt).await.map_err(|e| e.to_string());
            tenants.entry(rules.name.clone()).or_default().read(read, |r| check_tenant(&prepared.config, i, r));
        }
        let config = admit_tenants(&prepared.config, &mut tenants);
        (Arc::unwrap_or_clone(config), tenants)
    }
}

/// `platform` with the good config of each of its tenants admitted, checked against the
/// platform's rules as they are now; a tenant whose config does not load is held, with
/// its error in `tenants`. States of tenants the platform no longer has are dropped.
/// Without tenants, `platform` itself: a platform of 10,000 pipelines is not held twice.
pub fn admit_tenants(platform: &Arc<Config>, tenants: &mut Tenants) -> Arc<Config> {
    tenants.retain(|name, _| platform.tenant(name).is_some());
    if platform.tenants.is_empty() {
        return platform.clone();
    }
    let mut config = Config::clone(platform);
    for (i, rules) in platform.tenants.iter().enumerate() {
        let state = tenants.entry(rules.name.clone()).or_default();
        let Some(good) = &state.good else { continue };
        match platform.parse_tenant(i, &good.root, &good.revision, good.text.clone()) {
            Ok(admitted) => config.admit(admitted),
            Err(e) => state.error = Some(e.to_string()),
        }
    }
    Arc::new(config)
}

/// Whether `read` loads as tenant `tenant`'s config of `platform`; else why not.
pub fn check_tenant(platform: &Config, tenant: usize, read: &TenantRead) -> Result<(), String> {
    platform.parse_tenant(tenant, &read.root, &read.revision, read.text.clone()).map(drop).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(revision: &str, text: &str) -> TenantRead {
        TenantRead { revision: revision.into(), root: PathBuf::from("/s/a"), text: text.into() }
    }

    #[test]
    fn a_revision_that_does_not_load_leaves_the_good_one_running_and_is_shown() {
        let mut state = TenantState::default();
        let loads = |r: &TenantRead| if r.text == "ok" { Ok(()) } else { Err(format!("{}: broken", r.revision)) };
        assert!(state.read(Ok(read("1a", "ok")), loads));
        assert_eq!((state.good.as_ref().map(|g| g.revision.as_str()), state.error.as_deref()), (Some("1a"), None));
        assert!(state.read(Ok(read("2b", "bad")), loads));
        assert_eq!(state.good.as_ref().map(|g| g.revision.as_str()), Some("1a"));
        assert_eq!(state.error.as_deref(), Some("2b: broken"));
        // Read again, the same broken revision changes nothing and is not checked again.
        assert!(!state.read(Ok(read("2b", "bad")), |_| panic!("checked again")));
        // A fetch error is shown; the good config still runs.
        assert!(state.read(Err("cannot fetch".into()), loads));
        assert_eq!((state.good.is_some(), state.error.as_deref()), (true, Some("cannot fetch")));
        assert!(state.read(Ok(read("3c", "ok")), loads));
        assert_eq!((state.good.as_ref().map(|g| g.revision.as_str()), state.error.as_deref()), (Some("3c"), None));
        // The good revision read again after a fetch error clears the error.
        state.read(Err("cannot fetch".into()), loads);
        assert!(state.read(Ok(read("3c", "ok")), loads));
        assert_eq!(state.error, None);
    }

    const PLATFORM: &str = "[[source]]\nname = \"s\"\npath = \".\"\n[[pipeline]]\nname = \"own\"\nsource = \"s\"\n\
                            [[tenant]]\nname = \"a\"\nsource = { path = \"a\" }\nnamespaces = [\"a\"]\n\
                            service_account = \"a/ci\"\nplugins = [\"yaml\"]\n\
                            [[tenant]]\nname = \"b\"\nsource = { path = \"b\" }\nnamespaces = [\"b\"]\n\
                            service_account = \"b/ci\"\nplugins = [\"yaml\"]\n";
    const TEAM: &str = "[[source]]\nname = \"s\"\npath = \".\"\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\n";

    fn platform(text: &str) -> Config {
        Config::parse(std::path::Path::new("/p/moor.toml"), text.into(), &["yaml"]).unwrap()
    }

    #[test]
    fn each_tenant_is_admitted_or_held_on_its_own_and_rechecked_under_new_rules() {
        let config = Arc::new(platform(PLATFORM));
        let mut tenants = Tenants::new();
        let a = tenants.entry("a".into()).or_default();
        assert!(a.read(Ok(read("1a", TEAM)), |r| check_tenant(&config, 0, r)));
        let b = tenants.entry("b".into()).or_default();
        assert!(b.read(Ok(read("1b", "[[pipeline]]\nname = 1\n")), |r| check_tenant(&config, 1, r)));
        let admitted = admit_tenants(&config, &mut tenants);
        let names: Vec<&str> = admitted.pipelines.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["own", "a/web"]);
        assert!(tenants["b"].error.as_deref().unwrap().contains("source `tenant/b` at 1b"), "{tenants:?}");
        // Tenant b has no config that loads: its inventories are held, a's are not.
        assert!(admitted.holds("b.web") && !admitted.holds("a.web") && !admitted.holds("own"));
        // The platform narrows a's namespaces: its good config no longer loads, so it is
        // held too, with the reason.
        let narrowed =
            PLATFORM.replace("namespaces = [\"a\"]", "namespaces = [\"a-*\"]").replace("\"a/ci\"", "\"a-x/ci\"");
        let narrowed = Arc::new(platform(&narrowed));
        let admitted = admit_tenants(&narrowed, &mut tenants);
        assert_eq!(admitted.pipelines.len(), 1);
        assert!(admitted.holds("a.web"));
        assert!(tenants["a"].error.as_deref().unwrap().contains("target_namespace"), "{tenants:?}");
        // A tenant the platform drops is forgotten, and no longer held.
        let dropped = Arc::new(platform(PLATFORM.split("[[tenant]]\nname = \"b\"").next().unwrap()));
        let admitted = admit_tenants(&dropped, &mut tenants);
        assert_eq!(tenants.keys().collect::<Vec<_>>(), ["a"]);
        assert!(!admitted.holds("b.web"));
    }
}
