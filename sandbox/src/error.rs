//! Why a plugin could not be loaded or called, or the runtime set up. Every message names
//! the plugin and, for a limit, the limit.

use std::path::PathBuf;
use std::time::Duration;

use super::bindings::CONTRACT_VERSION;
use super::{Origin, PluginKind};

/// Why loading a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "plugin `{name}` is not one of Moor's plugins: declare it in a [[plugin]] with a `path` or an `oci` reference"
    )]
    Unknown { name: String },
    #[error("plugin `{name}`: {message}")]
    Pull { name: String, message: String },
    #[error("plugin `{name}`: cannot read {}: {source}", file.display())]
    Read { name: String, file: PathBuf, source: std::io::Error },
    #[error("plugin `{name}`: {} has sha256 {actual}, but the config pins {expected}; refusing to load it", file.display())]
    HashMismatch { name: String, file: PathBuf, expected: String, actual: String },
    #[error(
        "plugin `{name}` is built from Go and {} is {problem}: run `scripts/go-plugins` (it needs the Go the plugin is pinned to, see plugins/go-plugins.lock), or use the container image, which ships it",
        file.display()
    )]
    GoPlugin { name: String, file: PathBuf, problem: String },
    #[error(
        "plugin `{name}`: {origin} is {what}; expected a WebAssembly component implementing one of the moor:plugin@{CONTRACT_VERSION} worlds (build it with `cargo build --target wasm32-wasip2`), or a KRM function built as a WASI preview 1 module (`GOOS=wasip1 GOARCH=wasm go build`)"
    )]
    NotComponent { name: String, origin: Origin, what: &'static str },
    #[error(
        "plugin `{name}`: {origin} implements no Moor plugin world (it exports {exports}); expected a component exporting one of {expected}"
    )]
    WrongWorld { name: String, origin: Origin, exports: String, expected: String },
    #[error(
        "plugin `{name}`: {origin} targets moor:plugin@{found}, but this moor supports moor:plugin@{CONTRACT_VERSION}; {advice}"
    )]
    Version { name: String, origin: Origin, found: String, advice: &'static str },
    #[error("plugin `{name}`: {origin} is a {found}, but it is used as a {expected}")]
    WrongKind { name: String, origin: Origin, found: PluginKind, expected: PluginKind },
    #[error("plugin `{name}`: {origin} needs something this host does not grant: {message}")]
    Link { name: String, origin: Origin, message: String },
    #[error("plugin `{name}`: {origin} failed to compile: {message}")]
    Compile { name: String, origin: Origin, message: String },
    #[error("plugin `{name}`: describing itself failed: {source}")]
    Info { name: String, source: CallError },
    #[error("plugin `{name}`: its config schema is not a valid JSON Schema: {message}")]
    Schema { name: String, message: String },
}

/// Why a plugin call failed (as opposed to the plugin reporting diagnostics).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("plugin `{plugin}` ran past its time limit of {}", humantime::format_duration(*limit))]
    Timeout { plugin: String, limit: Duration },
    /// The run the call was made for was stopped (its timeout, a lost lease).
    #[error("plugin `{plugin}` was stopped: {why}")]
    Stopped { plugin: String, why: String },
    #[error("plugin `{plugin}` hit its memory limit of {} MiB", limit >> 20)]
    Memory { plugin: String, limit: usize },
    #[error("plugin `{plugin}` returned {size} bytes, over its output limit of {limit} bytes")]
    Output { plugin: String, size: usize, limit: usize },
    #[error("plugin `{plugin}` crashed: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin `{plugin}` could not start: {message}")]
    Instantiate { plugin: String, message: String },
    #[error("plugin `{plugin}` cannot open the snapshot {}: {message}", dir.display())]
    Snapshot { plugin: String, dir: PathBuf, message: String },
}

/// Why the plugin runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot set up the WebAssembly engine: {0:#}")]
    Engine(#[from] wasmtime::Error),
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[from] std::io::Error),
}
