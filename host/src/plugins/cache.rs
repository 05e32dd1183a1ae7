//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! Layout, under the cache directory:
//! ```text
//! compiled/
//!   <engine>/              hex of the engine's precompile-compatibility hash
//!     <sha256>.cwasm       the component with that digest, compiled by that engine
//! ```
//! A component compiled by one engine only loads into an engine with the same settings,
//! so the engine hash is part of the key. Entries are written to a temporary file and
//! renamed, so a reader never sees half an entry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(root: &Path, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache { dir: root.join("compiled").join(format!("{:016x}", hasher.finish())) }
    }

    /// The compiled component for `bytes` (whose digest is `sha256`), from the cache when
    /// present, else compiled and stored. The bool says whether it came from the cache.
    pub fn get(&self, engine: &Engine, sha256: &str, bytes: &[u8]) -> wasmtime::Result<(Component, bool)> {
        let path = self.dir.join(format!("{sha256}.cwasm"));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an engine with the
            // same compatibility hash (the directory name), and only this cache writes it.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => tracing::warn!(path = %path.display(), "ignoring unreadable compiled component: {e:#}"),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), "cannot cache compiled component: {e:#}");
        }
        Ok((component, false))
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let serialized = component.serialize()?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, &serialized)?;
        tmp.persist(path)?;
        Ok(())
    }
}
