//! The shape of a `[[source]]`: a local path, a git repository, a Helm chart or a source
//! plugin, and the caps on the tree it gives. Loading turns the source as written into
//! one of the four kinds, checking the rules serde cannot say.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ByteSize, Seconds, Step};

/// Where manifests come from, and how often and how much.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub kind: SourceKind,
    /// Controller mode: how often to look for a new revision; "0s" turns polling off.
    pub poll_interval: Seconds,
    pub limits: TreeLimits,
}

/// What a source reads: exactly one of `path`, `git`, `helm` or `plugin` in the file.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A local directory, relative to the config file.
    Path(PathBuf),
    Git(GitSpec),
    /// A chart from a Helm repository over HTTP, or from an OCI registry.
    Helm(HelmSpec),
    /// A source plugin and its config: `plugin = { use = "...", with = { ... } }`.
    Plugin(Step),
}

impl SourceSpec {
    /// The source plugin's step, for a plugin source.
    pub fn plugin(&self) -> Option<&Step> {
        match &self.kind {
            SourceKind::Plugin(step) => Some(step),
            _ => None,
        }
    }
}

/// A `[[source]]` as written, before it is one of the kinds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    /// Required in `[[source]]`; a tenant's source (`tenant.source`) is named for it.
    #[serde(default)]
    name: String,
    path: Option<PathBuf>,
    git: Option<GitSpec>,
    helm: Option<HelmSpec>,
    plugin: Option<Step>,
    #[serde(default = "default_poll_interval")]
    poll_interval: Seconds,
    #[serde(default)]
    limits: TreeLimits,
}

impl RawSource {
    /// The source written at `key` as its kind, checked; else the key path and what is
    /// wrong. `name` names a source written without one (a tenant's).
    pub(super) fn typed(self, key: String, name: Option<&str>) -> Result<SourceSpec, (String, String)> {
        let name = match name {
            Some(name) if self.name.is_empty() => name.to_owned(),
            Some(_) => return Err((format!("{key}.name"), "this source is named for what it is of".into())),
            None if self.name.is_empty() => return Err((key, "a source needs a `name`".into())),
            None => self.name,
        };
        let kind = match (self.path, self.git, self.helm, self.plugin) {
            (Some(path), None, None, None) => SourceKind::Path(path),
            (None, Some(git), None, None) => {
                git.check().map_err(|m| (format!("{key}.git"), m))?;
                SourceKind::Git(git)
            }
            (None, None, Some(helm), None) => {
                helm.check().map_err(|m| (format!("{key}.helm"), m))?;
                SourceKind::Helm(helm)
            }
            (None, None, None, Some(mut step)) => {
                step.at = format!("{key}.plugin");
                SourceKind::Plugin(step)
            }
            _ => return Err((key, "a source needs exactly one of `path`, `git`, `helm` or `plugin`".into())),
        };
        Ok(SourceSpec { name, kind, poll_interval: self.poll_interval, limits: self.limits })
    }
}

/// A chart of a Helm repository: `helm = { repo = "https://…", chart = "name", version = "1.2.x" }`,
/// or in an OCI registry: `repo = "oci://registry/path"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmSpec {
    /// An HTTP repository's URL (its `index.yaml` is under it), or `oci://registry/path`
    /// (the chart is `registry/path/<chart>`, as `helm push` stores it).
    pub repo: String,
    pub chart: String,
    /// A version or range (`1.2.3`, `1.2.x`, `^1.2`, `>=1.0 <2.0`); default: the newest
    /// stable version.
    pub version: Option<String>,
    /// `oci://` only: talk plain HTTP to the registry (Flux's `insecure`, Helm's
    /// `--plain-http`). HTTP repositories say `http://` in their URL instead.
    #[serde(default)]
    pub insecure: bool,
}

impl HelmSpec {
    fn check(&self) -> Result<(), String> {
        let oci = self.repo.starts_with("oci://");
        if !(oci || self.repo.starts_with("https://") || self.repo.starts_with("http://")) {
            return Err(format!("helm repository `{}` is not an http(s):// or oci:// URL", self.repo));
        }
        if self.insecure && !oci {
            return Err("`insecure` is for oci:// repositories: an HTTP repository says http:// in its URL".into());
        }
        if self.chart.is_empty() || self.chart.contains(['/', ':', '@']) {
            return Err(format!("`chart` must be a chart's name, not `{}`", self.chart));
        }
        Ok(())
    }
}

/// A git repository and what to take from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSpec {
    /// `https://`, `ssh://`, `git@host:path` or `file://` URL.
    pub url: String,
    /// A branch, a tag or a full commit id. Defaults to the remote's HEAD.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// Fetch only this many commits of history (shallow). 0 fetches everything.
    #[serde(default = "default_depth")]
    pub depth: u32,
    #[serde(default)]
    pub credentials: Option<GitCredentials>,
    /// PEM certificates trusted for an `https://` remote, besides the system's roots (a
    /// private CA). Relative to the config's directory. A Secret's `ca.crt` does the same.
    pub ca_file: Option<PathBuf>,
    /// The host keys an `ssh://` remote may present, in `known_hosts` format, relative to
    /// the config's directory. A Secret's `known_hosts` does the same; without either, the
    /// user's `~/.ssh/known_hosts`. An unknown host key is always refused.
    pub known_hosts_file: Option<PathBuf>,
}

fn default_depth() -> u32 {
    1
}

impl GitSpec {
    fn check(&self) -> Result<(), String> {
        if self.url.trim().is_empty() {
            return Err("`url` cannot be empty".into());
        }
        Ok(())
    }
}

/// Credentials for a git source, read from files or environment variables on the host.
/// Plugins never see them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitCredentials {
    pub username: Option<String>,
    pub username_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// A private key for ssh URLs.
    pub ssh_key_file: Option<PathBuf>,
    /// A Kubernetes Secret (`name` or `namespace/name`) holding `username` and `password`
    /// (HTTP basic) or `identity` (an SSH private key), and optionally `known_hosts` and
    /// `ca.crt`, as Flux's git secrets do (FA-1).
    pub secret: Option<String>,
}

/// Caps that keep a hostile tree from exhausting the host.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TreeLimits {
    pub max_files: usize,
    pub max_file_size: ByteSize,
    pub max_total_size: ByteSize,
}

impl Default for TreeLimits {
    fn default() -> Self {
        TreeLimits { max_files: 20_000, max_file_size: ByteSize(16 << 20), max_total_size: ByteSize(512 << 20) }
    }
}

fn default_poll_interval() -> Seconds {
    Seconds(std::time::Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helm(repo: &str, chart: &str, insecure: bool) -> Result<(), String> {
        let text = format!("repo = \"{repo}\"\nchart = \"{chart}\"\ninsecure = {insecure}\n");
        toml::from_str::<HelmSpec>(&text).unwrap().check()
    }

    #[test]
    fn a_helm_source_names_a_repository_url_and_a_chart() {
        assert_eq!(helm("https://charts.example.com", "podinfo", false), Ok(()));
        assert_eq!(helm("oci://ghcr.io/acme/charts", "podinfo", true), Ok(()));
        assert!(helm("charts.example.com", "podinfo", false).unwrap_err().contains("not an http(s):// or oci://"));
        assert!(
            helm("http://charts.example.com", "podinfo", true).unwrap_err().starts_with("`insecure` is for oci://")
        );
        assert!(helm("https://charts.example.com", "acme/podinfo", false).unwrap_err().contains("a chart's name"));
    }

    #[test]
    fn a_git_source_needs_a_url_and_fetches_one_commit_by_default() {
        let git: GitSpec = toml::from_str("url = \"https://example.com/x.git\"").unwrap();
        assert_eq!((git.depth, git.check()), (1, Ok(())));
        let git: GitSpec = toml::from_str("url = \" \"").unwrap();
        assert_eq!(git.check(), Err("`url` cannot be empty".into()));
    }
}
