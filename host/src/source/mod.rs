//! Sources: turn a `[[source]]` into a snapshot, a read-only, content-addressed directory.
//!
//! The snapshot store lives under the cache directory:
//! ```text
//! snapshots/<revision>/...   one finished tree per revision (commit id or tree digest)
//! snapshots/.tmp-*/          trees being written; renamed into place when complete
//! git/<url digest>.git/      bare mirrors of git sources (see `git`)
//! ```
//! Every file that enters a snapshot goes through [`tree::TreeBuilder`], which refuses
//! paths that leave the tree, symlinks that point out of it, and trees over their caps.

pub mod git;
pub mod tree;

use std::path::{Path, PathBuf};

use crate::config::{Config, SourceSpec, SpannedStr};
use crate::secrets::SecretValues;

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
    #[error("source `{source_name}`: plugin `{plugin}`: {message}")]
    Plugin { source_name: String, plugin: String, message: String },
}

/// Produces snapshots for the sources of one config.
#[derive(Debug, Clone)]
pub struct Sources {
    cache: PathBuf,
}

impl Sources {
    pub fn new(cache: &Path) -> Self {
        Sources { cache: cache.to_owned() }
    }

    pub fn store(&self) -> PathBuf {
        self.cache.join("snapshots")
    }

    /// Fetches (git) or reads (path) a source into the snapshot store. Plugin sources go
    /// through [`Sources::from_plugin`].
    pub fn snapshot(
        &self,
        config: &Config,
        spec: &SourceSpec,
        secrets: &SecretValues,
    ) -> Result<Snapshot, SourceError> {
        let name = spec.name.s();
        if let Some(path) = &spec.path {
            let dir = config.resolve(path.get_ref());
            return tree::snapshot_dir(name, &dir, &self.store(), spec.limits);
        }
        let git = spec.git.as_ref().expect("checked at load: path, git or plugin").get_ref();
        let secret = git.credentials.as_ref().and_then(|c| c.secret.as_ref());
        let secret = match secret {
            Some(secret_name) => Some(secrets.secret(secret_name, &config.settings.namespace).ok_or_else(|| {
                SourceError::Git { source_name: name.into(), message: format!("Secret `{secret_name}` was not read") }
            })?),
            None => None,
        };
        git::snapshot(name, git, &config.base, &self.cache, spec.limits, secret).map(|(snapshot, _)| snapshot)
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
        let name = spec.name.s();
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
