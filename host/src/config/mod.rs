//! The TOML model of sources, plugins and pipelines, and its validation.
//!
//! Every error names `file:line:column` and the key path (`pipeline[1].depends_on[0]`).
//! Loading rejects unknown keys, bad values, duplicate names, unknown references and
//! `depends_on` cycles, so nothing later has to.

mod model;
mod units;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use model::*;
pub use units::{ByteSize, Seconds};

/// A configuration error, located in its file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Where in the document, such as `pipeline[0].render[1].use`; empty for the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Everything a config file defines, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    /// Directory relative paths in the file are resolved against.
    pub base: PathBuf,
    text: String,
    pub settings: Settings,
    pub sources: Vec<SourceSpec>,
    pub plugins: Vec<PluginSpec>,
    pub pipelines: Vec<PipelineSpec>,
}

impl Config {
    /// Reads and validates `file`. `builtin` names the plugins compiled into the binary.
    pub fn load(file: &Path, builtin: &[&str]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(file, text, builtin)
    }

    /// Parses and validates `text` as if read from `file`.
    pub fn parse(file: &Path, text: String, builtin: &[&str]) -> Result<Config, ConfigError> {
        let located = |span: Option<Range<usize>>, key: String, message: String| {
            let (line, column) = span.map(|s| line_column(&text, s.start)).unwrap_or((1, 1));
            ConfigError { file: file.to_owned(), line, column, key, message }
        };
        let deserializer = toml::de::Deserializer::parse(&text)
            .map_err(|e| located(e.span(), String::new(), e.message().trim().to_owned()))?;
        let raw: File = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = display_path(e.path());
            let inner = e.into_inner();
            located(inner.span(), key, inner.message().trim().to_owned())
        })?;
        let base = file.parent().map(Path::to_owned).unwrap_or_default();
        let mut settings = raw.moor;
        if settings.instance.is_empty() {
            settings.instance = derive_instance(file);
            settings.instance_derived = true;
        }
        settings.file = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
        let config = Config {
            file: file.to_owned(),
            base,
            text: text.clone(),
            settings,
            sources: raw.source,
            plugins: raw.plugin,
            pipelines: raw.pipeline,
        };
        config.check(builtin).map_err(|(span, key, message)| located(Some(span), key, message))?;
        Ok(config)
    }

    /// Locates a span of this file for an error found after loading (say, a plugin's
    /// schema rejecting a step's `with` table).
    pub fn error_at(&self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_column(&self.text, span.start);
        ConfigError { file: self.file.clone(), line, column, key: key.into(), message: message.into() }
    }

    pub fn source(&self, name: &str) -> Option<&SourceSpec> {
        self.sources.iter().find(|s| s.name.s() == name)
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|p| p.name.s() == name)
    }

    pub fn pipeline(&self, name: &str) -> Option<&PipelineSpec> {
        self.pipelines.iter().find(|p| p.name.s() == name)
    }

    /// Pipelines ordered so that each comes after everything it depends on.
    pub fn pipelines_in_order(&self) -> Vec<&PipelineSpec> {
        let index: HashMap<&str, usize> = self.pipelines.iter().enumerate().map(|(i, p)| (p.name.s(), i)).collect();
        let mut done = vec![false; self.pipelines.len()];
        let mut order = Vec::new();
        fn visit<'a>(
            i: usize,
            cfg: &'a Config,
            index: &HashMap<&str, usize>,
            done: &mut [bool],
            order: &mut Vec<&'a PipelineSpec>,
        ) {
            if done[i] {
                return;
            }
            done[i] = true;
            for dep in &cfg.pipelines[i].depends_on {
                visit(index[dep.s()], cfg, index, done, order);
            }
            order.push(&cfg.pipelines[i]);
        }
        for i in 0..self.pipelines.len() {
            visit(i, self, &index, &mut done, &mut order);
        }
        order
    }

    /// Resolves a path written in the config against the config's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_owned() } else { self.base.join(path) }
    }

    fn check(&self, builtin: &[&str]) -> Result<(), (Range<usize>, String, String)> {
        unique("source", self.sources.iter().map(|s| &s.name))?;
        unique("plugin", self.plugins.iter().map(|p| &p.name))?;
        unique("pipeline", self.pipelines.iter().map(|p| &p.name))?;

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
        if let Some(token) = &self.settings.api_token {
            token.check().map_err(|m| (whole.clone(), "moor.api_token".into(), m))?;
        }
        for (i, source) in self.sources.iter().enumerate() {
            source.check().map_err(|(span, m)| (span, format!("source[{i}]"), m))?;
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            let key = format!("plugin[{i}]");
            match (&plugin.path, builtin.contains(&plugin.name.s())) {
                (Some(_), true) => {
                    return Err((
                        plugin.name.span(),
                        format!("{key}.name"),
                        format!("`{}` is the name of a built-in plugin; give this one another name", plugin.name.s()),
                    ));
                }
                (None, false) => {
                    return Err((
                        plugin.name.span(),
                        format!("{key}.name"),
                        format!(
                            "no built-in plugin is named `{}` (built in: {}); give a `path` and `sha256` for a plugin file",
                            plugin.name.s(),
                            builtin.join(", ")
                        ),
                    ));
                }
                (Some(_), false) => match &plugin.sha256 {
                    None => {
                        return Err((
                            plugin.name.span(),
                            key,
                            "a plugin file needs a `sha256` pin (see `moor plugin inspect FILE`)".into(),
                        ));
                    }
                    Some(sha) if sha.s().len() != 64 || !sha.s().chars().all(|c| c.is_ascii_hexdigit()) => {
                        return Err((sha.span(), format!("{key}.sha256"), "expected 64 hexadecimal digits".into()));
                    }
                    Some(_) => {}
                },
                (None, true) => {
                    if let Some(sha) = &plugin.sha256 {
                        return Err((sha.span(), format!("{key}.sha256"), "built-in plugins are not pinned".into()));
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
            if let Some(sa) = &pipeline.service_account
                && sa.split_once('/').is_none_or(|(ns, n)| ns.is_empty() || n.is_empty())
            {
                return Err((
                    pipeline.name.span(),
                    format!("{key}.service_account"),
                    format!("`{sa}` is not `namespace/name`"),
                ));
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
            if let Some(secret) = &pipeline.webhook_secret {
                secret.check().map_err(|m| (pipeline.name.span(), format!("{key}.webhook_secret"), m))?;
            }
            check_guard(&pipeline.prune_guard)
                .map_err(|m| (pipeline.name.span(), format!("{key}.prune_guard.max_fraction"), m))?;
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
                    for (field, secret) in &step.secrets {
                        secret
                            .check()
                            .map_err(|m| (step.uses.span(), format!("{key}.{chain}[{j}].secrets.{field}"), m))?;
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

/// Checks that `path` stays inside the directory it is relative to.
pub fn relative_path(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Err(format!("`{path}` must be relative to the source's root"));
    }
    if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(format!("`{path}` must not leave the source's root (`..`)"));
    }
    Ok(())
}

fn display_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// Instance names stay short: they are part of inventory and Lease names.
const MAX_INSTANCE: usize = 40;

/// A Kubernetes label value: up to 63 letters, digits, `-`, `_` or `.`, starting and
/// ending with a letter or digit.
fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn check_guard(guard: &PruneGuard) -> Result<(), String> {
    if (0.0..=1.0).contains(&guard.max_fraction) { Ok(()) } else { Err("a fraction between 0 and 1".into()) }
}

/// The instance of a config that names none: its directory's name and a digest of the
/// file's absolute path (`quickstart-1f0c9a2b`). Two config files never share one by
/// accident; the same file applied again, by `moor apply` or `moor run`, always does.
pub fn derive_instance(file: &Path) -> String {
    use sha2::Digest;
    let absolute =
        std::fs::canonicalize(file).or_else(|_| std::path::absolute(file)).unwrap_or_else(|_| file.to_owned());
    let digest = sha2::Sha256::digest(absolute.to_string_lossy().as_bytes());
    let dir =
        absolute.parent().and_then(Path::file_name).map(|d| d.to_string_lossy().to_lowercase()).unwrap_or_default();
    let mut stem: String = dir.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(24).collect();
    stem = stem.trim_matches('-').to_owned();
    if stem.is_empty() {
        stem = "moor".into();
    }
    format!("{stem}-{}", &hex::encode(digest)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_in_different_places_get_different_instances_and_one_file_always_the_same() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("Team A/moor.toml"), root.path().join("b/moor.toml"));
        let (ia, ib) = (derive_instance(&a), derive_instance(&b));
        assert_ne!(ia, ib);
        assert_eq!(ia, derive_instance(&a));
        assert!(ia.starts_with("team-a-") && ia.len() == "team-a-".len() + 8, "{ia}");
        assert!(is_label_value(&ia) && ia.len() <= MAX_INSTANCE);
        // The same file through another path is the same config.
        std::fs::create_dir_all(a.parent().unwrap()).unwrap();
        std::fs::write(&a, "").unwrap();
        let roundabout = root.path().join("b/../Team A/./moor.toml");
        std::fs::create_dir_all(root.path().join("b")).unwrap();
        assert_eq!(derive_instance(&roundabout), derive_instance(&a));
    }

    #[test]
    fn an_unnamed_instance_is_derived_and_a_named_one_must_be_a_short_label_value() {
        let file = Path::new("/srv/deploy/moor.toml");
        let config = Config::parse(file, String::new(), &[]).unwrap();
        assert!(config.settings.instance_derived);
        assert_eq!(config.settings.instance, derive_instance(file));
        let named = Config::parse(file, "[moor]\ninstance = \"prod\"\n".into(), &[]).unwrap();
        assert_eq!((named.settings.instance.as_str(), named.settings.instance_derived), ("prod", false));
        let bad = Config::parse(file, "[moor]\ninstance = \"Prod cluster!\"\n".into(), &[]).unwrap_err();
        assert_eq!(bad.key, "moor.instance");
    }
}
