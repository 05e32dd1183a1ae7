//! Validation of a parsed config: names unique and well formed, references resolved, values
//! in range, plugins pinned, no `depends_on` cycles. Errors carry the span and key path
//! that `Config::parse` turns into `file:line:column: key: message`.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Config, PruneGuard, SpannedStr, relative_path};

impl Config {
    pub(super) fn check(&self, builtin: &[&str]) -> Result<(), (Range<usize>, String, String)> {
        unique("source", self.sources.iter().map(|s| &s.name))?;
        unique("plugin", self.plugins.iter().map(|p| &p.name))?;
        unique("pipeline", self.pipelines.iter().map(|p| &p.name))?;
        unique("cluster", self.clusters.iter().map(|c| &c.name))?;

        let whole = 0..0;
        let instance = &self.settings.instance;
        let named_well = is_label_value(instance) && instance.len() <= MAX_INSTANCE;
        if !self.settings.instance_derived && !named_well {
            return Err((
                whole,
                "moor.instance".into(),
                format!(
                    "an instance name is a label value of up to {MAX_INSTANCE} letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
                ),
            ));
        }
        check_guard(&self.settings.prune_guard)
            .map_err(|m| (whole.clone(), "moor.prune_guard.max_fraction".into(), m))?;
        if self.settings.workers == 0 {
            return Err((whole.clone(), "moor.workers".into(), "at least 1".into()));
        }
        for (i, source) in self.sources.iter().enumerate() {
            source.check().map_err(|(span, m)| (span, format!("source[{i}]"), m))?;
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            let key = format!("plugin[{i}]");
            match (plugin.is_external(), builtin.contains(&plugin.name.s())) {
                (true, true) => {
                    return Err((
                        plugin.name.span(),
                        format!("{key}.name"),
                        format!("`{}` is the name of a built-in plugin; give this one another name", plugin.name.s()),
                    ));
                }
                (false, false) => {
                    return Err((
                        plugin.name.span(),
                        format!("{key}.name"),
                        format!(
                            "no built-in plugin is named `{}` (built in: {}); give a `path` and `sha256`, or an \
                             `oci` reference, for a plugin of your own",
                            plugin.name.s(),
                            builtin.join(", ")
                        ),
                    ));
                }
                (true, false) => plugin.check_pin().map_err(|(span, under, m)| (span, format!("{key}{under}"), m))?,
                (false, true) => {
                    if let Some(sha) = &plugin.sha256 {
                        return Err((sha.span(), format!("{key}.sha256"), "built-in plugins are not pinned".into()));
                    }
                    if plugin.insecure {
                        return Err((
                            plugin.name.span(),
                            format!("{key}.insecure"),
                            "`insecure` is for `oci` plugins".into(),
                        ));
                    }
                }
            }
        }
        let known_plugin = |name: &str| builtin.contains(&name) || self.plugin(name).is_some();
        for (i, source) in self.sources.iter().enumerate() {
            if let Some(step) = &source.plugin
                && !known_plugin(step.uses.s())
            {
                return Err((
                    step.uses.span(),
                    format!("source[{i}].plugin.use"),
                    format!("no plugin is named `{}`", step.uses.s()),
                ));
            }
        }
        for (i, pipeline) in self.pipelines.iter().enumerate() {
            let key = format!("pipeline[{i}]");
            let name = pipeline.name.s();
            if !is_label_value(name) {
                return Err((pipeline.name.span(), format!("{key}.name"), "pipeline names are label values: up to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit".into()));
            }
            for (j, check) in pipeline.health.iter().enumerate() {
                for (field, expr) in [("ready", Some(&check.ready)), ("failed", check.failed.as_ref())] {
                    if let Some(expr) = expr
                        && let Err(e) = cel::Program::compile(expr.s())
                    {
                        let message =
                            format!("invalid CEL expression: {}", e.to_string().lines().next().unwrap_or_default());
                        return Err((expr.span(), format!("{key}.health[{j}].{field}"), message));
                    }
                }
            }
            check_guard(&pipeline.prune_guard)
                .map_err(|m| (pipeline.name.span(), format!("{key}.prune_guard.max_fraction"), m))?;
            if let Some(cluster) = &pipeline.cluster
                && self.cluster(cluster.s()).is_none()
            {
                return Err((
                    cluster.span(),
                    format!("{key}.cluster"),
                    format!("no `[[cluster]]` is named `{}`", cluster.s()),
                ));
            }
            if self.source(pipeline.source.s()).is_none() {
                return Err((
                    pipeline.source.span(),
                    format!("{key}.source"),
                    format!("no source is named `{}`", pipeline.source.s()),
                ));
            }
            if let Err(message) = relative_path(pipeline.path.s()) {
                return Err((pipeline.path.span(), format!("{key}.path"), message));
            }
            for (chain, steps) in pipeline.chain_lists() {
                for (j, step) in steps.iter().enumerate() {
                    if let Some(host) = step.allow_hosts.first()
                        && chain != "notify"
                    {
                        return Err((
                            host.span(),
                            format!("{key}.{chain}[{j}].allow_hosts"),
                            "only notify steps may reach the network".into(),
                        ));
                    }
                    let filter = step
                        .on
                        .first()
                        .map(|o| (o.span(), "on"))
                        .or(step.min_severity.as_ref().map(|m| (m.span(), "min_severity")));
                    if let Some((span, field)) = filter
                        && chain != "notify"
                    {
                        return Err((
                            span,
                            format!("{key}.{chain}[{j}].{field}"),
                            "only notify steps filter events".into(),
                        ));
                    }
                    for (k, from) in step.vars_from.iter().enumerate() {
                        from.check()
                            .map_err(|m| (step.uses.span(), format!("{key}.{chain}[{j}].vars_from[{k}]"), m))?;
                    }
                    if !known_plugin(step.uses.s()) {
                        return Err((
                            step.uses.span(),
                            format!("{key}.{chain}[{j}].use"),
                            format!("no plugin is named `{}`", step.uses.s()),
                        ));
                    }
                }
            }
            for (j, dep) in pipeline.depends_on.iter().enumerate() {
                if self.pipeline(dep.s()).is_none() {
                    return Err((
                        dep.span(),
                        format!("{key}.depends_on[{j}]"),
                        format!("no pipeline is named `{}`", dep.s()),
                    ));
                }
                if dep.s() == pipeline.name.s() {
                    return Err((
                        dep.span(),
                        format!("{key}.depends_on[{j}]"),
                        "a pipeline cannot depend on itself".into(),
                    ));
                }
            }
        }
        self.check_cycles()
    }

    fn check_cycles(&self) -> Result<(), (Range<usize>, String, String)> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let index: BTreeMap<&str, usize> = self.pipelines.iter().enumerate().map(|(i, p)| (p.name.s(), i)).collect();
        let mut marks = vec![Mark::New; self.pipelines.len()];
        let mut stack: Vec<usize> = Vec::new();
        fn visit(
            i: usize,
            cfg: &Config,
            index: &BTreeMap<&str, usize>,
            marks: &mut [Mark],
            stack: &mut Vec<usize>,
        ) -> Result<(), (Range<usize>, String, String)> {
            marks[i] = Mark::Active;
            stack.push(i);
            for (j, dep) in cfg.pipelines[i].depends_on.iter().enumerate() {
                let d = index[dep.s()];
                match marks[d] {
                    Mark::Active => {
                        let from = stack.iter().position(|&s| s == d).unwrap_or(0);
                        let mut names: Vec<&str> = stack[from..].iter().map(|&s| cfg.pipelines[s].name.s()).collect();
                        names.push(cfg.pipelines[d].name.s());
                        return Err((
                            dep.span(),
                            format!("pipeline[{i}].depends_on[{j}]"),
                            format!("dependency cycle: {}", names.join(" -> ")),
                        ));
                    }
                    Mark::New => visit(d, cfg, index, marks, stack)?,
                    Mark::Done => {}
                }
            }
            stack.pop();
            marks[i] = Mark::Done;
            Ok(())
        }
        for i in 0..self.pipelines.len() {
            if marks[i] == Mark::New {
                visit(i, self, &index, &mut marks, &mut stack)?;
            }
        }
        Ok(())
    }
}

fn unique<'a>(
    what: &str,
    names: impl Iterator<Item = &'a toml::Spanned<String>>,
) -> Result<(), (Range<usize>, String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.enumerate() {
        if name.s().is_empty() {
            return Err((name.span(), format!("{what}[{i}].name"), "names cannot be empty".into()));
        }
        if !seen.insert(name.s()) {
            return Err((
                name.span(),
                format!("{what}[{i}].name"),
                format!("a {what} named `{}` is already defined", name.s()),
            ));
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
