//! The names Moor writes on the cluster's objects: its labels, its annotations and its
//! field manager. A leaf: it depends on nothing, and everything that reads or writes them
//! takes them from here.

/// The field manager of every write.
pub const MANAGER: &str = "moor";

/// Label with the instance's name, on inventories and on every applied object.
pub const INSTANCE_LABEL: &str = "moor.dev/instance";
/// Label with the pipeline's name, on inventories and on every applied object.
pub const PIPELINE_LABEL: &str = "moor.dev/pipeline";
/// Label that marks moor's own records (`inventory`), which are not managed objects.
pub const ROLE_LABEL: &str = "moor.dev/role";
/// Label every applied object carries (with [`PIPELINE_LABEL`] and [`INSTANCE_LABEL`]).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "moor");
/// kube-applier's opt-in label, on namespaces (`on`, `dry-run`, `off`) and resources (`off`).
pub const ENABLED: &str = "moor.dev/enabled";

/// Annotation with the number of objects an inventory names, so that one LIST of metadata
/// tells how much every pipeline manages.
pub const OBJECTS_ANNOTATION: &str = "moor.dev/objects";
/// Per-object annotations: the apply wave, the update strategy, the apply policy and the
/// prune policy.
pub const WAVE: &str = "moor.dev/wave";
pub const UPDATE: &str = "moor.dev/update";
pub const APPLY_POLICY: &str = "moor.dev/apply";
pub const PRUNE: &str = "moor.dev/prune";
/// Label of a shard member's Lease, with the instance it is a member of.
pub const SHARD_OF_LABEL: &str = "moor.dev/shard-of";
/// Annotation of a shard member's Lease: the view it acts on.
pub const VIEW_ANNOTATION: &str = "moor.dev/view";
/// The annotation of a config-sync Secret or ConfigMap that places keys at relative paths.
pub const PATHS_ANNOTATION: &str = "moor.dev/paths";
