//! Rewritten trees: a renderer of the `tree-renderer` world, given the snapshot, returns
//! files of the tree with new contents instead of objects (the `sops` step decrypting what
//! kustomize's generators and patches read). The next renderer then reads that tree, laid
//! out here: a private directory beside the snapshot with the snapshot's files hard-linked
//! (never changed) and the replaced ones written owner-only, removed as soon as the render
//! is done.
//!
//! Only files the snapshot has can be replaced: a rewrite adds no file and cannot point
//! outside the tree.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path};

use crate::plugins::Rewritten;

/// What a rewrite says, checked: the new contents of files, by path relative to the
/// snapshot's root, and the plaintext it revealed (to hide from what later steps say).
#[derive(Debug, PartialEq)]
pub(super) struct TreeOverlay {
    pub files: BTreeMap<String, Vec<u8>>,
    pub revealed: Vec<String>,
}

impl TreeOverlay {
    /// The files of `rewritten` by path, each a plain path inside the tree, given once.
    pub fn of(rewritten: Rewritten) -> Result<TreeOverlay, String> {
        let mut files = BTreeMap::new();
        for file in rewritten.files {
            if !is_plain_relative(&file.path) {
                return Err(format!("`{}` is not a path inside the tree", file.path));
            }
            if files.insert(file.path.clone(), file.contents).is_some() {
                return Err(format!("`{}` is given twice", file.path));
            }
        }
        Ok(TreeOverlay { files, revealed: rewritten.revealed })
    }
}

/// A relative path of normal components only (no `..`, `.`, root or empty part).
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.split('/').any(str::is_empty)
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
}

/// The tree laid out; removed when dropped.
#[derive(Debug)]
pub(super) struct Laid {
    dir: tempfile::TempDir,
}

impl Laid {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Lays out `base` (a snapshot, or an earlier overlay) with `overlay`'s files replaced.
pub(super) fn lay_out(base: &Path, overlay: &TreeOverlay) -> Result<Laid, String> {
    for path in overlay.files.keys() {
        let meta = std::fs::symlink_metadata(base.join(path));
        if !meta.is_ok_and(|m| m.is_file()) {
            return Err(format!("`{path}` is not a file of the tree: an overlay only replaces files"));
        }
    }
    let parent = base.parent().unwrap_or(base);
    let dir = tempfile::Builder::new()
        .prefix(".overlay-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot make a directory in {}: {e}", parent.display()))?;
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    for entry in walkdir::WalkDir::new(base).min_depth(1) {
        let entry = entry.map_err(|e| e.to_string())?;
        let relative = entry.path().strip_prefix(base).expect("walkdir stays under its root");
        let target = dir.path().join(relative);
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&target).map_err(|e| io(&target, e))?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(|e| io(entry.path(), e))?;
            std::os::unix::fs::symlink(link, &target).map_err(|e| io(&target, e))?;
        } else if overlay.files.contains_key(relative.to_str().unwrap_or_default()) {
            // Written below, owner-only.
        } else if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target).map_err(|e| io(&target, e))?;
        }
    }
    for (path, contents) in &overlay.files {
        let target = dir.path().join(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(|e| io(&target, e))?;
        file.write_all(contents).map_err(|e| io(&target, e))?;
    }
    Ok(Laid { dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(files: &[(&str, &[u8])]) -> Result<TreeOverlay, String> {
        let files = files
            .iter()
            .map(|(path, contents)| crate::plugins::RewrittenFile { path: (*path).into(), contents: contents.to_vec() })
            .collect();
        TreeOverlay::of(Rewritten { files, revealed: vec!["pw".into()] })
    }

    #[test]
    fn a_rewrite_gives_files_by_path_and_what_it_revealed() {
        let ok = overlay(&[("a/b.env", b"x=1")]).unwrap();
        assert_eq!(ok.files["a/b.env"], b"x=1");
        assert_eq!(ok.revealed, ["pw"]);
        let e = overlay(&[("a/b.env", b"x=1"), ("a/b.env", b"x=2")]).unwrap_err();
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn a_rewrite_cannot_leave_the_tree() {
        for path in ["../x", "/etc/passwd", "a/../../x", "a//b", "./a", ""] {
            let e = overlay(&[(path, b"")]).unwrap_err();
            assert!(e.contains("not a path inside the tree"), "{path}: {e}");
        }
    }

    #[test]
    fn the_laid_out_tree_replaces_files_and_leaves_the_snapshot_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let store = tempfile::tempdir().unwrap();
        let snapshot = store.path().join("snap");
        std::fs::create_dir_all(snapshot.join("base")).unwrap();
        std::fs::write(snapshot.join("base/app.env"), "A=ENC[...]").unwrap();
        std::fs::write(snapshot.join("kustomization.yaml"), "resources: [base]").unwrap();
        std::os::unix::fs::symlink("kustomization.yaml", snapshot.join("link.yaml")).unwrap();
        let files = BTreeMap::from([("base/app.env".to_owned(), b"A=plain".to_vec())]);
        let laid = lay_out(&snapshot, &TreeOverlay { files, revealed: vec![] }).unwrap();
        let root = laid.root().to_owned();
        assert_eq!(std::fs::read_to_string(root.join("base/app.env")).unwrap(), "A=plain");
        assert_eq!(std::fs::metadata(root.join("base/app.env")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(root.join("link.yaml")).unwrap(), "resources: [base]");
        assert_eq!(std::fs::read_to_string(snapshot.join("base/app.env")).unwrap(), "A=ENC[...]");
        drop(laid);
        assert!(!root.exists(), "removed after the render");
        let add = BTreeMap::from([("new.env".to_owned(), b"x".to_vec())]);
        let e = lay_out(&snapshot, &TreeOverlay { files: add, revealed: vec![] }).unwrap_err();
        assert!(e.contains("only replaces files"), "{e}");
    }
}
