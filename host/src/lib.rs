//! Moor: a GitOps delivery engine whose renderers, validators, notifiers and sources are
//! sandboxed WebAssembly components. See ARCHITECTURE.md for the map.

pub mod apply;
pub mod cli;
pub mod config;
pub mod http;
pub mod object;
pub mod oci;
pub mod plugins;
pub mod reconcile;
pub mod schedule;
pub mod secrets;
pub mod source;
pub mod stage;

/// Installs aws-lc-rs as the process's TLS provider. kube uses it; wasmtime-wasi-http's
/// rustls also brings ring, and with two providers compiled in, rustls cannot pick one by
/// itself. Call once at start-up (later calls do nothing).
pub fn init_tls() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
