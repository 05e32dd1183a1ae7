//! The files kustomize generators and patches read, decrypted before kustomize runs, as
//! Flux's kustomize-controller does (`DecryptSources`): from the pipeline's kustomization
//! file, and those of the directories its `resources` and `components` name (inside the
//! source), every `secretGenerator[].files` (`key=path`: the format is the key's),
//! `secretGenerator[].envs` (dotenv unless the name says otherwise) and `patches[].path`
//! that holds its format's SOPS marker.
//!
//! Paths are resolved lexically under the source's root; a reference outside it is left to
//! kustomize, which refuses it. A missing file is left to kustomize too.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::decrypt::Error;
use crate::files::{self, Format};

/// The names kustomize reads a kustomization from.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// One decrypted file: its path relative to the source's root, and its plaintext.
#[derive(Debug)]
pub struct Decrypted {
    pub path: String,
    pub plain: files::Plain,
}

/// Why a source file could not be decrypted: the file (relative to the root) and why.
#[derive(Debug)]
pub struct Failure {
    pub file: String,
    pub error: String,
}

/// Decrypts what the kustomization in `root/path` and those it includes read.
pub fn decrypt_sources(
    root: &Path,
    path: &str,
    identities: &[Box<dyn age::Identity + Send + Sync>],
) -> Result<Vec<Decrypted>, Failure> {
    let mut walk = Walk { root, identities, dirs: BTreeSet::new(), files: BTreeSet::new(), out: Vec::new() };
    if let Some(dir) = normalize("", path) {
        walk.dir(&dir)?;
    }
    Ok(walk.out)
}

struct Walk<'a> {
    root: &'a Path,
    identities: &'a [Box<dyn age::Identity + Send + Sync>],
    dirs: BTreeSet<String>,
    files: BTreeSet<String>,
    out: Vec<Decrypted>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &str) -> Result<(), Failure> {
        if !self.dirs.insert(dir.to_owned()) || !self.root.join(dir).is_dir() {
            return Ok(());
        }
        let found: Vec<&str> =
            KUSTOMIZATION_FILES.into_iter().filter(|name| self.root.join(dir).join(name).is_file()).collect();
        let file = match found.as_slice() {
            [] => return Ok(()),
            [one] => join(dir, one),
            _ => return Err(Failure { file: dir.to_owned(), error: "found more than one kustomization file".into() }),
        };
        let fail = |error: String| Failure { file: file.clone(), error };
        let text = std::fs::read_to_string(self.root.join(&file)).map_err(|e| fail(e.to_string()))?;
        let kustomization: Value = serde_saphyr::from_str(&text).map_err(|e| fail(format!("invalid YAML: {e}")))?;
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        for generator in kustomization.get("secretGenerator").and_then(Value::as_array).into_iter().flatten() {
            for source in strings(generator.get("files")) {
                let (key, path) = source.split_once('=').unwrap_or((&source, &source));
                self.file(dir, path, Format::for_path(key), &file)?;
            }
            let single = generator.get("env").and_then(Value::as_str).map(str::to_owned);
            for env in strings(generator.get("envs")).into_iter().chain(single) {
                let format = match Format::for_path(&env) {
                    Format::Binary => Format::Dotenv,
                    other => other,
                };
                self.file(dir, &env, format, &file)?;
            }
        }
        for patch in kustomization.get("patches").and_then(Value::as_array).into_iter().flatten() {
            if let Some(path) = patch.get("path").and_then(Value::as_str).filter(|p| !p.contains("://")) {
                self.file(dir, path, Format::for_path(path), &file)?;
            }
        }
        let included = [strings(kustomization.get("resources")), strings(kustomization.get("components"))];
        for resource in included.iter().flatten() {
            if let Some(sub) = normalize(dir, resource) {
                self.dir(&sub)?;
            }
        }
        Ok(())
    }

    /// Decrypts `path` (relative to `dir`) if it is a SOPS file of `format`.
    fn file(&mut self, dir: &str, path: &str, format: Format, kustomization: &str) -> Result<(), Failure> {
        let Some(file) = normalize(dir, path) else {
            moor_plugin_sdk::log::warn(&format!("{kustomization}: `{path}` is outside the source; not decrypted"));
            return Ok(());
        };
        if self.files.contains(&file) {
            return Ok(());
        }
        let Ok(data) = std::fs::read(self.root.join(&file)) else { return Ok(()) };
        if !format.is_encrypted(&data) {
            return Ok(());
        }
        let plain = files::decrypt_file(&data, format, format, self.identities)
            .map_err(|e: Error| Failure { file: file.clone(), error: e.to_string() })?;
        self.files.insert(file.clone());
        self.out.push(Decrypted { path: file, plain });
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

/// `path` relative to `dir`, both under the root, as a clean relative path (`""` for the
/// root); `None` when it is absolute or leaves the root.
fn normalize(dir: &str, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in dir.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_under_the_root_only() {
        assert_eq!(normalize("overlay", "../base").as_deref(), Some("base"));
        assert_eq!(normalize("", "./a//b/").as_deref(), Some("a/b"));
        assert_eq!(normalize("a", "../../etc/passwd"), None);
        assert_eq!(normalize("a", "/etc/passwd"), None);
        assert_eq!(normalize("", "").as_deref(), Some(""));
    }
}
