//! The stages of the pipeline, as status, metrics and notifications name them.

use serde::Serialize;

/// A stage of the pipeline in ARCHITECTURE.md's picture (plus the scheduler's own reason
/// for a run not to happen: its dependencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Loading the config and plugins, reading secrets.
    Prepare,
    Source,
    Render,
    Validate,
    /// A dependency did not become ready.
    Dependencies,
    /// Reaching the cluster, reading what is there, deciding what changes.
    Plan,
    Apply,
    Prune,
    Health,
    /// Writing the inventory.
    Record,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prepare => "prepare",
            Stage::Source => "source",
            Stage::Render => "render",
            Stage::Validate => "validate",
            Stage::Dependencies => "dependencies",
            Stage::Plan => "plan",
            Stage::Apply => "apply",
            Stage::Prune => "prune",
            Stage::Health => "health",
            Stage::Record => "record",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
