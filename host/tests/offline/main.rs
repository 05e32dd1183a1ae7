//! Tests that need no cluster: the plugin sandbox, plugin loading, config errors, sources
//! and the standard plugins, all through the library as `moor` uses it.

mod config_errors;
mod conventions;
mod fixtures;
mod git;
mod hostile;
mod hostile_generated;
mod krm;
mod layers;
mod loading;
mod plugin_authoring;
mod quickstart;
mod sandbox;
mod sops;
mod stopping;
mod support;
