//! The shape of a `[[plugin]]`: a pinned file, a pinned OCI artifact, or a built-in plugin
//! whose limits are changed. Loading turns the block as written into one of the three
//! origins, checking its pin, so that loading a plugin matches on the origin alone.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ByteSize, Problem, Seconds};
pub(crate) use crate::plugins::is_sha256;

/// A plugin the config declares, and the limits of its calls.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub origin: PluginOrigin,
    pub timeout: Option<Seconds>,
    pub memory: Option<ByteSize>,
    pub max_output: Option<ByteSize>,
}

/// Where a declared plugin's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginOrigin {
    /// One of Moor's own plugins, by its name; the block only changes its limits.
    Builtin,
    /// A file, relative to the config, pinned by its sha256.
    File { path: PathBuf, sha256: String },
    /// `registry/path:tag@sha256:<manifest digest>`, as `moor plugin push` prints it;
    /// `insecure` talks plain HTTP to the registry.
    Oci { reference: String, insecure: bool },
}

/// A `[[plugin]]` as written, before it is one of the origins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    name: String,
    path: Option<PathBuf>,
    sha256: Option<String>,
    oci: Option<String>,
    #[serde(default)]
    insecure: bool,
    timeout: Option<Seconds>,
    memory: Option<ByteSize>,
    max_output: Option<ByteSize>,
}

impl RawPlugin {
    /// The `i`th plugin with its origin, checked against the names `builtin` gives.
    pub(super) fn typed(self, i: usize, builtin: &[&str]) -> Result<PluginSpec, Problem> {
        let key = format!("plugin[{i}]");
        let at = |under: &str, message: String| (format!("{key}{under}"), message);
        let is_builtin = builtin.contains(&self.name.as_str());
        let origin = match (self.path, self.oci) {
            (Some(_), Some(_)) => return Err(at("", "a plugin is a `path` or an `oci` reference, not both".into())),
            (Some(_), None) | (None, Some(_)) if is_builtin => {
                return Err(at(
                    ".name",
                    format!("`{}` is the name of a built-in plugin; give this one another name", self.name),
                ));
            }
            (None, None) if !is_builtin => {
                return Err(at(
                    ".name",
                    format!(
                        "no built-in plugin is named `{}` (built in: {}); give a `path` and `sha256`, or an `oci` \
                         reference, for a plugin of your own",
                        self.name,
                        builtin.join(", ")
                    ),
                ));
            }
            (None, None) => {
                if self.sha256.is_some() {
                    return Err(at(".sha256", "built-in plugins are not pinned".into()));
                }
                if self.insecure {
                    return Err(at(".insecure", "`insecure` is for `oci` plugins".into()));
                }
                PluginOrigin::Builtin
            }
            (Some(path), None) => {
                if self.insecure {
                    return Err(at(".insecure", "`insecure` is for `oci` plugins".into()));
                }
                match self.sha256 {
                    None => {
                        return Err(at(
                            "",
                            "a plugin file needs a `sha256` pin (see `moor plugin inspect FILE`)".into(),
                        ));
                    }
                    Some(sha) if !is_sha256(&sha) => {
                        return Err(at(".sha256", "expected 64 hexadecimal digits".into()));
                    }
                    Some(sha256) => PluginOrigin::File { path, sha256 },
                }
            }
            (None, Some(reference)) => {
                if self.sha256.is_some() {
                    return Err(at(".sha256", "an `oci` plugin is pinned by the digest in its reference".into()));
                }
                let pinned = crate::oci::split_reference(&reference)
                    .map_err(|m| at(".oci", m))?
                    .1
                    .digest()
                    .is_some_and(|d| d.strip_prefix("sha256:").is_some_and(is_sha256));
                if !pinned {
                    return Err(at(
                        ".oci",
                        "an `oci` plugin needs its manifest digest: `registry/path:tag@sha256:…` (`moor plugin push` \
                         prints it)"
                            .into(),
                    ));
                }
                PluginOrigin::Oci { reference, insecure: self.insecure }
            }
        };
        let RawPlugin { name, timeout, memory, max_output, .. } = self;
        Ok(PluginSpec { name, origin, timeout, memory, max_output })
    }
}
