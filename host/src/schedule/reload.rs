//! The config of a running controller: installing a loaded config, watching the file for
//! changes, and removing from the cluster the pipelines that left it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;

use super::{Controller, Tracked, Trigger};
use crate::apply::RunOptions;
use crate::config::Config;
use crate::reconcile::{Prepared, blocking};

impl Controller {
    /// Puts a loaded config in place: new pipelines are due now, every existing one gets
    /// a run (`trigger`), and pipelines gone from the config are removed from the cluster.
    pub(super) fn install(self: &Arc<Self>, prepared: Arc<Prepared>, trigger: Trigger) {
        let config = prepared.config.clone();
        let mut st = self.lock();
        let now = Instant::now();
        let names: HashSet<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
        let gone: Vec<String> = st.pipelines.keys().filter(|n| !names.contains(n.as_str())).cloned().collect();
        for name in &gone {
            if let Some(run) = st.pipelines.swap_remove(name).and_then(|t| t.abort) {
                run.abort();
            }
        }
        for (spec, pipeline) in config.pipelines.iter().enumerate() {
            let name = pipeline.name.as_str();
            let tracked = match st.pipelines.entry(name.into()) {
                indexmap::map::Entry::Occupied(known) => {
                    let tracked = known.into_mut();
                    tracked.spec = spec;
                    tracked.slot.reconfigured(now, trigger);
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
    /// a ConfigMap mount changes by swapping a symlink.
    pub(super) async fn reload_loop(self: Arc<Self>) {
        let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
        loop {
            let interval = self.config().settings.reload_interval.0.max(Duration::from_millis(200));
            tokio::time::sleep(interval).await;
            let file = &self.options.config_file;
            let text = match tokio::fs::read_to_string(file).await {
                Ok(text) => text,
                Err(e) => {
                    self.reject(format!("{}: cannot read: {e}", file.display()), None);
                    continue;
                }
            };
            if text == self.lock().file.text {
                continue;
            }
            match Config::parse(file, text.clone(), &builtin) {
                Ok(config) => {
                    let prepared = blocking(|| self.moor.prepare(Arc::new(config)));
                    self.lock().file.text = text;
                    tracing::info!(file = %file.display(), "config reloaded");
                    self.install(Arc::new(prepared), Trigger::Config);
                }
                Err(e) => self.reject(e.to_string(), Some(text)),
            }
        }
    }

    fn reject(&self, error: String, text: Option<String>) {
        let mut st = self.lock();
        if st.file.error.as_deref() != Some(&error) {
            tracing::error!("config rejected, the previous one keeps running: {error}");
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
