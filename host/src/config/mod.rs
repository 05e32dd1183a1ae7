//! The TOML model of sources, plugins and pipelines, and its validation.
//!
//! Every error names `file:line:column` and the key path (`pipeline[1].depends_on[0]`).
//! Loading rejects unknown keys, bad values, duplicate names, unknown references and
//! `depends_on` cycles, so nothing later has to. The config holds plain values; serde's
//! errors carry toml's spans, and every later error its key path, which the source map
//! (`source_map.rs`) locates in the file's text.

mod check;
mod confine;
mod gates;
mod model;
mod platform;
mod plugin;
mod source;
mod source_map;
mod step;
mod tenant;
mod units;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use gates::{CustomResourceWait, JobWait, PodWait, WaitFor};
pub use model::*;
pub use platform::{ConfigRevision, Platform};
pub use plugin::*;
pub use source::*;
pub use step::*;
pub use tenant::*;
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
    /// For a config read from a source: `source `platform` at 1a2b3c4d5e6f`.
    pub origin: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
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
    /// For a platform config: the source and revision it was read from.
    pub revision: Option<ConfigRevision>,
    pub settings: Settings,
    /// A bootstrap config's `[config]`: the platform config is a file of one of its
    /// sources, and this config has no pipelines of its own.
    pub platform: Option<Platform>,
    pub sources: Vec<SourceSpec>,
    pub plugins: Vec<PluginSpec>,
    pub pipelines: Vec<PipelineSpec>,
    pub clusters: Vec<ClusterSpec>,
    /// The teams whose pipelines come from configs of their own (`[[tenant]]`); admitted
    /// ones are in `pipelines` as `tenant/name` ([`Config::admit`]).
    pub tenants: Vec<Arc<Tenant>>,
    /// The top-level `[[notify]]` steps, kept for the tenants' pipelines they pick.
    notify: Vec<Step>,
    /// The tenants whose configs are admitted; the others are held.
    admitted: Vec<String>,
}

/// The text of a config file, for errors found after loading about what it says: a step
/// of a tenant's pipeline points into the tenant's file, not the platform's.
pub struct ConfigText {
    pub file: PathBuf,
    text: String,
    pub origin: Option<ConfigRevision>,
}

impl ConfigText {
    /// An error about what `key` names in this file.
    fn error_at(&self, key: String, message: String) -> ConfigError {
        let (line, column) = line_column(&self.text, source_map::locate(&self.text, &key).start);
        let origin = self.origin.as_ref().map(ConfigRevision::to_string);
        ConfigError { file: self.file.clone(), line, column, key, message, origin }
    }
}

impl fmt::Debug for ConfigText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigText").field("file", &self.file).field("origin", &self.origin).finish_non_exhaustive()
    }
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
            origin: None,
        })?;
        Config::parse(file, text, builtin)
    }

    /// Parses and validates `text` as if read from `file`.
    pub fn parse(file: &Path, text: String, builtin: &[&str]) -> Result<Config, ConfigError> {
        let base = file.parent().map(Path::to_owned).unwrap_or_default();
        Config::parse_at(file, base, None, text, builtin)
    }

    /// Parses and validates `text`, shown as `file`, with relative paths under `base`; a
    /// config read from a source is told its revision and the bootstrap's settings.
    pub(super) fn parse_at(
        file: &Path,
        base: PathBuf,
        from: Option<(ConfigRevision, &Settings)>,
        text: String,
        builtin: &[&str],
    ) -> Result<Config, ConfigError> {
        let origin = from.as_ref().map(|(revision, _)| revision.to_string());
        let mut raw: File = deserialize(file, &text).map_err(|e| ConfigError { origin, ..e })?;
        if raw.moor.instance.is_empty() {
            (raw.moor.instance, raw.moor.instance_derived) = match &from {
                Some((_, bootstrap)) => (bootstrap.instance.clone(), bootstrap.instance_derived),
                None => (derive_instance(file), true),
            };
        }
        Config::from_file(file, base, from.map(|(revision, _)| revision), raw, text, builtin)
    }

    /// The config `raw`, deserialized from `text`, derived and checked.
    fn from_file(
        file: &Path,
        base: PathBuf,
        revision: Option<ConfigRevision>,
        raw: File,
        text: String,
        builtin: &[&str],
    ) -> Result<Config, ConfigError> {
        let mut settings = raw.moor;
        settings.file = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
        let mut config = Config {
            file: file.to_owned(),
            base,
            text,
            revision,
            settings,
            platform: None,
            sources: Vec::new(),
            plugins: Vec::new(),
            pipelines: raw.pipeline,
            clusters: raw.cluster,
            tenants: Vec::new(),
            notify: Vec::new(),
            admitted: Vec::new(),
        };
        let raw = Written {
            sources: raw.source,
            plugins: raw.plugin,
            notify: raw.notify,
            tenants: raw.tenant,
            platform: raw.config,
        };
        if let Err((key, message)) = config.derive(raw, builtin).and_then(|()| config.check(builtin)) {
            return Err(config.error_at(key, message));
        }
        Ok(config)
    }

    /// What loading derives from the file as written: each source's kind, each plugin's origin, where each step
    /// is written, top-level `[[notify]]` steps in the pipelines they pick, and the gates.
    fn derive(&mut self, raw: Written, builtin: &[&str]) -> Result<(), Problem> {
        let Written { sources, plugins, notify, tenants, platform } = raw;
        self.sources = sources
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.typed(format!("source[{i}]"), None))
            .collect::<Result<_, _>>()?;
        self.plugins = plugins.into_iter().enumerate().map(|(i, p)| p.typed(i, builtin)).collect::<Result<_, _>>()?;
        self.tenants = tenants
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.typed(i, self, builtin).map(Arc::new))
            .collect::<Result<_, _>>()?;
        if let Some(ConfigRef { source, path }) = platform {
            let source = self
                .sources
                .iter()
                .position(|s| s.name == source)
                .ok_or_else(|| ("config.source".to_owned(), format!("no source is named `{source}`")))?;
            if path.is_empty() {
                return Err(("config.path".into(), "the path of the platform config in the source".into()));
            }
            relative_path(&path).map_err(|m| ("config.path".into(), m))?;
            self.platform = Some(Platform { source, path });
        }
        for (i, pipeline) in self.pipelines.iter_mut().enumerate() {
            place_steps(i, pipeline)?;
        }
        if self.platform.is_some() && !notify.is_empty() {
            let message = "a bootstrap config only says where the platform config is; notify steps go there";
            return Err(("notify[0]".into(), message.into()));
        }
        for (k, mut step) in notify.into_iter().enumerate() {
            step.at = format!("notify[{k}]");
            globs(&step.pipelines).map_err(|(n, e)| (format!("{}.pipelines[{n}]", step.at), e))?;
            self.notify.push(step);
        }
        for i in 0..self.pipelines.len() {
            let steps = self.notify_for(&self.pipelines[i].name);
            self.pipelines[i].notify.extend(steps);
        }
        for (i, pipeline) in self.pipelines.iter_mut().enumerate() {
            let ns = pipeline.target_namespace.as_deref().unwrap_or(&self.settings.namespace);
            pipeline.gates = pipeline
                .wait_for
                .iter()
                .enumerate()
                .map(|(j, gate)| gates::gate(gate, ns).map_err(|e| (format!("pipeline[{i}].wait_for[{j}]"), e)))
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// The top-level `[[notify]]` steps that pick pipeline `name`.
    fn notify_for(&self, name: &str) -> Vec<Step> {
        let picks = |step: &Step| globs(&step.pipelines).ok().flatten().is_none_or(|g| g.is_match(name));
        self.notify.iter().filter(|step| picks(step)).cloned().collect()
    }

    /// An error about what `key` names (`pipeline[0].render[1].with`), located in this
    /// file through the source map: for an error found after loading (say, a plugin's
    /// schema rejecting a step's `with` table) as for one found while loading.
    pub fn error_at(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let key = key.into();
        let (line, column) = line_column(&self.text, source_map::locate(&self.text, &key).start);
        let origin = self.revision.as_ref().map(ConfigRevision::to_string);
        ConfigError { file: self.file.clone(), line, column, key, message: message.into(), origin }
    }

    /// An error about `suffix` (`.with`) of `step`, located where the step is written: in a
    /// tenant's file for a step of a tenant's pipeline, else in this one.
    pub fn error_at_step(&self, step: &Step, suffix: &str, message: impl Into<String>) -> ConfigError {
        let key = format!("{}{suffix}", step.at);
        match &step.text {
            Some(text) => text.error_at(key, message.into()),
            None => self.error_at(key, message),
        }
    }

    /// The source of `pipeline` (one of this config's), as loading resolved it.
    pub fn source_of(&self, pipeline: &PipelineSpec) -> &SourceSpec {
        &self.sources[pipeline.source_index]
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterSpec> {
        self.clusters.iter().find(|c| c.name == name)
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|p| p.name == name)
    }

    pub fn pipeline(&self, name: &str) -> Option<&PipelineSpec> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    /// The name of the pipeline whose objects are labelled `label`: the label itself, or
    /// for a tenant's pipeline (`team-a.web`) its name (`team-a/web`). No platform
    /// pipeline's name starts with a tenant's and a dot.
    pub fn name_of(&self, label: &str) -> String {
        let tenant =
            self.tenants.iter().find(|t| label.strip_prefix(t.name.as_str()).is_some_and(|rest| rest.starts_with('.')));
        match tenant {
            Some(t) => format!("{}/{}", t.name, &label[t.name.len() + 1..]),
            None => label.to_owned(),
        }
    }

    /// Whether `label` is of a pipeline of a tenant whose config is not admitted (it never
    /// loaded, or no longer does under the platform's rules): its inventory is held, neither
    /// run nor removed, as if the pipeline were still there.
    pub fn holds(&self, label: &str) -> bool {
        let of = |tenant: &str| label.strip_prefix(tenant).is_some_and(|rest| rest.starts_with('.'));
        self.tenants.iter().any(|t| of(&t.name) && !self.admits(&t.name))
    }

    /// Whether tenant `name`'s config is admitted.
    pub fn admits(&self, name: &str) -> bool {
        self.admitted.iter().any(|a| a == name)
    }

    /// Pipelines ordered so that each comes after everything it depends on.
    pub fn pipelines_in_order(&self) -> Vec<&PipelineSpec> {
        self.pipeline_order().into_iter().map(|i| &self.pipelines[i]).collect()
    }

    /// [`Config::pipelines_in_order`], as indices into `pipelines`.
    pub fn pipeline_order(&self) -> Vec<usize> {
        let mut done = vec![false; self.pipelines.len()];
        let mut order = Vec::with_capacity(self.pipelines.len());
        fn visit(i: usize, cfg: &Config, done: &mut [bool], order: &mut Vec<usize>) {
            if done[i] {
                return;
            }
            done[i] = true;
            for &dep in &cfg.pipelines[i].dependencies {
                visit(dep, cfg, done, order);
            }
            order.push(i);
        }
        for i in 0..self.pipelines.len() {
            visit(i, self, &mut done, &mut order);
        }
        order
    }

    /// Resolves a path written in the config against the config's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_owned() } else { self.base.join(path) }
    }
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

/// A problem found at load: the key path it is about, and what is wrong.
type Problem = (String, String);

/// What a config file writes that loading turns into typed parts.
struct Written {
    sources: Vec<RawSource>,
    plugins: Vec<RawPlugin>,
    notify: Vec<Step>,
    tenants: Vec<RawTenant>,
    platform: Option<ConfigRef>,
}

/// The file as written, or its serde error, located by the span toml gives.
fn deserialize<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    let located = |span: Option<Range<usize>>, key: String, message: &str| {
        let (line, column) = span.map(|s| line_column(text, s.start)).unwrap_or((1, 1));
        ConfigError { file: file.to_owned(), line, column, key, message: message.trim().to_owned(), origin: None }
    };
    let deserializer =
        toml::de::Deserializer::parse(text).map_err(|e| located(e.span(), String::new(), e.message()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = display_path(e.path());
        let inner = e.into_inner();
        located(inner.span(), key, inner.message())
    })
}

/// Fills in where each step of the `i`th pipeline is written, and refuses `pipelines` on
/// them: only a top-level `[[notify]]` step picks pipelines.
fn place_steps(i: usize, pipeline: &mut PipelineSpec) -> Result<(), Problem> {
    let key = format!("pipeline[{i}]");
    let chains =
        [("render", &mut pipeline.render), ("validate", &mut pipeline.validate), ("notify", &mut pipeline.notify)];
    for (chain, steps) in chains {
        for (j, step) in steps.iter_mut().enumerate() {
            step.at = format!("{key}.{chain}[{j}]");
            if !step.pipelines.is_empty() {
                let message =
                    "a pipeline's own step serves that pipeline only: pick pipelines in a top-level `[[notify]]`";
                return Err((format!("{}.pipelines", step.at), message.into()));
            }
        }
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

/// The pipeline names `patterns` match (`None`: no patterns, so every pipeline), or the
/// index and error of a pattern that is not a glob.
fn globs(patterns: &[String]) -> Result<Option<globset::GlobSet>, (usize, String)> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = globset::GlobSetBuilder::new();
    for (k, pattern) in patterns.iter().enumerate() {
        set.add(globset::Glob::new(pattern).map_err(|e| (k, format!("not a glob: {e}")))?);
    }
    set.build().map(Some).map_err(|e| (0, e.to_string()))
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
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
    use super::check::{MAX_INSTANCE, is_label_value};
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
    fn a_top_level_notify_step_joins_the_pipelines_its_globs_pick() {
        let text = |notify: &str| {
            format!(
                "[[source]]\nname = \"s\"\npath = \".\"\n\n\
                 [[pipeline]]\nname = \"prod-web\"\nsource = \"s\"\nnotify = [{{ use = \"webhook\" }}]\n\n\
                 [[pipeline]]\nname = \"prod-db\"\nsource = \"s\"\n\n\
                 [[pipeline]]\nname = \"staging-web\"\nsource = \"s\"\n\n{notify}"
            )
        };
        let parse = |notify: &str| Config::parse(Path::new("moor.toml"), text(notify), &["webhook", "slack", "yaml"]);
        let uses = |config: &Config, name: &str| -> Vec<String> {
            config.pipeline(name).unwrap().notify.iter().map(|s| s.uses.clone()).collect()
        };
        let config = parse("[[notify]]\nuse = \"slack\"\npipelines = [\"prod-*\"]\non = [\"run-failed\"]\n").unwrap();
        assert_eq!(uses(&config, "prod-web"), ["webhook", "slack"]);
        assert_eq!(uses(&config, "prod-db"), ["slack"]);
        assert!(uses(&config, "staging-web").is_empty());
        let everyone = parse("[[notify]]\nuse = \"slack\"\n").unwrap();
        assert_eq!(uses(&everyone, "staging-web"), ["slack"]);
        let e = parse("[[notify]]\nuse = \"slack\"\npipelines = [\"prod-[\"]\n").unwrap_err();
        assert_eq!(e.key, "notify[0].pipelines[0]");
        assert!(e.message.contains("not a glob"), "{e}");
        let own = text("")
            .replace("notify = [{ use = \"webhook\" }]", "notify = [{ use = \"webhook\", pipelines = [\"x\"] }]");
        let e = Config::parse(Path::new("moor.toml"), own, &["webhook", "yaml"]).unwrap_err();
        assert!(e.message.contains("top-level `[[notify]]`"), "{e}");
    }

    #[test]
    fn steps_know_where_they_are_written_and_references_are_resolved() {
        let text = "[[source]]\nname = \"s\"\npath = \".\"\n\n\
                    [[source]]\nname = \"p\"\nplugin = { use = \"files\" }\n\n\
                    [[pipeline]]\nname = \"a\"\nsource = \"p\"\ndepends_on = [\"b\"]\n\n\
                    [[pipeline]]\nname = \"b\"\nsource = \"s\"\nrender = [{ use = \"yaml\" }, { use = \"policy\" }]\n\n\
                    [[notify]]\nuse = \"slack\"\n";
        let config = Config::parse(Path::new("moor.toml"), text.into(), &["yaml", "policy", "slack", "files"]).unwrap();
        let (a, b) = (config.pipeline("a").unwrap(), config.pipeline("b").unwrap());
        let at = |steps: &[Step]| steps.iter().map(|s| s.at.clone()).collect::<Vec<_>>();
        assert_eq!(at(&a.render), ["pipeline[0].render[0]"]);
        assert_eq!(at(&b.render), ["pipeline[1].render[0]", "pipeline[1].render[1]"]);
        assert_eq!(at(&b.notify), ["notify[0]"]);
        assert_eq!((config.source_of(a).name.as_str(), config.source_of(b).name.as_str()), ("p", "s"));
        let SourceKind::Plugin(step) = &config.source_of(a).kind else { panic!("a plugin source") };
        assert_eq!(step.at, "source[1].plugin");
        assert!(matches!(&config.source_of(b).kind, SourceKind::Path(p) if p == Path::new(".")));
        assert_eq!(config.pipeline_order(), [1, 0]);
        let e = config.error_at(format!("{}.with", a.render[0].at), "rejected");
        assert_eq!(
            (e.line, e.column, e.key.as_str()),
            (10, 8, "pipeline[0].render[0].with"),
            "the default step: its pipeline"
        );
        let both = text.replace("path = \".\"", "path = \".\"\ngit = { url = \"https://x\" }");
        let e = Config::parse(Path::new("moor.toml"), both, &["yaml", "policy", "slack", "files"]).unwrap_err();
        assert_eq!((e.line, e.column, e.key.as_str()), (2, 8, "source[0]"), "{e}");
        assert!(e.message.contains("exactly one of"), "{e}");
    }

    #[test]
    fn a_pipeline_names_a_configured_cluster() {
        let text = |cluster: &str, uses: &str| {
            format!(
                "{cluster}\n[[source]]\nname = \"s\"\npath = \".\"\n\n[[pipeline]]\nname = \"p\"\nsource = \"s\"\ncluster = \"{uses}\"\n"
            )
        };
        let parse = |t: String| Config::parse(Path::new("moor.toml"), t, &["yaml"]);
        let prod = "[[cluster]]\nname = \"prod\"\nkubeconfig = { secret = \"prod-kubeconfig\", key = \"value\" }\n";
        let config = parse(text(prod, "prod")).unwrap();
        assert_eq!(
            config.cluster("prod").unwrap().kubeconfig,
            SecretRef::Secret { secret: "prod-kubeconfig".into(), key: "value".into() }
        );
        let e = parse(text(prod, "staging")).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("pipeline[0].cluster", 12));
        assert!(e.message.contains("no `[[cluster]]` is named `staging`"), "{e}");
        let e = parse(text("[[cluster]]\nname = \"prod\"\nkubeconfig = { key = \"value\" }\n", "prod")).unwrap_err();
        assert_eq!(e.key, "cluster[0].kubeconfig");
        let twice = format!("{prod}{prod}");
        assert!(parse(text(&twice, "prod")).unwrap_err().message.contains("prod"));
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
