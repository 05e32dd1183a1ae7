//! A loaded plugin as the kind it serves: the handle its calls go through. A handle exists
//! only for a kind the plugin serves (`Plugin::renderer` and its siblings answer `None`
//! otherwise), so a call through the wrong interface cannot be written.

use std::path::Path;

use wasmtime::component::InstancePre;

use super::call::CallState;
use super::{
    CallError, CallScope, Diagnostic, Document, Event, Plugin, PluginKind, RenderContext, RenderInput, Rewritten,
    RunStart, SNAPSHOT_MOUNT, bindings, http, krm,
};

/// How a renderer or validator is driven: through its component interface, or as a KRM
/// function.
pub(crate) enum Via<'p, I> {
    Component(&'p InstancePre<CallState>, &'p I),
    Krm(&'p krm::Pre),
}

/// A kind of plugin, as the handle for it: what a chain's step resolves its plugin to.
pub trait Kind<'p>: Sized {
    const KIND: PluginKind;
    /// `plugin` as this kind, if it serves it.
    fn of(plugin: &'p Plugin) -> Option<Self>;
    fn plugin(&self) -> &'p Plugin;
}

macro_rules! kind {
    ($handle:ident, $kind:ident, $as:ident) => {
        impl<'p> Kind<'p> for $handle<'p> {
            const KIND: PluginKind = PluginKind::$kind;
            fn of(plugin: &'p Plugin) -> Option<Self> {
                plugin.$as()
            }
            fn plugin(&self) -> &'p Plugin {
                self.plugin
            }
        }
    };
}
kind!(Renderer, Renderer, renderer);
kind!(Validator, Validator, validator);
kind!(Notifier, Notifier, notifier);
kind!(Source, Source, source);

/// A renderer: a renderer component, or a KRM function (generator or transformer).
pub struct Renderer<'p> {
    pub(crate) plugin: &'p Plugin,
    pub(crate) via: Via<'p, bindings::render::GuestIndices>,
    /// A component of the `tree-renderer` world: how it rewrites the tree it is given.
    pub(crate) rewrite: Option<&'p bindings::rewrite_tree::GuestIndices>,
}

impl<'p> Renderer<'p> {
    /// This renderer as a tree rewriter, if it is one: a component of the `tree-renderer`
    /// world, which, given the tree, replaces files of it for the next renderer instead of
    /// making objects.
    pub fn tree_rewriter(&self) -> Option<TreeRewriter<'p>> {
        match (&self.via, self.rewrite) {
            (Via::Component(pre, _), Some(indices)) => Some(TreeRewriter { plugin: self.plugin, pre, indices }),
            _ => None,
        }
    }

    /// Calls the renderer. `Ok(Err(_))` carries the plugin's own diagnostics. `context`
    /// reaches KRM functions only (see [`RenderContext`]).
    pub fn render(
        &self,
        config: &serde_json::Value,
        input: RenderInput<'_>,
        context: &RenderContext,
        scope: &CallScope,
    ) -> Result<Result<Vec<Document>, Vec<Diagnostic>>, CallError> {
        let plugin = self.plugin;
        let (pre, indices) = match self.via {
            Via::Krm(pre) => return plugin.render_krm(pre, config, input, context, scope),
            Via::Component(pre, indices) => (pre, indices),
        };
        let (snapshot, wit_input) = match input {
            RenderInput::Tree { snapshot, path } => (
                Some(snapshot),
                bindings::render::Input::Tree(bindings::render::Tree {
                    root: SNAPSHOT_MOUNT.into(),
                    path: path.into(),
                }),
            ),
            RenderInput::Objects(docs) => (None, bindings::render::Input::Objects(docs)),
        };
        let config = config.to_string();
        let result = plugin.call(pre, snapshot, scope, |store, instance| {
            let guest = indices.load(&mut *store, instance)?;
            guest.call_render(store, &config, &wit_input)
        })?;
        if let Ok(docs) = &result {
            plugin.check_output(docs.iter().map(|d| d.json.len() + d.file.len()).sum())?;
        }
        Ok(result)
    }
}

/// A renderer of the `tree-renderer` world, as what it is first in a chain.
pub struct TreeRewriter<'p> {
    plugin: &'p Plugin,
    pre: &'p InstancePre<CallState>,
    indices: &'p bindings::rewrite_tree::GuestIndices,
}

impl TreeRewriter<'_> {
    /// Calls the renderer on the tree: the files it replaces and the plaintext they hold.
    /// `Ok(Err(_))` carries the plugin's own diagnostics.
    pub fn rewrite(
        &self,
        config: &serde_json::Value,
        snapshot: &Path,
        path: &str,
        scope: &CallScope,
    ) -> Result<Result<Rewritten, Vec<Diagnostic>>, CallError> {
        let tree = bindings::render::Tree { root: SNAPSHOT_MOUNT.into(), path: path.into() };
        let config = config.to_string();
        let result = self.plugin.call(self.pre, Some(snapshot), scope, |store, instance| {
            let guest = self.indices.load(&mut *store, instance)?;
            guest.call_rewrite(store, &config, &tree)
        })?;
        if let Ok(rewritten) = &result {
            let files: usize = rewritten.files.iter().map(|f| f.path.len() + f.contents.len()).sum();
            self.plugin.check_output(files + rewritten.revealed.iter().map(String::len).sum::<usize>())?;
        }
        Ok(result)
    }
}

/// A validator: a validator component, or a KRM function (its error results fail it).
pub struct Validator<'p> {
    pub(crate) plugin: &'p Plugin,
    pub(crate) via: Via<'p, bindings::validate::GuestIndices>,
}

impl Validator<'_> {
    /// Calls the validator. `Ok(Err(_))` is the validator saying it failed.
    pub fn validate(
        &self,
        config: &serde_json::Value,
        objects: &[Document],
        scope: &CallScope,
    ) -> Result<Result<Vec<Diagnostic>, String>, CallError> {
        let plugin = self.plugin;
        let (pre, indices) = match self.via {
            Via::Krm(pre) => {
                return Ok(match plugin.run_krm(pre, config, objects, None, &RenderContext::default(), scope)? {
                    Ok(response) => Ok(response.diagnostics),
                    Err(diagnostics) => Ok(diagnostics),
                });
            }
            Via::Component(pre, indices) => (pre, indices),
        };
        let config = config.to_string();
        let result = plugin.call(pre, None, scope, |store, instance| {
            let guest = indices.load(&mut *store, instance)?;
            guest.call_validate(store, &config, objects)
        })?;
        if let Ok(diags) = &result {
            plugin.check_output(diags.iter().map(|d| d.message.len()).sum())?;
        }
        Ok(result)
    }
}

/// A notifier; one of the `status-notifier` world also hears when a run starts.
pub struct Notifier<'p> {
    pub(crate) plugin: &'p Plugin,
    pub(crate) pre: &'p InstancePre<CallState>,
    pub(crate) notify: &'p bindings::notify::GuestIndices,
    pub(crate) start: Option<&'p bindings::notify_start::GuestIndices>,
}

impl Notifier<'_> {
    /// Calls the notifier; wasi:http reaches only `allow_hosts` (`host` or `host:port`).
    pub fn notify(
        &self,
        config: &serde_json::Value,
        events: &[Event],
        allow_hosts: &[String],
        scope: &CallScope,
    ) -> Result<Result<(), String>, CallError> {
        let config = config.to_string();
        let grant = http::Grant { hosts: allow_hosts.to_vec(), timeout: self.plugin.limits_in(scope).timeout };
        self.plugin.call_with(self.pre, None, grant, scope, |store, instance| {
            let guest = self.notify.load(&mut *store, instance)?;
            guest.call_notify(store, &config, events)
        })
    }

    /// Whether this notifier wants to hear when a run starts ([`Notifier::started`]).
    pub fn tells_starts(&self) -> bool {
        self.start.is_some()
    }

    /// Tells a notifier of the `status-notifier` world that a run starts; `Ok(Ok(()))`
    /// without a call for other notifiers.
    pub fn started(
        &self,
        config: &serde_json::Value,
        run: &RunStart,
        allow_hosts: &[String],
        scope: &CallScope,
    ) -> Result<Result<(), String>, CallError> {
        let Some(start) = self.start else { return Ok(Ok(())) };
        let config = config.to_string();
        let grant = http::Grant { hosts: allow_hosts.to_vec(), timeout: self.plugin.limits_in(scope).timeout };
        self.plugin.call_with(self.pre, None, grant, scope, |store, instance| {
            let guest = start.load(&mut *store, instance)?;
            guest.call_started(store, &config, run)
        })
    }
}

/// A source plugin.
pub struct Source<'p> {
    pub(crate) plugin: &'p Plugin,
    pub(crate) pre: &'p InstancePre<CallState>,
    pub(crate) indices: &'p bindings::fetch::GuestIndices,
}

impl Source<'_> {
    /// Calls the source. `Ok(Ok(None))` means `known` is still current.
    pub fn fetch(
        &self,
        config: &serde_json::Value,
        known: Option<&str>,
        scope: &CallScope,
    ) -> Result<Result<Option<bindings::fetch::Snapshot>, String>, CallError> {
        let config = config.to_string();
        let known = known.map(str::to_owned);
        let result = self.plugin.call(self.pre, None, scope, |store, instance| {
            let guest = self.indices.load(&mut *store, instance)?;
            guest.call_fetch(store, &config, known.as_deref())
        })?;
        if let Ok(Some(snapshot)) = &result {
            self.plugin.check_output(snapshot.files.iter().map(|f| f.contents.len() + f.path.len()).sum())?;
        }
        Ok(result)
    }
}
