//! Tests against the real control plane of tests/cluster (see moor_e2e's docs).

mod apply;
mod chaos;
mod config_sync;
mod control_plane;
mod control_plane_faults;
mod controller;
mod entrypoint;
mod faults;
mod git_servers;
mod helm;
mod helm_repo;
mod http_limits;
mod image;
mod instances;
mod kustomize;
mod notifiers;
mod oci_plugins;
mod platform;
mod realworld;
mod remote;
mod renders;
mod shard;
mod sops;
mod substitute;
mod tenants;
