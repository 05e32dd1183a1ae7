//! Moor: a GitOps delivery engine whose renderers, validators, notifiers and sources are
//! sandboxed WebAssembly components. See ARCHITECTURE.md for the map.

pub mod apply;
pub mod cli;
pub mod config;
pub mod object;
pub mod plugins;
pub mod reconcile;
pub mod secrets;
pub mod source;
