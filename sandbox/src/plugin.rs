//! A loaded plugin: what it says about itself, its limits, and how it is driven (a
//! component through its kind's interface, or a KRM function), seen as each kind it serves.

use std::path::Path;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::InstancePre;

use crate::kinds::Via;
use crate::{
    CallError, CallObserver, CallState, Document, Limits, Notifier, Origin, PluginKind, Renderer, Source, Validator,
    bindings, krm,
};

/// How a plugin is run: a component through its kind's interface, or a KRM function.
pub(crate) enum Flavor {
    Component { pre: InstancePre<CallState>, indices: KindIndices },
    Krm(krm::Pre),
}

/// Which interface a plugin is driven through.
#[derive(Clone)]
pub(crate) enum KindIndices {
    Render { render: bindings::render::GuestIndices, rewrite: Option<bindings::rewrite_tree::GuestIndices> },
    Validate(bindings::validate::GuestIndices),
    Notify { notify: bindings::notify::GuestIndices, start: Option<bindings::notify_start::GuestIndices> },
    Fetch(bindings::fetch::GuestIndices),
}

/// What a plugin says about itself, plus what the host found out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    #[serde(serialize_with = "serialize_display")]
    pub kind: PluginKind,
    /// `component` (a WIT world) or `krm-function` (a WASI preview 1 module).
    pub flavor: &'static str,
    pub description: String,
    /// The `moor:plugin` version a component speaks; for a KRM function, the KRM
    /// Functions Specification.
    pub contract: String,
    pub config_schema: serde_json::Value,
    /// What the component imports beyond `log`, in words; see `load::capabilities`.
    pub capabilities: Vec<String>,
    pub sha256: String,
}

fn serialize_display<S: serde::Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A loaded plugin, ready to be called any number of times.
pub struct Plugin {
    pub(crate) name: Arc<str>,
    pub(crate) observer: Arc<std::sync::OnceLock<CallObserver>>,
    pub info: PluginInfo,
    pub origin: Origin,
    pub limits: Limits,
    pub(crate) engine: Engine,
    pub(crate) flavor: Flavor,
    pub(crate) schema: jsonschema::Validator,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.name).field("info", &self.info).finish_non_exhaustive()
    }
}

/// What a renderer is given.
#[derive(Debug)]
pub enum RenderInput<'a> {
    /// The snapshot directory on the host and the pipeline's path inside it.
    Tree { snapshot: &'a Path, path: &'a str },
    /// The previous stage's objects.
    Objects(Vec<Document>),
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> PluginKind {
        self.info.kind
    }

    /// Whether the plugin is given the [`RenderContext`] (KRM functions are).
    pub fn sees_context(&self) -> bool {
        matches!(self.flavor, Flavor::Krm(_))
    }

    /// Whether the plugin can serve as a `kind`: a component only as its own kind, a KRM
    /// function as a renderer (generator or transformer) or a validator.
    pub fn serves(&self, kind: PluginKind) -> bool {
        match kind {
            PluginKind::Renderer => self.renderer().is_some(),
            PluginKind::Validator => self.validator().is_some(),
            PluginKind::Notifier => self.notifier().is_some(),
            PluginKind::Source => self.source().is_some(),
        }
    }

    /// Checks a step's `with` table against the plugin's schema; returns every violation
    /// as `pointer: message`.
    pub fn check_config(&self, config: &serde_json::Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self
            .schema
            .iter_errors(config)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
            })
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// This plugin as a renderer, if it is one (a renderer component, or a KRM function).
    pub fn renderer(&self) -> Option<Renderer<'_>> {
        let (via, rewrite) = match &self.flavor {
            Flavor::Krm(pre) => (Via::Krm(pre), None),
            Flavor::Component { pre, indices: KindIndices::Render { render, rewrite } } => {
                (Via::Component(pre, render), rewrite.as_ref())
            }
            Flavor::Component { .. } => return None,
        };
        Some(Renderer { plugin: self, via, rewrite })
    }

    /// This plugin as a validator, if it is one (a validator component, or a KRM function).
    pub fn validator(&self) -> Option<Validator<'_>> {
        Some(Validator {
            plugin: self,
            via: match &self.flavor {
                Flavor::Krm(pre) => Via::Krm(pre),
                Flavor::Component { pre, indices: KindIndices::Validate(indices) } => Via::Component(pre, indices),
                Flavor::Component { .. } => return None,
            },
        })
    }

    /// This plugin as a notifier, if it is one.
    pub fn notifier(&self) -> Option<Notifier<'_>> {
        match &self.flavor {
            Flavor::Component { pre, indices: KindIndices::Notify { notify, start } } => {
                Some(Notifier { plugin: self, pre, notify, start: start.as_ref() })
            }
            _ => None,
        }
    }

    /// This plugin as a source, if it is one.
    pub fn source(&self) -> Option<Source<'_>> {
        match &self.flavor {
            Flavor::Component { pre, indices: KindIndices::Fetch(indices) } => {
                Some(Source { plugin: self, pre, indices })
            }
            _ => None,
        }
    }

    pub(crate) fn check_output(&self, size: usize) -> Result<(), CallError> {
        if size > self.limits.output {
            return Err(CallError::Output { plugin: self.name.to_string(), size, limit: self.limits.output });
        }
        Ok(())
    }
}
