//! Sources: turn a `[[source]]` into a snapshot, a read-only, content-addressed directory.
//!
//! The snapshot store lives under the cache directory:
//! ```text
//! snapshots/<revision>/...   one finished tree per revision (commit id or tree digest)
//! snapshots/.tmp-*/          trees being written; renamed into place when complete
//! git/<url digest>.git/      bare mirrors of git sources (see `git`)
//! helm/<sha256>.tgz           chart archives of Helm repository sources (see `helm`)
//! ```
//! Every file that enters a snapshot goes through [`tree::TreeBuilder`], which refuses
//! paths that leave the tree, symlinks that point out of it, and trees over their caps.

pub mod git;
mod git_access;
pub mod helm;
pub mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, SourceKind, SourceSpec};
use crate::secrets::SecretValues;

/// A revision for people: the first 12 characters of a commit id or of a tree digest
/// (without its `sha256:`), as in every message, summary and notification.
/// A chart's `<version>@sha256:<digest>` is shown as `<version>@<12 characters>`.
pub fn short(revision: &str) -> std::borrow::Cow<'_, str> {
    if let Some((version, digest)) = revision.split_once("@sha256:") {
        return format!("{version}@{}", &digest[..digest.len().min(12)]).into();
    }
    let bare = revision.strip_prefix("sha256:").unwrap_or(revision);
    bare[..bare.len().min(12)].into()
}

/// A finished, immutable source tree.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The directory holding the tree.
    pub root: PathBuf,
    /// The commit id, or `sha256:<digest>` of a local tree.
    pub revision: String,
    /// Whether the tree was already in the store (nothing was written).
    pub reused: bool,
}

/// Why a source could not produce a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{source_name}`: {message}")]
    Tree { source_name: String, message: String },
    #[error("source `{source_name}`: cannot read {}: {error}", path.display())]
    Io { source_name: String, path: PathBuf, error: std::io::Error },
    #[error("source `{source_name}`: git: {message}")]
    Git { source_name: String, message: String },
    #[error("source `{source_name}`: helm repository: {message}")]
    Helm { source_name: String, message: String },
    #[error("source `{source_name}`: plugin `{plugin}`: {message}")]
    Plugin { source_name: String, plugin: String, message: String },
}

/// Produces snapshots for the sources of one config.
#[derive(Debug, Clone)]
pub struct Sources {
    cache: PathBuf,
    /// One lock per git source: runs of pipelines sharing a repository never write its
    /// mirror at the same time, and a fetch just made is shared (see [`FRESH`]).
    git: Arc<Mutex<HashMap<String, LastFetch>>>,
}

/// A git source's lock and its last snapshot, with when it was taken.
type LastFetch = Arc<Mutex<Option<(Instant, Snapshot)>>>;

/// How long a git snapshot answers for its source without asking the remote again: the
/// pipelines of one repository started together fetch it once, as a Flux GitRepository
/// serves many Kustomizations.
const FRESH: Duration = Duration::from_secs(2);

impl Sources {
    pub fn new(cache: &Path) -> Self {
        Sources { cache: cache.to_owned(), git: Default::default() }
    }

    pub fn store(&self) -> PathBuf {
        self.cache.join("snapshots")
    }

    /// Fetches (git, helm) or reads (path) a source into the snapshot store. Plugin sources
    /// go through [`Sources::from_plugin`] (here, an error).
    pub fn snapshot(
        &self,
        config: &Config,
        spec: &SourceSpec,
        secrets: &SecretValues,
        interrupt: &crate::interrupt::Interrupt,
    ) -> Result<Snapshot, SourceError> {
        let name = spec.name.as_str();
        let git = match &spec.kind {
            SourceKind::Path(path) => {
                return tree::snapshot_dir(name, &config.resolve(path), &self.store(), spec.limits);
            }
            SourceKind::Helm(helm) => return helm::snapshot(name, helm, &self.cache, &self.store(), spec.limits),
            SourceKind::Plugin(step) => {
                let message = "a plugin source is fetched by its plugin, through `Moor::fetch`".into();
                return Err(SourceError::Plugin { source_name: name.into(), plugin: step.uses.clone(), message });
            }
            SourceKind::Git(git) => git,
        };
        let secret = git.credentials.as_ref().and_then(|c| c.secret.as_ref());
        let secret = match secret {
            Some(secret_name) => Some(secrets.secret(secret_name, &config.settings.namespace).ok_or_else(|| {
                SourceError::Git { source_name: name.into(), message: format!("Secret `{secret_name}` was not read") }
            })?),
            None => None,
        };
        let key = format!("{}\n{}\n{:?}", config.base.display(), name, git);
        let slot = self.git.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default().clone();
        let mut last = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, snapshot)) = last.as_ref()
            && at.elapsed() < FRESH
            && snapshot.root.exists()
        {
            return Ok(snapshot.clone());
        }
        let (snapshot, did) = git::snapshot(name, git, &config.base, &self.cache, spec.limits, secret, interrupt)?;
        tracing::debug!(source = name, revision = %snapshot.revision, cloned = did.cloned, contacted = did.contacted,
            received = did.received, reused = snapshot.reused, "fetched");
        *last = Some((Instant::now(), snapshot.clone()));
        Ok(snapshot)
    }

    /// Writes the files a source plugin returned into a snapshot, checking every path. The
    /// snapshot is stored under the digest of its content; its revision is the plugin's.
    pub fn from_plugin(
        &self,
        spec: &SourceSpec,
        plugin: &str,
        revision: &str,
        files: &[crate::plugins::File],
    ) -> Result<Snapshot, SourceError> {
        let name = spec.name.as_str();
        let valid = !revision.is_empty()
            && revision.len() <= 128
            && revision.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
        if !valid {
            return Err(SourceError::Plugin {
                source_name: name.into(),
                plugin: plugin.into(),
                message: format!("revision `{revision}` is not 1 to 128 letters, digits, `.`, `_`, `:` or `-`"),
            });
        }
        let mut builder = tree::TreeBuilder::new(name, &self.store(), spec.limits)?;
        for file in files {
            builder.add_file(&file.path, file.mode & 0o111 != 0, &file.contents)?;
        }
        let key = builder.digest();
        builder.finish_keyed(&key, revision)
    }
}
