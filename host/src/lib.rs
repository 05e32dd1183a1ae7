//! Moor: a GitOps delivery engine whose renderers, validators, notifiers and sources are
//! sandboxed WebAssembly components. See ARCHITECTURE.md for the map.

pub mod apply;
pub mod causes;
pub mod cli;
pub mod config;
pub mod config_sync;
pub mod http;
pub mod kube_api;
pub mod labels;
pub mod metrics;
pub mod object;
pub mod reconcile;
pub mod revision;
pub mod schedule;
pub mod secrets;
pub mod source;
pub mod stage;
pub mod wait;

// The plugin sandbox, the run's interrupt and the OCI client are the `moor-sandbox` crate
// (no kube in it); they keep their paths here.
pub use moor_sandbox as plugins;
pub use moor_sandbox::{interrupt, oci};

/// Installs ring as the process's TLS provider, for every TLS user (kube, reqwest and the
/// git and OCI clients on it, wasmtime-wasi-http). It is the only provider built (the
/// workspace's Cargo.toml keeps aws-lc-rs out); installing it says so where a second one
/// would otherwise make rustls refuse to pick. Call once at start-up (later calls do nothing).
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
