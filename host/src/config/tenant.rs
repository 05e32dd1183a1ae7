//! Tenants (`[[tenant]]`, in the platform config): teams whose pipelines come from a config
//! of their own, in their own repository, confined by the rules the platform sets, as
//! Flux's multi-tenancy lockdown and Argo CD's AppProjects confine theirs.
//!
//! The platform declares a tenant: the source its config is read from and the path in it,
//! the namespaces its objects may go to, the service account every apply of it is
//! impersonated as, the platform plugins it may use, whether it may pin plugins of its own,
//! the clusters and cluster-scoped kinds it is granted, the source URLs it may read, its
//! limits, and validate steps run after its own.
//!
//! A tenant's config has only `[[source]]`, `[[plugin]]`, `[[pipeline]]` and `[[notify]]`.
//! [`Config::parse_tenant`] checks it against the tenant's rules, and [`Config::admit`]
//! adds it to the platform config under the tenant's name: pipeline `web` of tenant
//! `team-a` is `team-a/web`, its objects and inventory are labelled `team-a.web`, and its
//! sources and plugins are `team-a/…` too, so nothing of one tenant can name another's.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::{
    ByteSize, Config, ConfigError, ConfigRevision, ConfigText, KindMatch, PipelineSpec, PluginOrigin, Problem,
    RawPlugin, RawSource, Seconds, ServiceAccount, SourceKind, SourceSpec, Step,
};
use crate::plugins::Cap;

/// The tenant of pipeline `name`: `team-a` for `team-a/web`, `` for the platform's own
/// (whose names are label values, without a `/`).
pub fn tenant_of(name: &str) -> &str {
    name.split_once('/').map_or("", |(tenant, _)| tenant)
}

/// A `[[tenant]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    name: String,
    /// Where the tenant's config is: a source as `[[source]]` writes one, without a name.
    source: RawSource,
    /// The tenant's config, a file of that source.
    #[serde(default = "default_config")]
    config: String,
    namespaces: Vec<String>,
    service_account: ServiceAccount,
    #[serde(default)]
    plugins: Vec<String>,
    #[serde(default)]
    own_plugins: bool,
    #[serde(default)]
    limits: TenantLimits,
    #[serde(default)]
    validate: Vec<Step>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    clusters: Vec<String>,
    #[serde(default)]
    cluster_kinds: Vec<KindMatch>,
}

fn default_config() -> String {
    "moor.toml".into()
}

/// What a tenant's plugin calls and pipelines are held to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// The most memory a call of the tenant's plugins may use.
    pub memory: Option<ByteSize>,
    /// The longest a call of the tenant's plugins may take.
    pub time: Option<Seconds>,
    /// The most pipelines its config may have.
    pub max_pipelines: Option<usize>,
}

/// A tenant, as the platform config declares it, checked.
#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    /// The source its config is read from, named `tenant/<name>`.
    pub source: SourceSpec,
    /// The path of its config in that source.
    pub config: String,
    pub namespaces: Patterns,
    pub service_account: ServiceAccount,
    /// The platform's plugins (built in or `[[plugin]]`) its steps may use.
    pub plugins: Vec<String>,
    pub own_plugins: bool,
    pub limits: TenantLimits,
    /// The platform's validate steps, run after the tenant's own in each of its pipelines.
    pub validate: Vec<Step>,
    /// The URLs its sources may read (`git` URLs and `helm` repositories), as globs; any
    /// when empty.
    pub sources: Patterns,
    /// The platform's `[[cluster]]`s its pipelines may apply to.
    pub clusters: Vec<String>,
    /// Cluster-scoped kinds its pipelines may apply.
    pub cluster_kinds: Vec<KindMatch>,
}

/// Globs, with the text they were written as (for messages).
#[derive(Debug, Clone)]
pub struct Patterns {
    pub written: Vec<String>,
    set: globset::GlobSet,
}

impl Patterns {
    fn new(written: Vec<String>) -> Result<Patterns, (usize, String)> {
        let mut set = globset::GlobSetBuilder::new();
        for (k, pattern) in written.iter().enumerate() {
            let glob = globset::GlobBuilder::new(pattern).literal_separator(true).build();
            set.add(glob.map_err(|e| (k, format!("not a glob: {e}")))?);
        }
        Ok(Patterns { set: set.build().map_err(|e| (0, e.to_string()))?, written })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.set.is_match(text)
    }
}

impl std::fmt::Display for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.written.join(", "))
    }
}

/// Tenant names go into pipeline names, labels and inventory names: a DNS label, short.
const MAX_TENANT: usize = 30;

impl RawTenant {
    /// The `i`th tenant, checked against the platform config (`config`, loaded so far).
    pub(super) fn typed(self, i: usize, config: &Config, builtin: &[&str]) -> Result<Tenant, Problem> {
        let key = format!("tenant[{i}]");
        let at = |field: &str, message: String| (format!("{key}.{field}"), message);
        let dns_label = self.name.len() <= MAX_TENANT
            && self.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && self.name.starts_with(|c: char| c.is_ascii_lowercase())
            && !self.name.ends_with('-');
        if !dns_label {
            return Err(at(
                "name",
                format!(
                    "a tenant name is up to {MAX_TENANT} lowercase letters, digits or `-`, starting with a letter \
                     (it begins the names of its pipelines)"
                ),
            ));
        }
        let mut source = self.source.typed(format!("{key}.source"), Some(&format!("tenant/{}", self.name)))?;
        if let SourceKind::Plugin(step) = &mut source.kind {
            step.at = format!("{key}.source.plugin");
        }
        super::relative_path(&self.config).map_err(|m| at("config", m))?;
        if self.namespaces.is_empty() {
            return Err(at("namespaces", "a tenant needs the namespaces its objects may go to".into()));
        }
        let namespaces = Patterns::new(self.namespaces).map_err(|(k, m)| at(&format!("namespaces[{k}]"), m))?;
        if !namespaces.is_match(&self.service_account.namespace) {
            return Err(at(
                "service_account",
                format!("the service account's namespace is not one of the tenant's ({namespaces})"),
            ));
        }
        for (k, name) in self.plugins.iter().enumerate() {
            if !builtin.contains(&name.as_str()) && config.plugin(name).is_none() {
                return Err(at(&format!("plugins[{k}]"), format!("no plugin is named `{name}`")));
            }
        }
        for (k, name) in self.clusters.iter().enumerate() {
            if config.cluster(name).is_none() {
                return Err(at(&format!("clusters[{k}]"), format!("no `[[cluster]]` is named `{name}`")));
            }
        }
        let sources = Patterns::new(self.sources).map_err(|(k, m)| at(&format!("sources[{k}]"), m))?;
        let mut validate = self.validate;
        for (j, step) in validate.iter_mut().enumerate() {
            step.at = format!("{key}.validate[{j}]");
            if !builtin.contains(&step.uses.as_str()) && config.plugin(&step.uses).is_none() {
                return Err((format!("{}.use", step.at), format!("no plugin is named `{}`", step.uses)));
            }
        }
        Ok(Tenant {
            name: self.name,
            source,
            config: self.config,
            namespaces,
            service_account: self.service_account,
            plugins: self.plugins,
            own_plugins: self.own_plugins,
            limits: self.limits,
            validate,
            sources,
            clusters: self.clusters,
            cluster_kinds: self.cluster_kinds,
        })
    }
}

impl Tenant {
    /// The namespace of the tenant's objects that name none: its first namespace that is
    /// not a pattern.
    pub fn default_namespace(&self) -> Option<&str> {
        self.namespaces.written.iter().map(String::as_str).find(|n| !n.contains(['*', '?', '[', '{']))
    }

    /// The name of the tenant's pipeline (or source, or plugin) `local`: `team-a/web`.
    pub fn scoped(&self, local: &str) -> String {
        format!("{}/{local}", self.name)
    }

    /// Why a namespace is not the tenant's, or `None`.
    pub fn refuses_namespace(&self, namespace: &str) -> Option<String> {
        (!self.namespaces.is_match(namespace))
            .then(|| format!("namespace `{namespace}` is not one of tenant `{}`'s ({})", self.name, self.namespaces))
    }

    /// Why the tenant may not apply a cluster-scoped object of `group`/`kind` named
    /// `name`, or `None`: only kinds the platform grants, and a Namespace only of its own.
    pub fn refuses_cluster_scoped(&self, group: &str, kind: &str, name: &str) -> Option<String> {
        if !self.cluster_kinds.iter().any(|k| k.matches(group, kind)) {
            let what = if group.is_empty() { kind.to_owned() } else { format!("{group}/{kind}") };
            return Some(format!("tenant `{}` is not granted the cluster-scoped kind `{what}`", self.name));
        }
        if group.is_empty() && kind == "Namespace" { self.refuses_namespace(name) } else { None }
    }
}

/// A tenant's config as written: sources, plugins, pipelines and notify steps only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantFile {
    #[serde(default)]
    pub source: Vec<RawSource>,
    #[serde(default)]
    pub plugin: Vec<RawPlugin>,
    #[serde(default)]
    pub pipeline: Vec<PipelineSpec>,
    #[serde(default)]
    pub notify: Vec<Step>,
}

/// A tenant's config, parsed and checked against its rules, ready for [`Config::admit`].
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// Which of the platform's tenants it is.
    pub tenant: usize,
    /// The config as the tenant wrote it, with its own names.
    config: Config,
}

impl Config {
    /// The tenant named `name`.
    pub fn tenant(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// Parses tenant `tenant`'s config: `text`, the file at its `config` path of its
    /// source's snapshot in `root`, taken at `revision`, checked against its rules. Its
    /// errors name the tenant, the revision, the file and the line.
    pub fn parse_tenant(
        &self,
        tenant: usize,
        root: &Path,
        revision: &str,
        text: String,
    ) -> Result<TenantConfig, ConfigError> {
        let rules = &self.tenants[tenant];
        let file = Path::new(&rules.config);
        let base = root.join(file.parent().unwrap_or(Path::new("")));
        let origin = ConfigRevision { source: rules.source.name.clone(), revision: revision.to_owned() };
        let located = |e: ConfigError| ConfigError { origin: Some(origin.to_string()), ..e };
        let raw: TenantFile = super::deserialize(file, &text).map_err(located)?;
        // Its gates that name no namespace look in the tenant's (as its objects that name
        // none go there), not in moor's own.
        let mut settings = self.settings.clone();
        if let Some(ns) = rules.default_namespace() {
            settings.namespace = ns.to_owned();
        }
        let raw = super::File {
            moor: settings,
            config: None,
            source: raw.source,
            plugin: raw.plugin,
            pipeline: raw.pipeline,
            cluster: Vec::new(),
            notify: raw.notify,
            tenant: Vec::new(),
        };
        // Every platform plugin is known to its steps, as if built in, so that `confine`
        // names the rule when a step uses one the tenant is not granted.
        let platform: Vec<&str> = crate::plugins::builtin_names()
            .map(|n| -> &str { n })
            .chain(self.plugins.iter().map(|p| p.name.as_str()))
            .collect();
        let mut config = Config::from_file(file, base, Some(origin), raw, text, &platform)?;
        config.settings.file = self.settings.file.clone();
        config.clusters = self.clusters.iter().filter(|c| rules.clusters.contains(&c.name)).cloned().collect();
        if let Err((key, message)) = super::confine::confine(&config, rules, root) {
            return Err(config.error_at(key, message));
        }
        Ok(TenantConfig { tenant, config })
    }

    /// Adds a tenant's config to this platform config, under the tenant's name: its
    /// sources, plugins and pipelines become `tenant/…`, its pipelines apply as the
    /// tenant's service account, confined to its namespaces, and run the platform's
    /// validate steps for it after their own.
    pub fn admit(&mut self, admitted: TenantConfig) {
        let TenantConfig { tenant, config } = admitted;
        let rules = self.tenants[tenant].clone();
        self.admitted.push(rules.name.clone());
        let text = Arc::new(ConfigText { file: config.file.clone(), text: config.text, origin: config.revision });
        let (sources, pipelines) = (self.sources.len(), self.pipelines.len());
        let own_plugins: Vec<String> = config.plugins.iter().map(|p| p.name.clone()).collect();
        let cap = Cap { memory: rules.limits.memory.map(|m| m.0), timeout: rules.limits.time.map(|t| t.0) };
        let rename = |step: &mut Step| {
            step.text = Some(text.clone());
            step.cap = cap;
            if own_plugins.contains(&step.uses) {
                step.uses = rules.scoped(&step.uses);
            }
        };
        // Paths it wrote are in its own source's snapshot, not beside the platform config.
        let within = |path: &mut std::path::PathBuf| *path = config.base.join(&*path);
        for mut source in config.sources {
            source.name = rules.scoped(&source.name);
            match &mut source.kind {
                SourceKind::Plugin(step) => rename(step),
                SourceKind::Path(path) => within(path),
                SourceKind::Git(git) => git.ca_file.iter_mut().chain(&mut git.known_hosts_file).for_each(within),
                SourceKind::Helm(_) => {}
            }
            self.sources.push(source);
        }
        for mut plugin in config.plugins {
            plugin.name = rules.scoped(&plugin.name);
            if let PluginOrigin::File { path, .. } = &mut plugin.origin {
                within(path);
            }
            self.plugins.push(plugin);
        }
        for mut pipeline in config.pipelines {
            pipeline.name = rules.scoped(&pipeline.name);
            pipeline.label = pipeline.name.replacen('/', ".", 1);
            pipeline.source = rules.scoped(&pipeline.source);
            pipeline.source_index += sources;
            pipeline.dependencies.iter_mut().for_each(|d| *d += pipelines);
            pipeline.depends_on.iter_mut().for_each(|d| *d = rules.scoped(d));
            for steps in [&mut pipeline.render, &mut pipeline.validate, &mut pipeline.notify] {
                steps.iter_mut().for_each(&rename);
            }
            pipeline.validate.extend(rules.validate.iter().cloned());
            pipeline.notify.extend(self.notify_for(&pipeline.name));
            pipeline.service_account = Some(rules.service_account.clone());
            pipeline.tenant = Some(rules.clone());
            self.pipelines.push(pipeline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN: &[&str] = &["yaml", "kustomize", "policy", "slack"];

    const PLATFORM: &str = r#"[moor]
namespace = "moor-system"

[[source]]
name = "platform"
path = "."

[[pipeline]]
name = "ingress"
source = "platform"

[[notify]]
use = "slack"
pipelines = ["team-a/*"]

[[tenant]]
name = "team-a"
source = { git = { url = "https://git.example/team-a.git" } }
namespaces = ["team-a", "team-a-*"]
service_account = "team-a/deployer"
plugins = ["yaml", "kustomize"]
sources = ["https://git.example/team-a/**"]
cluster_kinds = ["Namespace"]
limits = { max_pipelines = 2, memory = "256MiB", time = "30s" }

[[tenant.validate]]
use = "policy"
"#;

    fn platform() -> Config {
        Config::parse(Path::new("/p/moor.toml"), PLATFORM.into(), BUILTIN).unwrap()
    }

    fn tenant_config(text: &str) -> Result<TenantConfig, ConfigError> {
        platform().parse_tenant(0, Path::new("/s/team-a/1a"), "1a2b3c", text.into())
    }

    const TEAM: &str = r#"[[source]]
name = "apps"
path = "apps"

[[pipeline]]
name = "db"
source = "apps"
render = [{ use = "kustomize" }]

[[pipeline]]
name = "web"
source = "apps"
depends_on = ["db"]
"#;

    #[test]
    fn an_admitted_tenant_pipeline_is_named_labelled_and_confined_for_its_tenant() {
        let mut config = platform();
        let team = tenant_config(TEAM).unwrap();
        assert_eq!(team.config.pipelines.len(), 2);
        config.admit(team);
        let web = config.pipeline("team-a/web").unwrap();
        assert_eq!(web.label, "team-a.web");
        let apps = config.source_of(web);
        assert_eq!(apps.name, "team-a/apps");
        assert!(matches!(&apps.kind, SourceKind::Path(p) if p == Path::new("/s/team-a/1a/apps")), "{apps:?}");
        assert_eq!((web.target_namespace.as_deref(), config.tenants[0].default_namespace()), (None, Some("team-a")));
        assert_eq!(web.service_account.as_ref().map(ToString::to_string).as_deref(), Some("team-a/deployer"));
        assert_eq!(web.depends_on, ["team-a/db"]);
        assert_eq!(config.pipelines[web.dependencies[0]].name, "team-a/db");
        assert_eq!(web.tenant.as_ref().map(|t| t.name.as_str()), Some("team-a"));
        // The platform's validate step runs after the tenant's own; the platform's
        // top-level notify step picks the tenant's pipelines by their names.
        assert_eq!(web.validate.last().map(|s| s.uses.as_str()), Some("policy"));
        assert_eq!(web.notify.iter().map(|s| s.uses.as_str()).collect::<Vec<_>>(), ["slack"]);
        assert!(config.pipeline("ingress").unwrap().notify.is_empty());
        // Its own steps' calls are capped by its limits, whoever's the plugin; the
        // platform's steps keep the platform's.
        let capped = Cap { memory: Some(256 << 20), timeout: Some(std::time::Duration::from_secs(30)) };
        assert_eq!(web.render[0].cap, capped);
        assert_eq!(web.validate.last().unwrap().cap, Cap::default());
        assert_eq!(config.name_of("team-a.web"), "team-a/web");
        assert_eq!(config.name_of("ingress"), "ingress");
        // Its objects go to its namespaces, and cluster-scoped ones only as granted.
        let rules = &config.tenants[0];
        assert_eq!(rules.refuses_namespace("team-a-dev"), None);
        assert!(rules.refuses_namespace("kube-system").unwrap().contains("not one of tenant `team-a`'s"));
        assert_eq!(rules.refuses_cluster_scoped("", "Namespace", "team-a-dev"), None);
        assert!(rules.refuses_cluster_scoped("", "Namespace", "prod").is_some());
        let crb = rules.refuses_cluster_scoped("rbac.authorization.k8s.io", "ClusterRoleBinding", "x").unwrap();
        assert!(crb.contains("not granted the cluster-scoped kind `rbac.authorization.k8s.io/ClusterRoleBinding`"));
    }

    #[test]
    fn a_tenant_config_that_breaks_a_rule_is_refused_at_the_line_naming_the_tenant_and_revision() {
        let refused =
            |extra: &str| tenant_config(&format!("{TEAM}{}", extra.replace("{}", &"0".repeat(64)))).unwrap_err();
        let cases = [
            ("[[pipeline]]\nname = \"x\"\nsource = \"apps\"\n", "pipeline[2]", "at most 2 pipelines"),
            ("[[source]]\nname = \"etc\"\npath = \"../../../etc\"\n", "source[1].path", "its own source"),
            (
                "[[source]]\nname = \"other\"\ngit = { url = \"https://git.example/team-b/x.git\" }\n",
                "source[1].git.url",
                "not a source tenant `team-a` may read",
            ),
            (
                "[[source]]\nname = \"g\"\ngit = { url = \"https://git.example/team-a/x.git\", credentials = { password_env = \"TOKEN\" } }\n",
                "source[1].git.credentials.password_env",
                "not from moor's host",
            ),
            ("[moor]\nnamespace = \"x\"\n", "", "unknown field"),
            ("[[plugin]]\nname = \"mine\"\npath = \"p.wasm\"\nsha256 = \"{}\"\n", "plugin[0]", "plugins of its own"),
        ];
        for (extra, key, message) in cases {
            let e = refused(extra);
            assert!(e.key.starts_with(key) && e.to_string().contains(message), "{extra}: {e}");
            assert_eq!(e.origin.as_deref(), Some("source `tenant/team-a` at 1a2b3c"), "{e}");
        }
        let other = |pipeline: &str| {
            let text = TEAM.replace("depends_on = [\"db\"]\n", pipeline);
            tenant_config(&text).unwrap_err()
        };
        let cases = [
            ("target_namespace = \"kube-system\"\n", "pipeline[1].target_namespace", "not one of tenant"),
            ("service_account = \"team-a/admin\"\n", "pipeline[1].service_account", "apply as `team-a/deployer`"),
            ("cluster = \"prod\"\n", "pipeline[1].cluster", "no `[[cluster]]` is named"),
            (
                "render = [{ use = \"helm\" }]\n",
                "pipeline[1].render[0].use",
                "may not use plugin `helm`; it may use the platform's yaml, kustomize",
            ),
            (
                "render = [{ use = \"kustomize\", secrets = { t = { secret = \"moor-system/git\", key = \"t\" } } }]\n",
                "pipeline[1].render[0].secrets.t",
                "not one of tenant",
            ),
            ("webhook_secret = { env = \"HOOK\" }\n", "pipeline[1].webhook_secret", "not moor's environment"),
        ];
        for (extra, key, message) in cases {
            let e = other(extra);
            assert_eq!(e.key, key, "{extra}: {e}");
            assert!(e.to_string().contains(message), "{extra}: {e}");
            assert_eq!(e.line, 13, "{extra}: {e}");
        }
    }

    #[test]
    fn a_tenant_is_declared_with_a_source_namespaces_and_an_account_of_its_own() {
        let declared = |tenant: &str| {
            let text = PLATFORM.split("[[tenant]]").next().unwrap().to_owned() + "[[tenant]]\n" + tenant;
            Config::parse(Path::new("moor.toml"), text, BUILTIN)
        };
        let ok = "source = { path = \"teams/a\" }\nnamespaces = [\"a\"]\nservice_account = \"a/deployer\"\n";
        assert!(declared(&format!("name = \"a\"\n{ok}")).is_ok());
        let cases = [
            (format!("name = \"A_team\"\n{ok}"), "tenant[0].name", "lowercase letters"),
            (format!("name = \"a\"\n{}", ok.replace("a/deployer", "b/deployer")), "tenant[0].service_account", ""),
            (format!("name = \"a\"\n{ok}plugins = [\"helm\"]\n"), "tenant[0].plugins[0]", "no plugin is named"),
            (format!("name = \"a\"\n{}", ok.replace("{ path", "{ name = \"x\", path")), "tenant[0].source.name", ""),
            (format!("name = \"ingress\"\n{ok}"), "", ""),
        ];
        for (text, key, message) in &cases[..4] {
            let e = declared(text).unwrap_err();
            assert_eq!(&e.key, key, "{text}: {e}");
            assert!(e.message.contains(message), "{e}");
        }
        // A platform pipeline cannot take a name a tenant's label would have.
        let text = PLATFORM.replace("name = \"ingress\"", "name = \"team-a.web\"");
        let e = Config::parse(Path::new("moor.toml"), text, BUILTIN).unwrap_err();
        assert_eq!(e.key, "pipeline[0].name", "{e}");
        assert!(e.message.contains("tenant `team-a`'s"), "{e}");
        assert!(declared(&cases[4].0).is_ok(), "a tenant may share a name with a platform pipeline");
    }
}
