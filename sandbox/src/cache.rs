//! On-disk cache of compiled components and modules, so a restart does not recompile.
//!
//! Layout, under the cache directory:
//! ```text
//! compiled/
//!   <engine>/              hex of the engine's precompile-compatibility hash
//!     <sha256>.cwasm       the component with that digest, compiled by that engine
//!     <sha256>.lock        held while one process compiles it
//! ```
//! A component compiled by one engine only loads into an engine with the same settings,
//! so the engine hash is part of the key. Entries are written to a temporary file and
//! renamed, so a reader never sees half an entry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

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

    /// The compiled form of `bytes` (whose digest is `sha256`), a component or a core
    /// module, from the cache when present, else compiled and stored. The bool says
    /// whether it came from the cache.
    /// Processes that want the same entry compile it once: the others wait for it (a big
    /// module takes a minute and over a gigabyte to compile).
    pub fn get<T: Compiled>(&self, engine: &Engine, sha256: &str, bytes: &[u8]) -> wasmtime::Result<(T, bool)> {
        let path = self.dir.join(format!("{sha256}.cwasm"));
        if let Some(compiled) = load(engine, &path) {
            return Ok((compiled, true));
        }
        let _compiling = self.lock(sha256);
        if let Some(compiled) = load(engine, &path) {
            return Ok((compiled, true));
        }
        let compiled = T::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &compiled.serialize()?) {
            tracing::warn!(path = %path.display(), "cannot cache compiled code: {e:#}");
        }
        Ok((compiled, false))
    }

    /// An exclusive lock on the entry `sha256`, held until dropped; `None` (compile anyway)
    /// where the cache directory cannot be written.
    fn lock(&self, sha256: &str) -> Option<std::fs::File> {
        std::fs::create_dir_all(&self.dir).ok()?;
        let file = std::fs::File::create(self.dir.join(format!("{sha256}.lock"))).ok()?;
        file.lock().ok()?;
        Some(file)
    }

    fn store(&self, path: &Path, serialized: &[u8]) -> wasmtime::Result<()> {
        Ok(write_atomically(path, serialized)?)
    }
}

/// Writes `bytes` to a temporary file next to `path` and renames it into place, so a
/// reader of the cache never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The cached entry at `path`, if there is a readable one.
fn load<T: Compiled>(engine: &Engine, path: &Path) -> Option<T> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `serialize` of an engine with the same compatibility
    // hash (the directory name), and only this cache writes it; the sha256 names the bytes,
    // so a component and a module never share an entry.
    match unsafe { T::deserialize_file(engine, path) } {
        Ok(compiled) => Some(compiled),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unreadable compiled code: {e:#}");
            None
        }
    }
}

/// What the cache holds: components (the WIT flavor) and core modules (KRM functions).
pub trait Compiled: Sized {
    fn new(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    /// # Safety
    /// `path` must hold what `serialize` wrote for an engine with the same compatibility hash.
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self>;
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
}

impl Compiled for Component {
    fn new(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, bytes)
    }

    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Component::deserialize_file(engine, path) }
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
}

impl Compiled for Module {
    fn new(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, bytes)
    }

    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Module::deserialize_file(engine, path) }
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_gets_compile_once_and_the_others_load_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = CompileCache::new(dir.path(), &engine);
        let empty_module = b"\0asm\x01\0\0\0";
        let hits: Vec<bool> = std::thread::scope(|scope| {
            let gets: Vec<_> =
                (0..4).map(|_| scope.spawn(|| cache.get::<Module>(&engine, "abc", empty_module).unwrap().1)).collect();
            gets.into_iter().map(|g| g.join().unwrap()).collect()
        });
        assert_eq!(hits.iter().filter(|hit| !**hit).count(), 1, "{hits:?}");
        assert!(cache.get::<Module>(&engine, "abc", empty_module).unwrap().1);
    }
}
