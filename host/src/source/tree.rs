//! Writing trees into the snapshot store safely, and snapshotting a local directory.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Snapshot, SourceError};
use crate::config::TreeLimits;

/// Builds one snapshot in a temporary directory, checking everything that goes in.
#[derive(Debug)]
pub struct TreeBuilder {
    source: String,
    store: PathBuf,
    tmp: tempfile::TempDir,
    limits: TreeLimits,
    files: usize,
    bytes: usize,
    digest: Sha256,
}

impl TreeBuilder {
    pub fn new(source: &str, store: &Path, limits: TreeLimits) -> Result<Self, SourceError> {
        std::fs::create_dir_all(store).map_err(|error| SourceError::Io {
            source_name: source.into(),
            path: store.into(),
            error,
        })?;
        let tmp = tempfile::Builder::new().prefix(".tmp-").tempdir_in(store).map_err(|error| SourceError::Io {
            source_name: source.into(),
            path: store.into(),
            error,
        })?;
        Ok(TreeBuilder {
            source: source.into(),
            store: store.into(),
            tmp,
            limits,
            files: 0,
            bytes: 0,
            digest: Sha256::new(),
        })
    }

    fn error(&self, message: String) -> SourceError {
        SourceError::Tree { source_name: self.source.clone(), message }
    }

    /// Checks that `path` is a plain relative path inside the tree.
    fn check_path(&self, path: &str) -> Result<PathBuf, SourceError> {
        let p = Path::new(path);
        let bad = path.is_empty()
            || path.contains('\0')
            || p.is_absolute()
            || path.split('/').any(|segment| matches!(segment, "" | "." | ".."));
        if bad {
            return Err(self.error(format!("refusing path `{path}`: paths must be relative and stay inside the tree")));
        }
        Ok(self.tmp.path().join(p))
    }

    /// Adds a regular file.
    pub fn add_file(&mut self, path: &str, executable: bool, contents: &[u8]) -> Result<(), SourceError> {
        let target = self.check_path(path)?;
        self.count(path, contents.len())?;
        self.digest.update(format!("file {path} {} {}\n", u8::from(executable), contents.len()));
        self.digest.update(contents);
        let io = |error| SourceError::Io { source_name: self.source.clone(), path: PathBuf::from(path), error };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = std::fs::File::create(&target).map_err(io)?;
        file.write_all(contents).map_err(io)?;
        Ok(())
    }

    /// Adds a symlink; it must be relative and resolve inside the tree.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), SourceError> {
        let at = self.check_path(path)?;
        let parent = Path::new(path).parent().unwrap_or(Path::new(""));
        if Path::new(target).is_absolute() || !stays_inside(parent, Path::new(target)) {
            return Err(self.error(format!("symlink `{path}` points outside the tree (`{target}`)")));
        }
        self.count(path, 0)?;
        self.digest.update(format!("link {path} {target}\n"));
        let io = |error| SourceError::Io { source_name: self.source.clone(), path: PathBuf::from(path), error };
        if let Some(dir) = at.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::os::unix::fs::symlink(target, &at).map_err(io)
    }

    fn count(&mut self, path: &str, size: usize) -> Result<(), SourceError> {
        self.files += 1;
        self.bytes += size;
        if self.files > self.limits.max_files {
            return Err(self.error(format!("more than {} files (the `max_files` limit)", self.limits.max_files)));
        }
        if size > self.limits.max_file_size.0 {
            return Err(self.error(format!(
                "`{path}` is {size} bytes, over the {} byte `max_file_size` limit",
                self.limits.max_file_size.0
            )));
        }
        if self.bytes > self.limits.max_total_size.0 {
            return Err(self
                .error(format!("the tree is over the {} byte `max_total_size` limit", self.limits.max_total_size.0)));
        }
        Ok(())
    }

    /// The digest of everything added so far, as `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.digest.clone().finalize()))
    }

    /// Moves the tree into the store under `revision`, unless it is there already.
    pub fn finish(self, revision: &str) -> Result<Snapshot, SourceError> {
        self.finish_keyed(revision, revision)
    }

    /// Moves the tree into the store under `key` and names it `revision`.
    pub fn finish_keyed(self, key: &str, revision: &str) -> Result<Snapshot, SourceError> {
        let root = self.store.join(key.replace(':', "-"));
        if root.exists() {
            return Ok(Snapshot { root, revision: revision.into() });
        }
        let tmp = self.tmp.keep();
        match std::fs::rename(&tmp, &root) {
            Ok(()) => Ok(Snapshot { root, revision: revision.into() }),
            // Someone else finished the same revision first: theirs is as good as ours.
            Err(_) if root.exists() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(Snapshot { root, revision: revision.into() })
            }
            Err(error) => Err(SourceError::Io { source_name: self.source, path: root, error }),
        }
    }
}

/// Whether `target`, relative to directory `from` (itself relative to the root), stays
/// inside the root.
fn stays_inside(from: &Path, target: &Path) -> bool {
    let mut depth: isize = from.components().count() as isize;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Snapshots a local directory. Its revision is the digest of the tree.
pub fn snapshot_dir(source: &str, dir: &Path, store: &Path, limits: TreeLimits) -> Result<Snapshot, SourceError> {
    let io =
        |path: &Path, error: std::io::Error| SourceError::Io { source_name: source.into(), path: path.into(), error };
    let meta = std::fs::metadata(dir).map_err(|e| io(dir, e))?;
    if !meta.is_dir() {
        return Err(SourceError::Tree {
            source_name: source.into(),
            message: format!("{} is not a directory", dir.display()),
        });
    }
    let mut builder = TreeBuilder::new(source, store, limits)?;
    let walk = walkdir::WalkDir::new(dir).follow_links(false).sort_by_file_name().min_depth(1);
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_owned();
            io(&path, e.into())
        })?;
        let rel = entry.path().strip_prefix(dir).expect("walkdir stays under its root");
        if rel.components().any(|c| c.as_os_str() == ".git") {
            continue;
        }
        let Some(rel_str) = rel.to_str() else {
            return Err(SourceError::Tree {
                source_name: source.into(),
                message: format!("{} is not a UTF-8 path", rel.display()),
            });
        };
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|e| io(entry.path(), e))?;
            builder.add_symlink(rel_str, &target.to_string_lossy())?;
        } else if kind.is_file() {
            let size = entry.metadata().map_err(|e| io(entry.path(), e.into()))?.len() as usize;
            if size > limits.max_file_size.0 {
                // Fail before reading a huge file into memory.
                return Err(SourceError::Tree {
                    source_name: source.into(),
                    message: format!(
                        "`{rel_str}` is {size} bytes, over the {} byte `max_file_size` limit",
                        limits.max_file_size.0
                    ),
                });
            }
            let contents = std::fs::read(entry.path()).map_err(|e| io(entry.path(), e))?;
            let executable = std::os::unix::fs::PermissionsExt::mode(
                &entry.metadata().map_err(|e| io(entry.path(), e.into()))?.permissions(),
            ) & 0o111
                != 0;
            builder.add_file(rel_str, executable, &contents)?;
        } else {
            return Err(SourceError::Tree {
                source_name: source.into(),
                message: format!("`{rel_str}` is not a regular file, directory or symlink"),
            });
        }
    }
    let revision = builder.digest();
    builder.finish(&revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_that_climb_out_are_caught() {
        assert!(stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(stays_inside(Path::new("a"), Path::new("../c")));
        assert!(!stays_inside(Path::new("a"), Path::new("../../etc/passwd")));
        assert!(!stays_inside(Path::new(""), Path::new("..")));
    }
}
