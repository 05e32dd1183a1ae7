//! The config of a running controller: installing a loaded config, watching the file for
//! changes, and removing from the cluster the pipelines that left it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;

use super::{Controller, Tracked, Trigger};
use crate::apply::RunOptions;
use crate::config::{Config, ConfigRevision, Platform};
use crate::reconcile::{Moor, Prepared, blocking};

impl Controller {
    /// Puts a loaded config in place: new pipelines are due now, the existing ones that
    /// `reconfigure` names get a run (`trigger`), and pipelines gone from the config are
    /// removed from the cluster.
    pub(super) fn install(self: &Arc<Self>, prepared: Arc<Prepared>, trigger: Trigger, reconfigure: Reconfigure) {
        let config = prepared.config.clone();
        let mut st = self.lock();
        let now = Instant::now();
        let names: HashSet<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
        let gone: Vec<String> = st.pipelines.keys().filter(|n| !names.contains(n.as_str())).cloned().collect();
        for name in &gone {
            if let Some(run) = st.pipelines.swap_remove(name).and_then(|t| t.run) {
                run.stop("the pipeline left the config");
            }
        }
        for (spec, pipeline) in config.pipelines.iter().enumerate() {
            let name = pipeline.name.as_str();
            let tracked = match st.pipelines.entry(name.into()) {
                indexmap::map::Entry::Occupied(known) => {
                    let tracked = known.into_mut();
                    tracked.spec = spec;
                    if reconfigure.covers(pipeline) {
                        tracked.slot.reconfigured(now, trigger);
                    }
                    tracked
                }
                indexmap::map::Entry::Vacant(new) => new.insert(Tracked::new(spec, now, trigger)),
            };
            self.follow_gate(tracked, pipeline.gates.clone());
        }
        in_dependency_order(&mut st.pipelines, &config);
        if st.membership.is_some() && st.set_shard_keys(super::shard::core::keys(&config)) {
            self.shard_wake.notify_one();
        }
        st.prepared = prepared;
        st.file.error = None;
        st.file.loaded = SystemTime::now();
        st.next_poll.clear();
        drop(st);
        if !gone.is_empty() && self.is_leader() {
            tokio::spawn(self.clone().remove_gone_pipelines());
        }
        self.wake.notify_one();
    }

    /// Follows a pipeline's `wait_for` gate (a new one when it changed; none without one);
    /// a change of what holds wakes the scheduler, which runs the pipeline once it opens.
    fn follow_gate(self: &Arc<Self>, tracked: &mut Tracked, gates: Vec<crate::wait::Dependency>) {
        if tracked.gate.as_ref().map(|(deps, _)| deps.as_slice()).unwrap_or_default() == gates.as_slice() {
            return;
        }
        tracked.gate = None;
        if gates.is_empty() {
            return;
        }
        let mut gate = crate::wait::Gate::start(Some(&self.target.client), &gates, &crate::wait::Viewpoint::Pipeline);
        let controller = Arc::downgrade(self);
        gate.on_change(move || {
            if let Some(c) = controller.upgrade() {
                c.wake.notify_one();
            }
        });
        tracked.gate = Some((gates, gate));
    }

    /// Watches the config file; a valid change takes effect, an invalid one is shown and
    /// the running config stays (CORE-3). Content is compared, not modification times:
    /// a ConfigMap mount changes by swapping a symlink. When the file is a bootstrap config,
    /// its platform config is read from each new revision of its source, with the same rule.
    pub(super) async fn reload_loop(self: Arc<Self>) {
        let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
        loop {
            self.reload_tenants().await;
            let interval = self.config().settings.reload_interval.0.max(Duration::from_millis(200));
            tokio::time::sleep(interval).await;
            self.reload_file(&builtin);
            self.reload_platform(&builtin).await;
        }
    }

    fn reload_file(self: &Arc<Self>, builtin: &[&str]) {
        let file = &self.options.config_file;
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => return self.reject(format!("{}: cannot read: {e}", file.display()), None),
        };
        if text == self.lock().file.text {
            return;
        }
        match Config::parse(file, text.clone(), builtin) {
            // A bootstrap config: the platform config it points at is read next.
            Ok(config) if config.platform.is_some() => {
                let platform = PlatformSource::new(&self.moor, config, None);
                let mut st = self.lock();
                (st.file.text, st.file.platform) = (text, platform);
                tracing::info!(file = %file.display(), "bootstrap config reloaded");
            }
            Ok(config) => {
                let mut st = self.lock();
                (st.file.text, st.file.platform) = (text, None);
                drop(st);
                tracing::info!(file = %file.display(), "config reloaded");
                self.install_platform(config, Trigger::Config);
            }
            Err(e) => self.reject(e.to_string(), Some(text)),
        }
    }

    /// Reads the platform config from its source's newest revision, when its poll is due,
    /// and installs it when the revision is new and it loads.
    async fn reload_platform(self: &Arc<Self>, builtin: &[&str]) {
        let (bootstrap, platform, attempt) = {
            let mut st = self.lock();
            let Some(source) = st.file.platform.as_mut().filter(|s| s.is_due(Instant::now())) else { return };
            source.polled(Instant::now());
            (source.bootstrap.clone(), source.platform.clone(), source.attempt.clone())
        };
        let interrupt = crate::interrupt::Interrupt::after(crate::reconcile::FETCH_TIMEOUT);
        let snapshot =
            match self.moor.platform_snapshot(&bootstrap, &platform, Some(&self.target.client), &interrupt).await {
                Ok(snapshot) => snapshot,
                Err(e) => return self.reject(e.to_string(), None),
            };
        if let Some(attempt) = attempt.filter(|a| a.revision == snapshot.revision) {
            // Read before: what it gave stands again (the fetch error, if any, is over).
            match attempt.error {
                Some(error) => self.reject(error, None),
                None => self.lock().file.error = None,
            }
            return;
        }
        let loaded = Moor::platform_config(&bootstrap.config, &platform, &snapshot, builtin).map_err(|e| e.to_string());
        {
            let mut st = self.lock();
            let Some(source) = st.file.platform.as_mut().filter(|s| Arc::ptr_eq(&s.bootstrap, &bootstrap)) else {
                // The bootstrap config changed meanwhile: what it points at is read next.
                return;
            };
            let error = loaded.as_ref().err().cloned();
            source.attempt = Some(Attempt { revision: snapshot.revision.clone(), error });
        }
        match loaded {
            Ok(config) => {
                tracing::info!(revision = %crate::source::short(&snapshot.revision), path = platform.path,
                    "platform config loaded");
                self.install_platform(config, Trigger::Config);
            }
            Err(error) => self.reject(error, None),
        }
    }

    fn reject(&self, error: String, text: Option<String>) {
        let mut st = self.lock();
        if st.file.error.as_deref() != Some(&error) {
            tracing::error!("config rejected, the previous one keeps running: {error}");
            self.events.config_rejected(&st.prepared.config.settings.namespace, &self.options.identity, &error);
        }
        st.file.error = Some(error);
        if let Some(text) = text {
            st.file.text = text;
        }
    }

    /// This instance's pipelines with an inventory in the cluster but not in the config are
    /// removed, as `moor apply` does (FA-10), behind `[moor] prune_guard`.
    pub(super) async fn remove_gone_pipelines(self: Arc<Self>) {
        // Sharded, one member does it: the owner of its key.
        if !self.lock().removes_here() {
            return;
        }
        let config = self.config();
        let (removed, notes) = self.moor.remove_gone(&config, &self.target, RunOptions::default(), &|_| {}).await;
        for note in notes {
            if self.lock().noted.insert(note.clone()) {
                tracing::info!("{note}");
            }
        }
        for result in removed {
            match (&result.report, &result.error) {
                (Some(report), _) => tracing::info!(
                    pipeline = result.pipeline,
                    pruned = report.count(crate::apply::Action::Pruned),
                    orphaned = report.count(crate::apply::Action::Orphaned),
                    "removed a pipeline that left the config"
                ),
                (None, error) => tracing::warn!(
                    pipeline = result.pipeline,
                    "cannot remove a pipeline that left the config: {}",
                    error.as_deref().unwrap_or_default()
                ),
            }
        }
    }
}

/// Which pipelines an installed config runs again: all (the platform config changed), or
/// only the pipelines of tenants whose configs changed. New pipelines run either way.
pub(super) enum Reconfigure {
    All,
    Tenants(Vec<String>),
}

impl Reconfigure {
    fn covers(&self, pipeline: &crate::config::PipelineSpec) -> bool {
        match self {
            Reconfigure::All => true,
            Reconfigure::Tenants(names) => pipeline.tenant.as_ref().is_some_and(|t| names.contains(&t.name)),
        }
    }
}

/// A bootstrap config, prepared, and where reading its platform config stands.
pub(super) struct PlatformSource {
    bootstrap: Arc<Prepared>,
    platform: Platform,
    /// How often the source is asked for a new revision (its `poll_interval`; never at 0).
    every: Duration,
    next: Option<Instant>,
    /// The revision read last, and why it did not load: each revision is read once.
    attempt: Option<Attempt>,
}

#[derive(Debug, Clone)]
struct Attempt {
    revision: String,
    error: Option<String>,
}

impl PlatformSource {
    /// `bootstrap`'s platform source, for a bootstrap config, with the revision of the
    /// platform config that runs (`loaded`), if one does.
    pub(super) fn new(moor: &Moor, bootstrap: Config, loaded: Option<&ConfigRevision>) -> Option<PlatformSource> {
        let platform = bootstrap.platform.clone()?;
        let every = bootstrap.platform_source(&platform).poll_interval.0;
        let bootstrap = Arc::new(blocking(|| moor.prepare(Arc::new(bootstrap))));
        let attempt = loaded.map(|r| Attempt { revision: r.revision.clone(), error: None });
        // A bootstrap config just read has its platform config read at once.
        let next =
            if loaded.is_none() { Some(Instant::now()) } else { (!every.is_zero()).then(|| Instant::now() + every) };
        Some(PlatformSource { bootstrap, platform, every, next, attempt })
    }

    fn is_due(&self, now: Instant) -> bool {
        self.next.is_some_and(|next| next <= now)
    }

    fn polled(&mut self, now: Instant) {
        self.next = (!self.every.is_zero()).then(|| now + self.every);
    }
}

/// Sorts the tracked pipelines (all of `config`'s, each knowing its place in it) so that
/// each comes after what it depends on: the scheduler's pass walks them in this order.
fn in_dependency_order(pipelines: &mut IndexMap<String, Tracked>, config: &Config) {
    let mut rank = vec![0; config.pipelines.len()];
    for (position, spec) in config.pipeline_order().into_iter().enumerate() {
        rank[spec] = position;
    }
    pipelines.sort_by_cached_key(|_, tracked| rank.get(tracked.spec).copied().unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn pipelines_are_kept_after_what_they_depend_on() {
        let text = "[[source]]\nname = \"s\"\npath = \".\"\n\n\
                    [[pipeline]]\nname = \"web\"\nsource = \"s\"\ndepends_on = [\"db\"]\n\n\
                    [[pipeline]]\nname = \"db\"\nsource = \"s\"\ndepends_on = [\"crds\"]\n\n\
                    [[pipeline]]\nname = \"crds\"\nsource = \"s\"\n\n\
                    [[pipeline]]\nname = \"docs\"\nsource = \"s\"\n";
        let config = Config::parse(Path::new("moor.toml"), text.into(), &["yaml"]).unwrap();
        let now = Instant::now();
        let mut pipelines: IndexMap<String, Tracked> = config
            .pipelines
            .iter()
            .enumerate()
            .rev()
            .map(|(spec, p)| (p.name.clone(), Tracked::new(spec, now, Trigger::Startup)))
            .collect();
        in_dependency_order(&mut pipelines, &config);
        let order: Vec<&str> = pipelines.keys().map(String::as_str).collect();
        assert_eq!(order, ["crds", "db", "web", "docs"]);
    }
}
