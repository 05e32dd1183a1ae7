//! Loading a plugin: pin check, component check, compile (cached), world and version
//! check, pre-instantiation and self-description.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::bindings::{self, CONTRACT_VERSION};
use super::{Flavor, KindIndices, Limits, LoadError, Plugin, PluginInfo, PluginKind, Runtime, krm};

/// Where a plugin's component comes from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// Compiled into the `moor` binary.
    Builtin(&'static [u8]),
    /// A file, pinned by its sha256 (hex).
    File { path: PathBuf, sha256: String },
    /// A file that is not pinned: only `moor plugin inspect` loads plugins this way.
    Inspect(PathBuf),
    /// A Go plugin built by `scripts/go-plugins`, pinned by this binary.
    Go { path: PathBuf, sha256: &'static str },
}

/// Where a loaded plugin came from, for messages.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Builtin,
    /// A Go plugin of this binary, from `scripts/go-plugins`.
    Go,
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("the built-in component"),
            Origin::Go => f.write_str("the standard Go plugin"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a notifier may export beside `notify`: the `status-notifier` world's run start.
const START_INTERFACE: &str = "notify-start";
/// What a renderer may export beside `render`: the `tree-renderer` world's rewrite.
const REWRITE_INTERFACE: &str = "rewrite-tree";

/// The interface each kind exports.
const INTERFACES: &[(&str, PluginKind)] = &[
    ("render", PluginKind::Renderer),
    ("validate", PluginKind::Validator),
    ("notify", PluginKind::Notifier),
    ("fetch", PluginKind::Source),
];

pub(super) fn load(runtime: &Runtime, name: &str, source: PluginSource, limits: Limits) -> Result<Plugin, LoadError> {
    let (bytes, origin): (std::borrow::Cow<'static, [u8]>, Origin) = match &source {
        PluginSource::Builtin(bytes) => ((*bytes).into(), Origin::Builtin),
        PluginSource::Go { path, sha256 } => {
            let missing = |problem: String| LoadError::GoPlugin { name: name.into(), file: path.clone(), problem };
            let bytes = std::fs::read(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => missing("missing".into()),
                _ => missing(format!("unreadable: {e}")),
            })?;
            if hex::encode(Sha256::digest(&bytes)) != *sha256 {
                return Err(missing(format!("not the build this moor pins (sha256 {sha256})")));
            }
            (bytes.into(), Origin::Go)
        }
        PluginSource::File { path, .. } | PluginSource::Inspect(path) => {
            let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
                name: name.into(),
                file: path.clone(),
                source,
            })?;
            (bytes.into(), Origin::File(path.clone()))
        }
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if let PluginSource::File { path, sha256: expected } = &source
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(LoadError::HashMismatch {
            name: name.into(),
            file: path.clone(),
            expected: expected.clone(),
            actual: sha256,
        });
    }

    if wasmtime::wasmparser::Parser::is_core_wasm(&bytes) {
        return load_krm(runtime, name, &bytes, sha256, origin, limits);
    }
    if !wasmtime::wasmparser::Parser::is_component(&bytes) {
        return Err(LoadError::NotComponent { name: name.into(), origin, what: "not WebAssembly at all" });
    }

    let (component, cached) = runtime
        .cache
        .get::<wasmtime::component::Component>(&runtime.engine, &sha256, &bytes)
        .map_err(|e| LoadError::Compile { name: name.into(), origin: origin.clone(), message: format!("{e:#}") })?;
    tracing::debug!(plugin = name, cached, "component ready");

    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(&runtime.engine).map(|(n, _)| n.to_owned()).collect();
    let (kind, version) = find_kind(&exports).ok_or_else(|| LoadError::WrongWorld {
        name: name.into(),
        origin: origin.clone(),
        exports: if exports.is_empty() { "nothing".into() } else { exports.join(", ") },
        expected: INTERFACES
            .iter()
            .map(|(i, _)| format!("moor:plugin/{i}@{CONTRACT_VERSION}"))
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    if let Some(advice) = version_problem(&version) {
        return Err(LoadError::Version { name: name.into(), origin, found: version, advice });
    }
    // The optional interface beside the kind's own, of the same contract version.
    let exports_also = |interface: &str| exports.iter().any(|e| *e == format!("moor:plugin/{interface}@{version}"));
    let mut capabilities = capabilities(ty.imports(&runtime.engine).map(|(n, _)| n));
    match kind {
        PluginKind::Notifier if exports_also(START_INTERFACE) => {
            capabilities.push("run start: told when a run of a new revision starts".into());
        }
        PluginKind::Renderer if exports_also(REWRITE_INTERFACE) => {
            capabilities
                .push("tree rewrite: first in a chain, replaces files of the tree for the next renderer".into());
        }
        _ => {}
    }

    let pre = runtime.linker.instantiate_pre(&component).map_err(|e| LoadError::Link {
        name: name.into(),
        origin: origin.clone(),
        message: format!("{e:#}"),
    })?;
    let link_error =
        |e: wasmtime::Error| LoadError::Link { name: name.into(), origin: origin.clone(), message: format!("{e:#}") };
    let indices = match kind {
        PluginKind::Renderer => KindIndices::Render {
            render: bindings::render::GuestIndices::new(&pre).map_err(link_error)?,
            // Optional: renderers of the `tree-renderer` world rewrite the tree they are given.
            rewrite: match exports_also(REWRITE_INTERFACE) {
                true => Some(bindings::rewrite_tree::GuestIndices::new(&pre).map_err(link_error)?),
                false => None,
            },
        },
        PluginKind::Validator => {
            KindIndices::Validate(bindings::validate::GuestIndices::new(&pre).map_err(link_error)?)
        }
        PluginKind::Notifier => KindIndices::Notify {
            notify: bindings::notify::GuestIndices::new(&pre).map_err(link_error)?,
            // Optional: notifiers of the `status-notifier` world are also told when a run starts.
            start: match exports_also(START_INTERFACE) {
                true => Some(bindings::notify_start::GuestIndices::new(&pre).map_err(link_error)?),
                false => None,
            },
        },
        PluginKind::Source => KindIndices::Fetch(bindings::fetch::GuestIndices::new(&pre).map_err(link_error)?),
    };

    let mut plugin = Plugin {
        name: Arc::from(name),
        observer: runtime.observer.clone(),
        info: PluginInfo {
            name: name.into(),
            version: String::new(),
            kind,
            flavor: "component",
            description: String::new(),
            contract: version,
            config_schema: serde_json::json!({}),
            capabilities,
            sha256,
        },
        origin,
        limits,
        engine: runtime.engine.clone(),
        flavor: Flavor::Component { pre: pre.clone(), indices: indices.clone() },
        schema: jsonschema::validator_for(&serde_json::json!({})).expect("empty schema is valid"),
    };

    let described =
        describe(&plugin, &pre, &indices).map_err(|source| LoadError::Info { name: name.into(), source })?;
    if described.kind != kind {
        return Err(LoadError::WrongKind {
            name: name.into(),
            origin: plugin.origin,
            found: described.kind,
            expected: kind,
        });
    }
    let schema: serde_json::Value = serde_json::from_str(&described.config_schema)
        .map_err(|e| LoadError::Schema { name: name.into(), message: e.to_string() })?;
    plugin.schema = jsonschema::validator_for(&schema)
        .map_err(|e| LoadError::Schema { name: name.into(), message: e.to_string() })?;
    plugin.info.version = described.version;
    plugin.info.description = described.description;
    plugin.info.config_schema = schema;
    if described.name != name {
        plugin.info.name = described.name;
    }
    Ok(plugin)
}

/// A core module: a KRM function (the flavor for Go plugins), which says nothing about
/// itself; it serves as a renderer or a validator, and takes any `with` table.
fn load_krm(
    runtime: &Runtime,
    name: &str,
    bytes: &[u8],
    sha256: String,
    origin: Origin,
    limits: Limits,
) -> Result<Plugin, LoadError> {
    let (module, cached) = runtime
        .cache
        .get::<wasmtime::Module>(&runtime.engine, &sha256, bytes)
        .map_err(|e| LoadError::Compile { name: name.into(), origin: origin.clone(), message: format!("{e:#}") })?;
    tracing::debug!(plugin = name, cached, "KRM module ready");
    if let Some(message) = krm::unfit(&module) {
        return Err(LoadError::Link { name: name.into(), origin, message });
    }
    let pre = runtime.krm_linker.instantiate_pre(&module).map_err(|e| LoadError::Link {
        name: name.into(),
        origin: origin.clone(),
        message: format!("{e:#}"),
    })?;
    Ok(Plugin {
        name: Arc::from(name),
        observer: runtime.observer.clone(),
        info: PluginInfo {
            name: name.into(),
            version: String::new(),
            kind: PluginKind::Renderer,
            flavor: "krm-function",
            description: "a KRM function (WASI preview 1 module): renderer or validator".into(),
            contract: krm::CONTRACT.into(),
            config_schema: serde_json::json!({}),
            capabilities: krm::capabilities(),
            sha256,
        },
        origin,
        limits,
        engine: runtime.engine.clone(),
        flavor: Flavor::Krm(Arc::new(pre)),
        schema: jsonschema::validator_for(&serde_json::json!({})).expect("empty schema is valid"),
    })
}

/// The kind and contract version of the first `moor:plugin/<interface>@<version>` export.
fn find_kind(exports: &[String]) -> Option<(PluginKind, String)> {
    exports.iter().find_map(|export| {
        let rest = export.strip_prefix("moor:plugin/")?;
        let (iface, version) = rest.split_once('@')?;
        let kind = INTERFACES.iter().find(|(i, _)| *i == iface)?.1;
        Some((kind, version.to_owned()))
    })
}

/// `None` when a component built for `found` can be loaded by this host: the same major
/// version (the same minor while the major is 0), at most this host's own.
fn version_problem(found: &str) -> Option<&'static str> {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    };
    let (Some(found), Some(ours)) = (parse(found), parse(CONTRACT_VERSION)) else {
        return Some("its contract version cannot be read");
    };
    let line = |(major, minor, _): (u64, u64, u64)| if major == 0 { (0, minor) } else { (major, 0) };
    match line(found).cmp(&line(ours)) {
        std::cmp::Ordering::Equal if found <= ours => None,
        std::cmp::Ordering::Equal | std::cmp::Ordering::Greater => Some("it needs a newer moor"),
        std::cmp::Ordering::Less => Some("rebuild the plugin with the current SDK"),
    }
}

/// What a component's imports let it do, in words. Everything is denied or empty unless
/// a pipeline grants it; this is what `moor plugin inspect` and the status page show.
/// Asks a component to describe itself, through its kind's interface.
fn describe(
    plugin: &Plugin,
    pre: &wasmtime::component::InstancePre<super::CallState>,
    indices: &KindIndices,
) -> Result<bindings::types::PluginInfo, super::CallError> {
    plugin.call(pre, None, &super::CallScope::default(), |store, instance| match indices {
        KindIndices::Render { render, .. } => render.load(&mut *store, instance)?.call_info(store),
        KindIndices::Validate(i) => i.load(&mut *store, instance)?.call_info(store),
        KindIndices::Notify { notify: i, .. } => i.load(&mut *store, instance)?.call_info(store),
        KindIndices::Fetch(i) => i.load(&mut *store, instance)?.call_info(store),
    })
}

pub(crate) fn capabilities<'a>(imports: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut caps = std::collections::BTreeSet::new();
    for import in imports {
        let package = import.split('/').next().unwrap_or(import);
        let cap = match package {
            "moor:plugin" => "log",
            "wasi:filesystem" => "filesystem: the source snapshot, read-only (renderers first in a chain)",
            "wasi:sockets" => "sockets: imported, every address denied",
            "wasi:http" => "http: only hosts allowed for the step",
            "wasi:random" => "random",
            "wasi:clocks" => "clocks",
            "wasi:cli" if import.contains("/environment") => "environment: empty",
            "wasi:cli" => "stdio: stdout and stderr to the log, capped",
            "wasi:io" => continue,
            _ => {
                caps.insert(format!("{import}: not provided by this host"));
                continue;
            }
        };
        caps.insert(cap.to_owned());
    }
    caps.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_load_within_their_line_only() {
        assert_eq!(version_problem("0.1.0"), None);
        assert!(version_problem("0.2.0").unwrap().contains("newer moor"));
        assert!(version_problem("1.0.0").unwrap().contains("newer moor"));
        assert!(version_problem("0.0.9").unwrap().contains("rebuild"));
        assert!(version_problem("x").is_some());
    }
}
