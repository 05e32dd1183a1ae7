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

pub use crate::revision::short;

/// A finished, immutable source tree.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The directory holding the tree.
    pub root: PathBuf,
    /// The commit id, or `sha256:<digest>` of a local tree.
    pub revision: String,
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

impl SourceError {
    /// A git error of source `name`, for a message.
    fn git(name: &str) -> impl Fn(String) -> SourceError {
        let source_name = name.to_owned();
        move |message| SourceError::Git { source_name: source_name.clone(), message }
    }

    /// A Helm repository error of source `name`, for a message.
    fn helm(name: &str) -> impl Fn(String) -> SourceError {
        let source_name = name.to_owned();
        move |message| SourceError::Helm { source_name: source_name.clone(), message }
    }
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
            SourceKind::Helm(helm) => {
                let (helm, cache, store, limits) = (helm.clone(), self.cache.clone(), self.store(), spec.limits);
                let source = name.to_owned();
                return until_stopped(name, interrupt, SourceError::helm(name), move || {
                    helm::snapshot(&source, &helm, &cache, &store, limits)
                });
            }
            SourceKind::Plugin(step) => {
                let message = "a plugin source is fetched by its plugin, through `Moor::fetch`".into();
                return Err(SourceError::Plugin { source_name: name.into(), plugin: step.uses.clone(), message });
            }
            SourceKind::Git(git) => git,
        };
        let secret = git.credentials.as_ref().and_then(|c| c.secret.as_ref());
        let secret = match secret {
            Some(secret_name) => Some(
                secrets
                    .secret(secret_name, &config.settings.namespace)
                    .ok_or_else(|| SourceError::git(name)(format!("Secret `{secret_name}` was not read")))?,
            ),
            None => None,
        };
        let key = format!("{}\n{}\n{:?}", config.base.display(), name, git);
        let slot = self.git.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default().clone();
        // The pipelines of a repository started together share one fetch: no thread for them.
        if let Ok(last) = slot.try_lock()
            && let Some(snapshot) = fresh(&last)
        {
            return Ok(snapshot);
        }
        let (source, git, base, cache) = (name.to_owned(), git.clone(), config.base.clone(), self.cache.clone());
        let (limits, secret, stop) = (spec.limits, secret.cloned(), interrupt.clone());
        // The source's lock is taken on the fetch's thread: a fetch the run stopped waiting
        // for still holds the mirror until it ends, so the next one never races it.
        until_stopped(name, interrupt, SourceError::git(name), move || {
            let mut last = slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(snapshot) = fresh(&last) {
                return Ok(snapshot);
            }
            let (snapshot, did) = git::snapshot(&source, &git, &base, &cache, limits, secret.as_ref(), &stop)?;
            tracing::debug!(source, revision = %snapshot.revision, cloned = did.cloned, contacted = did.contacted,
                received = did.received, written = did.written, "fetched");
            *last = Some((Instant::now(), snapshot.clone()));
            Ok(snapshot)
        })
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

/// The last snapshot of a git source, if it was taken less than [`FRESH`] ago.
fn fresh(last: &Option<(Instant, Snapshot)>) -> Option<Snapshot> {
    let (at, snapshot) = last.as_ref()?;
    (at.elapsed() < FRESH && snapshot.root.exists()).then(|| snapshot.clone())
}

/// Runs a fetch on a thread of its own and waits for it, looking at `interrupt` every
/// 100 ms: a fetch stuck where neither gix's flag nor a deadline reaches (an HTTP handshake
/// that never ends, which gix's blocking transport waits out) stops the run within a second
/// of its timeout or of a lost lease, as a plugin call does. The thread it leaves ends at its
/// request deadline: the run's timeout for git, the client's for Helm.
fn until_stopped<T: Send + 'static>(
    name: &str,
    interrupt: &crate::interrupt::Interrupt,
    error: impl Fn(String) -> SourceError,
    fetch: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    use std::sync::mpsc::RecvTimeoutError;
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name(format!("fetch {name}"))
        .spawn(move || {
            let _run = span.enter();
            let _ = done.send(fetch());
        })
        .map_err(|e| error(format!("cannot start the fetch: {e}")))?;
    loop {
        match result.recv_timeout(Duration::from_millis(100)) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Disconnected) => return Err(error("the fetch panicked".into())),
            Err(RecvTimeoutError::Timeout) => {
                if let Some(why) = interrupt.why() {
                    return Err(error(format!("the fetch was stopped: {why}")));
                }
            }
        }
    }
}
