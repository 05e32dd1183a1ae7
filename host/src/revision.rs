//! How a revision is shown to people, one way everywhere (a leaf: the config's errors and
//! every source's messages use it).

/// A revision for people: the first 12 characters of a commit id or of a tree digest
/// (without its `sha256:`), as in every message, summary and notification.
/// A chart's `<version>@sha256:<digest>` is shown as `<version>@<12 characters>`.
pub fn short(revision: &str) -> std::borrow::Cow<'_, str> {
    if let Some((version, digest)) = revision.split_once("@sha256:") {
        return format!("{version}@{}", &digest[..digest.len().min(12)]).into();
    }
    let bare = revision.strip_prefix("sha256:").unwrap_or(revision);
    bare[..bare.len().min(12)].into()
}
