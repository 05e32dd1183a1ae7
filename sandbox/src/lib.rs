//! moor-sandbox: the wasmtime host for plugins, with what it needs and nothing of the
//! cluster (this crate may not depend on kube, the apply engine or the config): the
//! run's interrupt, which stops a call in progress, and the OCI client plugins are
//! pulled with (chart sources use it too).
//!
//! One engine, a disk cache of compiled components, one
//! pre-instantiated component per plugin and a fresh, limited store for every call.
//!
//! Architecture invariants kept here:
//! - a plugin gets `log`, an empty WASI context (no env, no args, no sockets, no stdin)
//!   and, for a renderer reading a tree, the snapshot as a read-only preopen; a notifier
//!   gets wasi:http to the hosts its step allows (every other host is denied); nothing else;
//! - every call is a fresh instance with a time limit (epoch interruption), a memory cap
//!   (a resource limiter) and a cap on the size of what it returns;
//! - a limit hit is an error naming the plugin and the limit, and leaves the runtime usable.

pub mod artifact;
mod bindings;
pub mod cache;
mod call;
mod context;
mod error;
mod http;
pub mod interrupt;
mod kinds;
pub mod krm;
mod load;
pub mod oci;
mod output;
mod plugin;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

pub use bindings::CONTRACT_VERSION;
pub use bindings::notify_start::RunStart;
pub use bindings::rewrite_tree::{Rewritten, RewrittenFile};
pub use bindings::types::{Diagnostic, Document, Event, EventReason, File, ObjectRef, PluginKind, Severity};
pub(crate) use call::CallState;
pub use call::{CallScope, Cap};
pub use context::{Cluster, RenderContext};
pub use error::{CallError, EngineError, LoadError};
pub use kinds::{Kind, Notifier, Renderer, Source, TreeRewriter, Validator};
pub use load::{Origin, PluginSource};
use plugin::{Flavor, KindIndices};
pub use plugin::{Plugin, PluginInfo, RenderInput};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

/// The Go plugins (KRM functions) this binary pins: `name sha256 go-version` lines, built
/// by `scripts/go-plugins` into the cache's `go-plugins/`.
const GO_PLUGINS: &str = include_str!("../../plugins/go-plugins.lock");

/// The Go plugins this binary knows, with the sha256 it requires of each.
pub fn go_plugins() -> impl Iterator<Item = (&'static str, &'static str)> {
    GO_PLUGINS.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
        let mut fields = l.split_whitespace();
        Some((fields.next()?, fields.next()?))
    })
}

/// Names of the standard plugins, usable without a path: those compiled into this binary
/// and the Go plugins it pins.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    builtin::BUILTIN.iter().map(|(name, _)| *name).chain(go_plugins().map(|(name, _)| name))
}

/// The component bytes of a built-in plugin.
pub fn builtin_bytes(name: &str) -> Option<&'static [u8]> {
    builtin::BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Source => "source",
            PluginKind::Renderer => "renderer",
            PluginKind::Validator => "validator",
            PluginKind::Notifier => "notifier",
        })
    }
}

/// Whether `hex` is a sha256 digest in hex (64 hex digits).
pub fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// Where the first renderer of a chain finds the snapshot inside the sandbox.
pub const SNAPSHOT_MOUNT: &str = "/snapshot";

/// Epoch ticks happen this often; time limits are rounded up to it.
const TICK: Duration = Duration::from_millis(5);

/// Largest memory any plugin may be granted; the pooling allocator reserves this much
/// address space per slot.
pub const MAX_MEMORY: usize = 1 << 30;

/// Per-plugin limits, set in TOML.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub timeout: Duration,
    pub memory: usize,
    /// Largest total size of what one call may return.
    pub output: usize,
    /// Largest amount of stdout, stderr and log text kept per call.
    pub log: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(10), memory: 256 << 20, output: 64 << 20, log: 64 << 10 }
    }
}

/// The one wasmtime engine, its cache and linker, and the epoch ticker.
pub struct Runtime {
    observer: Arc<std::sync::OnceLock<CallObserver>>,
    engine: Engine,
    linker: Linker<CallState>,
    /// The linker of KRM functions (core modules): WASI preview 1 only.
    krm_linker: wasmtime::Linker<krm::KrmState>,
    /// Where `scripts/go-plugins` puts the Go plugins.
    go_plugins: std::path::PathBuf,
    /// Where plugins pulled from OCI registries are kept.
    oci_plugins: std::path::PathBuf,
    cache: cache::CompileCache,
    ticker: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("cache", &self.cache).finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl Runtime {
    /// Builds the engine; compiled components are cached under `cache_dir`.
    pub fn new(cache_dir: &Path) -> Result<Runtime, EngineError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(256)
            .total_tables(1024)
            // Go's wasip1 modules have one large function table (helm: 53,388 entries).
            // Tables reserve address space per slot, 8 bytes an element, committed on use.
            .table_elements(65_536)
            // …and many functions: helm's instance metadata takes 1.5 MiB (a bound, not a
            // reservation).
            .max_core_instance_size(4 << 20)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_memory_size(MAX_MEMORY)
            // A call dirties few pages. Where the kernel can tell which (PAGEMAP_SCAN,
            // Linux 6.7+), reset just those with memset and keep them mapped, instead of
            // an madvise, its TLB shootdowns and fresh page faults on the next call.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(1 << 20)
            // Slots kept warm (and their resident megabyte) stay few: the controller's
            // memory stays flat however many plugin calls it has made.
            .max_unused_warm_slots(8)
            .decommit_batch_size(16);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        bindings::log::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new().name("moor-epoch".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })?
        };
        let cache = cache::CompileCache::new(cache_dir, &engine);
        let krm_linker = krm::linker(&engine)?;
        let go_plugins = cache_dir.join("go-plugins");
        let oci_plugins = cache_dir.join("oci");
        Ok(Runtime {
            observer: Default::default(),
            engine,
            linker,
            krm_linker,
            go_plugins,
            oci_plugins,
            cache,
            ticker: Some(ticker),
            stop,
        })
    }

    /// Sets the function told of every call's plugin and duration (once; for metrics).
    pub fn observe_calls(&self, observer: CallObserver) {
        let _ = self.observer.set(observer);
    }

    /// Loads a plugin: checks its pin, compiles it (or reads it from the cache), checks
    /// its world and contract version, pre-instantiates it and asks it to describe itself.
    /// Where a standard plugin comes from: the binary, or the Go plugins' directory (pinned).
    pub fn standard(&self, name: &str) -> Result<PluginSource, LoadError> {
        if let Some(bytes) = builtin_bytes(name) {
            return Ok(PluginSource::Builtin(bytes));
        }
        let (_, sha256) =
            go_plugins().find(|(n, _)| *n == name).ok_or_else(|| LoadError::Unknown { name: name.to_owned() })?;
        Ok(PluginSource::Go { path: self.go_plugins.join(format!("{name}.wasm")), sha256 })
    }

    /// The plugin `reference` (pinned by its manifest digest) pulled from its registry,
    /// or from the cache when it was pulled before.
    pub fn pull(&self, name: &str, reference: &str, plain_http: bool) -> Result<PluginSource, LoadError> {
        let (path, sha256) = artifact::pull(&self.oci_plugins, reference, plain_http)
            .map_err(|message| LoadError::Pull { name: name.to_owned(), message })?;
        Ok(PluginSource::File { path, sha256 })
    }

    pub fn load(&self, name: &str, source: PluginSource, limits: Limits) -> Result<Plugin, LoadError> {
        load::load(self, name, source, limits)
    }
}

/// Told the plugin's name and the duration of every call.
pub type CallObserver = Box<dyn Fn(&str, Duration) + Send + Sync>;
