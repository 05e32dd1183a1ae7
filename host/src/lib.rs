//! Moor: a GitOps delivery engine whose renderers, validators, notifiers and sources are
//! sandboxed WebAssembly components. See ARCHITECTURE.md for the map.

pub mod plugins;
pub mod config;
pub mod source;
pub mod object;
pub mod reconcile;
pub mod cli;
