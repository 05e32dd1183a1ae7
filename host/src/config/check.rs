//! Validation of a parsed config: names unique and well formed, references resolved, values
//! in range, plugins pinned, no `depends_on` cycles. Errors carry the key path that
//! `Config::error_at` turns into `file:line:column: key: message`.

use super::{Config, HealthRule, PipelineSpec, Problem, PruneGuard, relative_path};

/// What checking a pipeline resolves: its source, its dependencies, its health rules.
type Resolved = (usize, Vec<usize>, Vec<HealthRule>);

impl Config {
    /// Checks what serde cannot, and resolves each pipeline's source and dependencies.
    pub(super) fn check(&mut self, builtin: &[&str]) -> Result<(), Problem> {
        unique("source", self.sources.iter().map(|s| &s.name))?;
        unique("plugin", self.plugins.iter().map(|p| &p.name))?;
        unique("pipeline", self.pipelines.iter().map(|p| &p.name))?;
        unique("cluster", self.clusters.iter().map(|c| &c.name))?;
        self.check_settings()?;
        self.check_bootstrap()?;
        let known_plugin = |name: &str| builtin.contains(&name) || self.plugin(name).is_some();
        for (i, source) in self.sources.iter().enumerate() {
            if let Some(step) = source.plugin()
                && !known_plugin(&step.uses)
            {
                return Err((format!("source[{i}].plugin.use"), format!("no plugin is named `{}`", step.uses)));
            }
        }
        let resolved: Vec<_> =
            (0..self.pipelines.len()).map(|i| self.check_pipeline(i, &known_plugin)).collect::<Result<_, _>>()?;
        for (pipeline, (source, dependencies, health)) in self.pipelines.iter_mut().zip(resolved) {
            (pipeline.source_index, pipeline.dependencies, pipeline.health_rules) = (source, dependencies, health);
            pipeline.label = pipeline.name.clone();
        }
        self.check_tenant_names()?;
        self.check_cycles()
    }

    /// Tenants are unique, and nothing of the platform's own takes a name a tenant's
    /// would: a pipeline labelled `team-a.web`, a source or plugin named `team-a/…`.
    fn check_tenant_names(&self) -> Result<(), Problem> {
        unique("tenant", self.tenants.iter().map(|t| &t.name))?;
        for tenant in &self.tenants {
            let (label, scoped) = (format!("{}.", tenant.name), format!("{}/", tenant.name));
            let taken = |what: &str, i: usize, prefix: &str| {
                let message = format!("names starting with `{prefix}` are tenant `{}`'s", tenant.name);
                Err((format!("{what}[{i}].name"), message))
            };
            if let Some(i) = self.pipelines.iter().position(|p| p.name.starts_with(&label)) {
                return taken("pipeline", i, &label);
            }
            if let Some(i) = self.sources.iter().position(|s| s.name.starts_with(&scoped)) {
                return taken("source", i, &scoped);
            }
            if let Some(i) = self.plugins.iter().position(|p| p.name.starts_with(&scoped)) {
                return taken("plugin", i, &scoped);
            }
        }
        Ok(())
    }

    /// A bootstrap config (`[config]`) has nothing to run itself: the platform config it
    /// points at has that.
    fn check_bootstrap(&self) -> Result<(), Problem> {
        let Some(platform) = &self.platform else { return Ok(()) };
        let elsewhere = |key: &str| {
            let source = &self.platform_source(platform).name;
            let what = format!(
                "a bootstrap config only says where the platform config is; this goes in `{}` of source `{source}`",
                platform.path
            );
            Err((key.to_owned(), what))
        };
        if !self.pipelines.is_empty() {
            return elsewhere("pipeline[0]");
        }
        if !self.clusters.is_empty() {
            return elsewhere("cluster[0]");
        }
        Ok(())
    }

    fn check_settings(&self) -> Result<(), Problem> {
        let instance = &self.settings.instance;
        let named_well = is_label_value(instance) && instance.len() <= MAX_INSTANCE;
        if !self.settings.instance_derived && !named_well {
            return Err((
                "moor.instance".into(),
                format!(
                    "an instance name is a label value of up to {MAX_INSTANCE} letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
                ),
            ));
        }
        check_guard(&self.settings.prune_guard).map_err(|m| ("moor.prune_guard.max_fraction".into(), m))?;
        if self.settings.workers == 0 {
            return Err(("moor.workers".into(), "at least 1".into()));
        }
        Ok(())
    }

    /// Checks the `i`th pipeline; its source's index, its dependencies' indices and its
    /// health rules, compiled.
    fn check_pipeline(&self, i: usize, known_plugin: &dyn Fn(&str) -> bool) -> Result<Resolved, Problem> {
        let pipeline = &self.pipelines[i];
        let key = format!("pipeline[{i}]");
        if !is_label_value(&pipeline.name) {
            return Err((format!("{key}.name"), "pipeline names are label values: up to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit".into()));
        }
        let health = pipeline
            .health
            .iter()
            .enumerate()
            .map(|(j, check)| check.compile().map_err(|(field, m)| (format!("{key}.health[{j}].{field}"), m)))
            .collect::<Result<Vec<_>, _>>()?;
        check_guard(&pipeline.prune_guard).map_err(|m| (format!("{key}.prune_guard.max_fraction"), m))?;
        if let Some(cluster) = &pipeline.cluster
            && self.cluster(cluster).is_none()
        {
            return Err((format!("{key}.cluster"), format!("no `[[cluster]]` is named `{cluster}`")));
        }
        let Some(source) = self.sources.iter().position(|s| s.name == pipeline.source) else {
            return Err((format!("{key}.source"), format!("no source is named `{}`", pipeline.source)));
        };
        relative_path(&pipeline.path).map_err(|m| (format!("{key}.path"), m))?;
        check_steps(pipeline, known_plugin)?;
        let dependencies = pipeline
            .depends_on
            .iter()
            .enumerate()
            .map(|(j, dep)| {
                let at = format!("{key}.depends_on[{j}]");
                match self.pipelines.iter().position(|p| p.name == *dep) {
                    None => Err((at, format!("no pipeline is named `{dep}`"))),
                    Some(d) if d == i => Err((at, "a pipeline cannot depend on itself".into())),
                    Some(d) => Ok(d),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok((source, dependencies, health))
    }

    fn check_cycles(&self) -> Result<(), Problem> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut marks = vec![Mark::New; self.pipelines.len()];
        let mut stack: Vec<usize> = Vec::new();
        fn visit(i: usize, cfg: &Config, marks: &mut [Mark], stack: &mut Vec<usize>) -> Result<(), Problem> {
            marks[i] = Mark::Active;
            stack.push(i);
            for (j, &d) in cfg.pipelines[i].dependencies.iter().enumerate() {
                match marks[d] {
                    Mark::Active => {
                        let from = stack.iter().position(|&s| s == d).unwrap_or(0);
                        let mut names: Vec<&str> =
                            stack[from..].iter().map(|&s| cfg.pipelines[s].name.as_str()).collect();
                        names.push(&cfg.pipelines[d].name);
                        return Err((
                            format!("pipeline[{i}].depends_on[{j}]"),
                            format!("dependency cycle: {}", names.join(" -> ")),
                        ));
                    }
                    Mark::New => visit(d, cfg, marks, stack)?,
                    Mark::Done => {}
                }
            }
            stack.pop();
            marks[i] = Mark::Done;
            Ok(())
        }
        for i in 0..self.pipelines.len() {
            if marks[i] == Mark::New {
                visit(i, self, &mut marks, &mut stack)?;
            }
        }
        Ok(())
    }
}

/// A pipeline's steps: only notify steps reach the network or filter events, `vars_from`
/// entries are well formed, and every plugin is known. Keys are where the steps are.
fn check_steps(pipeline: &PipelineSpec, known_plugin: &dyn Fn(&str) -> bool) -> Result<(), Problem> {
    for (chain, step) in pipeline.chains() {
        let at = &step.at;
        if chain != "notify" {
            if !step.allow_hosts.is_empty() {
                return Err((format!("{at}.allow_hosts"), "only notify steps may reach the network".into()));
            }
            let filter = if !step.on.is_empty() { Some("on") } else { step.min_severity.map(|_| "min_severity") };
            if let Some(field) = filter {
                return Err((format!("{at}.{field}"), "only notify steps filter events".into()));
            }
        }
        for (k, from) in step.vars_from.iter().enumerate() {
            from.check().map_err(|m| (format!("{at}.vars_from[{k}]"), m))?;
        }
        if !known_plugin(&step.uses) {
            return Err((format!("{at}.use"), format!("no plugin is named `{}`", step.uses)));
        }
    }
    Ok(())
}

fn unique<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> Result<(), Problem> {
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.enumerate() {
        if name.is_empty() {
            return Err((format!("{what}[{i}].name"), "names cannot be empty".into()));
        }
        if !seen.insert(name) {
            return Err((format!("{what}[{i}].name"), format!("a {what} named `{name}` is already defined")));
        }
    }
    Ok(())
}

/// Instance names stay short: they are part of inventory and Lease names.
pub(super) const MAX_INSTANCE: usize = 40;

/// A Kubernetes label value: up to 63 letters, digits, `-`, `_` or `.`, starting and
/// ending with a letter or digit.
pub(super) fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn check_guard(guard: &PruneGuard) -> Result<(), String> {
    if (0.0..=1.0).contains(&guard.max_fraction) { Ok(()) } else { Err("a fraction between 0 and 1".into()) }
}
