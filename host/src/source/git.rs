//! The git source, on gix: a bare mirror per URL in the cache, shallow fetches of just the
//! wanted ref, and snapshots of commits written through [`TreeBuilder`].
//!
//! Fetching an unchanged ref costs one ref advertisement: when the advertised commit is
//! already in the mirror no pack is requested, and when its snapshot exists nothing is
//! written. A pinned commit that is already in the mirror needs no network at all.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use gix::remote::Direction;
use sha2::{Digest, Sha256};

use super::git_access::Access;
use super::tree::TreeBuilder;
use super::{Snapshot, SourceError};
use crate::causes::causes;
use crate::config::{GitSpec, TreeLimits};
use crate::interrupt::Interrupt;

/// What a fetch had to do, for the `fetched` debug line that says why a fetch cost what it
/// did (a clone, a ref advertisement, a pack, a tree written). Tests read it for the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchReport {
    /// The mirror was created (a clone).
    pub cloned: bool,
    /// The remote was contacted.
    pub contacted: bool,
    /// A pack was received.
    pub received: bool,
    /// The commit's tree was written into the snapshot store (it was not there yet).
    pub written: bool,
}

/// Resolves `spec` to a commit, fetching what is missing, and snapshots it.
pub fn snapshot(
    source: &str,
    spec: &GitSpec,
    base: &Path,
    cache: &Path,
    limits: TreeLimits,
    secret: Option<&BTreeMap<String, String>>,
    interrupt: &Interrupt,
) -> Result<(Snapshot, FetchReport), SourceError> {
    let err = |message: String| SourceError::Git { source_name: source.into(), message };
    let url = normalize_url(&spec.url, base);
    let mirror = cache.join("git").join(format!("{}.git", &hex::encode(Sha256::digest(url.as_bytes()))[..20]));
    let mut report = FetchReport::default();

    let repo = if mirror.join("HEAD").exists() {
        gix::open(&mirror).map_err(|e| err(format!("cannot open mirror {}: {e}", mirror.display())))?
    } else {
        report.cloned = true;
        std::fs::create_dir_all(&mirror).map_err(|e| err(format!("cannot create mirror {}: {e}", mirror.display())))?;
        gix::init_bare(&mirror).map_err(|e| err(format!("cannot create mirror {}: {e}", mirror.display())))?
    };

    let pinned = spec.reference.as_deref().filter(|r| is_full_commit_id(r));
    let commit_id =
        match pinned.and_then(|id| gix::ObjectId::from_hex(id.as_bytes()).ok()).filter(|id| repo.has_object(id)) {
            Some(id) => id,
            None => fetch(&repo, &url, spec, base, secret, interrupt, &mut report).map_err(|m| err(redact(&m)))?,
        };

    let commit = repo
        .find_object(commit_id)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| err(format!("{commit_id} is not a commit: {e}")))?;
    let revision = commit.id.to_string();
    let store = cache.join("snapshots");
    if store.join(&revision).exists() {
        return Ok((Snapshot { root: store.join(&revision), revision }, report));
    }
    let tree = commit.tree().map_err(|e| err(format!("cannot read the tree of {revision}: {e}")))?;
    let entries =
        tree.traverse().breadthfirst.files().map_err(|e| err(format!("cannot walk the tree of {revision}: {e}")))?;
    let mut builder = TreeBuilder::new(source, &store, limits)?;
    for entry in entries {
        let path = entry.filepath.to_string();
        use gix::object::tree::EntryKind;
        match entry.mode.kind() {
            EntryKind::Tree => {}
            EntryKind::Commit => tracing::warn!(source, path, "skipping submodule"),
            kind @ (EntryKind::Blob | EntryKind::BlobExecutable | EntryKind::Link) => {
                let object = repo.find_object(entry.oid).map_err(|e| err(format!("cannot read `{path}`: {e}")))?;
                if kind == EntryKind::Link {
                    builder.add_symlink(&path, &String::from_utf8_lossy(&object.data))?;
                } else {
                    builder.add_file(&path, kind == EntryKind::BlobExecutable, &object.data)?;
                }
            }
        }
    }
    report.written = true;
    builder.finish(&revision).map(|s| (s, report))
}

/// Contacts the remote, receives a pack unless the wanted commit is already here, and
/// returns the commit id.
fn fetch(
    repo: &gix::Repository,
    url: &str,
    spec: &GitSpec,
    base: &Path,
    secret: Option<&BTreeMap<String, String>>,
    interrupt: &Interrupt,
    report: &mut FetchReport,
) -> Result<gix::ObjectId, String> {
    let wanted = spec.reference.clone().unwrap_or_else(|| "HEAD".into());
    let mut repo = repo.clone();
    let access = Access::new(spec, url, base, secret)?;
    access.configure(&mut repo)?;
    let refspec = if is_full_commit_id(&wanted) { wanted.clone() } else { format!("+{wanted}:refs/moor/wanted") };
    let remote = repo
        .remote_at(url)
        .map_err(|e| format!("invalid URL: {e}"))?
        .with_refspecs([refspec.as_str()], Direction::Fetch)
        .map_err(|e| format!("invalid ref `{wanted}`: {e}"))?
        .with_fetch_tags(gix::remote::fetch::Tags::None);
    let connection = remote.connect(Direction::Fetch).map_err(|e| format!("cannot connect: {}", causes(&e)))?;
    let connection = access.connect(&repo, url, connection, interrupt)?;
    report.contacted = true;
    let prepare = connection
        .prepare_fetch(gix::progress::Discard, gix::remote::ref_map::Options::default())
        .map_err(|e| stopped(interrupt, access.explain(format!("cannot list refs: {}", causes(&e)))))?;
    let advertised = prepare
        .ref_map()
        .mappings
        .iter()
        .find_map(|m| m.remote.as_id().map(ToOwned::to_owned))
        .ok_or_else(|| format!("the remote has no ref `{wanted}`"))?;
    if repo.has_object(advertised) {
        return Ok(advertised);
    }
    let shallow = match NonZeroU32::new(spec.depth) {
        Some(depth) if !is_full_commit_id(&wanted) => gix::remote::fetch::Shallow::DepthAtRemote(depth),
        _ => gix::remote::fetch::Shallow::NoChange,
    };
    prepare
        .with_shallow(shallow)
        .receive(gix::progress::Discard, interrupt.flag())
        .map_err(|e| stopped(interrupt, access.explain(format!("fetch failed: {}", causes(&e)))))?;
    report.received = true;
    Ok(advertised)
}

/// A fetch's error, or why the run stopped it (what gix says then is a consequence).
fn stopped(interrupt: &Interrupt, message: String) -> String {
    match interrupt.why() {
        Some(why) => format!("the fetch was stopped: {why}"),
        None => message,
    }
}

fn is_full_commit_id(r: &str) -> bool {
    r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())
}

/// Makes relative `file` URLs and plain paths absolute against the config's directory.
fn normalize_url(url: &str, base: &Path) -> String {
    if let Some(path) = url.strip_prefix("file://") {
        let p = PathBuf::from(path);
        if p.is_relative() {
            return format!("file://{}", base.join(p).display());
        }
        return url.to_owned();
    }
    let looks_remote = url.contains("://") || (url.contains('@') && url.contains(':'));
    if !looks_remote && Path::new(url).is_relative() {
        return base.join(url).display().to_string();
    }
    url.to_owned()
}

/// Hides the password part of any `scheme://user:password@host` in `text`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c.is_whitespace() || c == '/' || c == '`' || c == '"').unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let user = authority[..at].split(':').next().unwrap_or("");
                out.push_str(user);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact("cannot reach https://bob:hunter2@example.com/x.git"),
            "cannot reach https://bob:***@example.com/x.git"
        );
        assert_eq!(redact("https://example.com/x"), "https://example.com/x");
    }
}
