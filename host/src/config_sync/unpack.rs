//! Unpacking a ConfigMap's or Secret's keys into a directory atomically (CC-1), the way the
//! kubelet's atomic writer updates a volume:
//!
//! ```text
//! root/
//!   ..data -> ..1733150000123456789.a1b2c3   the current version; swapped with one rename
//!   ..1733150000123456789.a1b2c3/             one directory per version, written whole first
//!     prometheus.yml
//!     rules/alerts.yml
//!   prometheus.yml -> ..data/prometheus.yml   one link per top-level name
//!   rules -> ..data/rules
//! ```
//!
//! Every file is complete when it becomes visible, and a reader that resolves `..data` once
//! (or reads one file) never sees two versions mixed. The old version is removed after the
//! swap. Paths come from the keys, or from the object's `moor.dev/paths` annotation
//! (`key: relative/path`, since keys cannot hold `/`); intermediate directories are created.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use crate::labels::PATHS_ANNOTATION;
const DATA: &str = "..data";

/// Files by relative path.
pub type Payload = BTreeMap<PathBuf, Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("annotation {PATHS_ANNOTATION}: {0}")]
    Paths(String),
    #[error("key `{key}`: path `{path}` {why}")]
    BadPath { key: String, path: String, why: &'static str },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is in the way: it is not a link that config-sync made; move it away", .0.display())]
    Occupied(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

/// The files `keys` make, placed by the `moor.dev/paths` annotation's value, if any.
pub fn payload(keys: BTreeMap<String, Vec<u8>>, paths: Option<&str>) -> Result<Payload, Error> {
    let placed: BTreeMap<String, String> = match paths {
        Some(text) => serde_yaml_ng::from_str(text).map_err(|e| Error::Paths(e.to_string()))?,
        None => BTreeMap::new(),
    };
    if let Some(unknown) = placed.keys().find(|k| !keys.contains_key(*k)) {
        return Err(Error::Paths(format!("places key `{unknown}`, which the object does not have")));
    }
    let mut files = Payload::new();
    for (key, bytes) in keys {
        let path = placed.get(&key).cloned().unwrap_or_else(|| key.clone());
        let bad = |why| Error::BadPath { key: key.clone(), path: path.clone(), why };
        let relative = Path::new(&path);
        if path.is_empty() || relative.is_absolute() {
            return Err(bad("must be a relative path"));
        }
        for part in relative.components() {
            match part {
                Component::Normal(name) if !name.to_string_lossy().starts_with("..") => {}
                _ => return Err(bad("may not hold `.`, `..` or a name starting with `..`")),
            }
        }
        if files.insert(relative.components().collect(), bytes).is_some() {
            return Err(bad("is given to two keys"));
        }
    }
    // A file may not also be a directory of another.
    for path in files.keys() {
        if let Some(dir) = path.ancestors().skip(1).find(|a| files.contains_key(*a)) {
            let path = path.display().to_string();
            return Err(Error::BadPath { key: dir.display().to_string(), path, why: "is a directory of another path" });
        }
    }
    Ok(files)
}

/// Writes versions of a payload into `root`.
#[derive(Debug, Clone)]
pub struct Unpacker {
    pub root: PathBuf,
    /// File mode (0644 by default, as the kubelet's).
    pub mode: u32,
}

impl Unpacker {
    /// The payload of the current version, if there is one.
    pub fn current(&self) -> Option<Payload> {
        let data = self.root.join(DATA);
        let mut files = Payload::new();
        for entry in walkdir::WalkDir::new(&data).follow_root_links(true).min_depth(1) {
            let entry = entry.ok()?;
            if entry.file_type().is_file() {
                let relative = entry.path().strip_prefix(&data).ok()?.to_owned();
                files.insert(relative, std::fs::read(entry.path()).ok()?);
            }
        }
        data.exists().then_some(files)
    }

    /// Makes `payload` the current version; false when it already was (nothing written).
    pub fn unpack(&self, payload: &Payload) -> Result<bool, Error> {
        if self.current().as_ref() == Some(payload) {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let tops: std::collections::BTreeSet<PathBuf> =
            payload.keys().filter_map(|p| p.components().next()).map(|c| PathBuf::from(c.as_os_str())).collect();
        // Refuse before writing anything if a name is taken by something not ours.
        for top in &tops {
            let at = self.root.join(top);
            if std::fs::symlink_metadata(&at).is_ok_and(|m| !m.file_type().is_symlink()) {
                return Err(Error::Occupied(at));
            }
        }
        let version = self.write_version(payload)?;
        self.link(DATA, &version)?;
        for top in &tops {
            self.link(&top.to_string_lossy(), &Path::new(DATA).join(top))?;
        }
        self.remove_stale(&tops, &version)?;
        Ok(true)
    }

    /// Writes a whole version into a new `..<time>.<random>` directory.
    fn write_version(&self, payload: &Payload) -> Result<PathBuf, Error> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let dir = tempfile::Builder::new()
            .prefix(&format!("..{nanos}."))
            .tempdir_in(&self.root)
            .map_err(io(&self.root))?
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(io(&dir))?;
        for (relative, bytes) in payload {
            let path = dir.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, bytes).map_err(io(&path))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(self.mode)).map_err(io(&path))?;
        }
        Ok(PathBuf::from(dir.file_name().unwrap_or_default()))
    }

    /// Points `root/name` at `target` with one rename of a new link over the old one.
    fn link(&self, name: &str, target: &Path) -> Result<(), Error> {
        let at = self.root.join(name);
        if std::fs::read_link(&at).is_ok_and(|t| t == target) {
            return Ok(());
        }
        let tmp = self.root.join(format!("..tmp.{name}"));
        let _ = std::fs::remove_file(&tmp);
        symlink(target, &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &at).map_err(io(&at))
    }

    /// Removes links of names the new version does not have, and every other version
    /// directory (the old one, and any a crash left behind).
    fn remove_stale(&self, tops: &std::collections::BTreeSet<PathBuf>, current: &Path) -> Result<(), Error> {
        let entries = std::fs::read_dir(&self.root).map_err(io(&self.root))?;
        for entry in entries.flatten() {
            let name = PathBuf::from(entry.file_name());
            let path = entry.path();
            let text = name.to_string_lossy();
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            if text.starts_with("..") {
                let old_version = text != DATA && name != current && entry.file_type().is_ok_and(|t| t.is_dir());
                if old_version {
                    std::fs::remove_dir_all(&path).map_err(io(&path))?;
                }
            } else if is_link && !tops.contains(&name) && std::fs::read_link(&path).is_ok_and(|t| t.starts_with(DATA)) {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn keys_are_placed_by_the_annotation() {
        let files = payload(keys(&[("a.yml", "1"), ("alerts", "2")]), Some("alerts: rules/alerts.yml")).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), [Path::new("a.yml"), Path::new("rules/alerts.yml")]);
    }

    #[test]
    fn paths_that_leave_the_root_or_collide_are_refused_naming_the_key() {
        let e = payload(keys(&[("x", "1")]), Some("x: ../etc/passwd")).unwrap_err();
        assert_eq!(e.to_string(), "key `x`: path `../etc/passwd` may not hold `.`, `..` or a name starting with `..`");
        assert!(payload(keys(&[("x", "1")]), Some("x: /etc/passwd")).is_err());
        assert!(payload(keys(&[("x", "1")]), Some("x: ..data/x")).is_err());
        assert!(payload(keys(&[("x", "1"), ("y", "2")]), Some("y: x")).unwrap_err().to_string().contains("two keys"));
        let e = payload(keys(&[("x", "1"), ("y", "2")]), Some("y: x/y")).unwrap_err();
        assert!(e.to_string().contains("directory of another"), "{e}");
        let e = payload(keys(&[("x", "1")]), Some("z: a")).unwrap_err();
        assert!(e.to_string().contains("does not have"), "{e}");
    }

    fn read(root: &Path, path: &str) -> String {
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    #[test]
    fn a_new_version_replaces_the_old_whole_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let unpacker = Unpacker { root: root.clone(), mode: 0o644 };
        let v1 = payload(keys(&[("a", "1"), ("b", "1"), ("alerts", "1")]), Some("alerts: rules/alerts.yml")).unwrap();
        assert!(unpacker.unpack(&v1).unwrap());
        assert_eq!((read(&root, "a"), read(&root, "rules/alerts.yml")), ("1".into(), "1".into()));
        assert!(!unpacker.unpack(&v1).unwrap(), "the same payload writes nothing");

        let v2 = payload(keys(&[("a", "2"), ("c", "2")]), None).unwrap();
        assert!(unpacker.unpack(&v2).unwrap());
        assert_eq!((read(&root, "a"), read(&root, "c")), ("2".into(), "2".into()));
        assert!(!root.join("b").exists() && std::fs::symlink_metadata(root.join("b")).is_err(), "b's link is gone");
        assert!(std::fs::symlink_metadata(root.join("rules")).is_err());
        let versions: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != "..data")
            .collect();
        assert_eq!(versions.len(), 1, "only the current version is kept: {versions:?}");
        let mode = std::fs::metadata(root.join("a")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(unpacker.current(), Some(v2));
    }

    #[test]
    fn a_file_of_someone_else_in_the_way_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "mine").unwrap();
        let unpacker = Unpacker { root: dir.path().to_owned(), mode: 0o644 };
        let e = unpacker.unpack(&payload(keys(&[("a", "1")]), None).unwrap()).unwrap_err();
        assert!(matches!(e, Error::Occupied(_)), "{e}");
        assert_eq!(read(dir.path(), "a"), "mine");
        assert!(!dir.path().join(DATA).exists(), "nothing was written");
    }
}
