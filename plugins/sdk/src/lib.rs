//! Guest SDK: write a Moor plugin as one trait implementation plus one export macro.
//!
//! ```ignore
//! use moor_plugin_sdk::{Info, Input, Object, Outcome, Renderer, export_renderer};
//!
//! struct Hello;
//! impl Renderer for Hello {
//!     type Config = serde_json::Value;
//!     fn info() -> Info { Info::new("hello-renderer", env!("CARGO_PKG_VERSION")) }
//!     fn render(_config: Self::Config, input: Input) -> Outcome<Vec<Object>> {
//!         let mut objects = input.objects()?;
//!         for o in &mut objects { o.set_label("hello", "world"); }
//!         Ok(objects)
//!     }
//! }
//! export_renderer!(Hello);
//! ```
//!
//! Enable the cargo feature of your plugin's kind (`renderer`, `validator`, `notifier` or
//! `source`) and build with `cargo build --target wasm32-wasip2`.

extern crate self as moor_plugin_sdk;

use std::path::PathBuf;

#[doc(hidden)]
pub use serde_json as __serde_json;
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

mod object;
pub use object::{Object, ObjectExt, ObjectRefExt};

/// Bindings for the types and the `log` import that every world shares.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        inline: "
            package moor:sdk;
            world shared {
                import moor:plugin/types@0.1.0;
                import moor:plugin/log@0.1.0;
            }
        ",
        world: "moor:sdk/shared",
        runtime_path: "moor_plugin_sdk::__wit_bindgen::rt",
        generate_all,
        generate_unused_types: true,
    });
}

pub use bindings::moor::plugin::types::{Diagnostic, Event, EventReason, File, ObjectRef, PluginKind, Severity};

/// The result of a plugin call: a value, or diagnostics saying why not.
pub type Outcome<T> = Result<T, Vec<Diagnostic>>;

/// What a plugin says about itself.
#[derive(Debug, Clone)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub description: String,
    /// JSON Schema of the step's `with` table.
    pub config_schema: serde_json::Value,
}

impl Info {
    /// A plugin named `name` at `version` (usually `env!("CARGO_PKG_VERSION")`) that accepts
    /// any config.
    pub fn new(name: &str, version: &str) -> Self {
        Info {
            name: name.to_owned(),
            version: version.to_owned(),
            description: String::new(),
            config_schema: serde_json::json!({}),
        }
    }

    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }

    /// Sets the JSON Schema the host checks the step's `with` table against.
    pub fn schema(mut self, schema: serde_json::Value) -> Self {
        self.config_schema = schema;
        self
    }

    #[doc(hidden)]
    pub fn into_wit(self, kind: PluginKind) -> bindings::moor::plugin::types::PluginInfo {
        bindings::moor::plugin::types::PluginInfo {
            name: self.name,
            version: self.version,
            kind,
            description: self.description,
            config_schema: self.config_schema.to_string(),
        }
    }
}

impl Diagnostic {
    fn new(severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic { severity, message: message.into(), file: None, line: None, object: None }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Severity::Error, message)
    }
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, message)
    }
    pub fn info(message: impl Into<String>) -> Self {
        Self::new(Severity::Info, message)
    }
    /// Points the diagnostic at `file:line` (line 0 means unknown).
    pub fn at(mut self, file: impl Into<String>, line: u32) -> Self {
        let file = file.into();
        self.file = (!file.is_empty()).then_some(file);
        self.line = (line > 0).then_some(line);
        self
    }
    /// Points the diagnostic at an object and, when known, where it came from.
    pub fn on(self, object: &Object) -> Self {
        let mut d = self.at(object.file.clone(), object.line);
        d.object = Some(object.reference());
        d
    }
}

pub mod events;
/// Outgoing HTTP for notifiers (wasi:http, allow-listed hosts only).
#[cfg(feature = "notifier")]
pub mod http;
/// Commit statuses (GitHub, GitLab) from a run's start and events.
#[cfg(feature = "status-notifier")]
pub mod status;

/// Logging to the host; lines are attributed to the plugin. Outside a component (native
/// unit tests, benchmarks) warnings and errors go to stderr and the rest is dropped.
pub mod log {
    #[cfg(target_arch = "wasm32")]
    use crate::bindings::moor::plugin::log::{Level, log};

    #[cfg(not(target_arch = "wasm32"))]
    #[derive(Debug)]
    enum Level {
        Debug,
        Info,
        Warn,
        Error,
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn log(level: Level, message: &str) {
        if matches!(level, Level::Warn | Level::Error) {
            eprintln!("{level:?}: {message}");
        }
    }

    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// What a renderer works on.
#[derive(Debug)]
pub enum Input {
    /// The first renderer of a chain: a directory of the read-only snapshot.
    Tree {
        /// Where the snapshot is mounted, e.g. `/snapshot`.
        root: PathBuf,
        /// The pipeline's directory, relative to `root`.
        path: String,
    },
    /// A later renderer: the previous stage's objects.
    Objects(Vec<Object>),
}

impl Input {
    /// The previous stage's objects, or an error diagnostic when this renderer was placed
    /// first in a chain.
    pub fn objects(self) -> Outcome<Vec<Object>> {
        match self {
            Input::Objects(objects) => Ok(objects),
            Input::Tree { .. } => Err(vec![Diagnostic::error(
                "this renderer transforms objects: put another renderer (such as `yaml`) before it",
            )]),
        }
    }
}

/// Turns a source tree or objects into objects.
pub trait Renderer {
    /// The step's `with` table, deserialized.
    type Config: serde::de::DeserializeOwned;
    fn info() -> Info;
    fn render(config: Self::Config, input: Input) -> Outcome<Vec<Object>>;
}

/// Files of the tree with new contents, for the next renderer of the chain to read.
#[cfg(feature = "tree-renderer")]
pub use renderer::exports::moor::plugin::rewrite_tree::{Rewritten, RewrittenFile};

/// A renderer that, first in a chain, rewrites files of the tree for the renderer after it
/// (the `tree-renderer` world), as the `sops` step decrypts the files kustomize reads. The
/// host calls [`TreeRenderer::rewrite`] when it is given the tree, and
/// [`Renderer::render`] (with objects) later in a chain. Export it with
/// [`export_tree_renderer!`] (cargo feature `tree-renderer`).
#[cfg(feature = "tree-renderer")]
pub trait TreeRenderer: Renderer {
    /// `root` is where the snapshot is mounted and `path` the pipeline's directory in it.
    /// Only files the tree has may be rewritten; their paths are relative to `root`.
    fn rewrite(config: Self::Config, root: PathBuf, path: String) -> Outcome<Rewritten>;
}

/// Checks objects and reports diagnostics; any error blocks the apply.
pub trait Validator {
    type Config: serde::de::DeserializeOwned;
    fn info() -> Info;
    fn validate(config: Self::Config, objects: Vec<Object>) -> Result<Vec<Diagnostic>, String>;
}

/// Delivers events somewhere.
pub trait Notifier {
    type Config: serde::de::DeserializeOwned;
    fn info() -> Info;
    fn notify(config: Self::Config, events: Vec<Event>) -> Result<(), String>;
}

/// A run about to apply a revision its pipeline has not been run for.
#[cfg(feature = "status-notifier")]
pub use status_notifier::exports::moor::plugin::notify_start::RunStart;

/// A notifier that is also told when a run of a new revision starts, before its outcome
/// reaches [`Notifier::notify`] (a commit status `pending`). Export it with
/// [`export_status_notifier!`] (cargo feature `status-notifier`).
#[cfg(feature = "status-notifier")]
pub trait StatusNotifier: Notifier {
    fn started(config: Self::Config, run: RunStart) -> Result<(), String>;
}

/// A fetched tree of files and its revision.
#[derive(Debug)]
pub struct Snapshot {
    pub revision: String,
    pub files: Vec<File>,
}

/// Produces a tree of files.
pub trait Source {
    type Config: serde::de::DeserializeOwned;
    fn info() -> Info;
    /// Returns `None` when `known` is still the current revision.
    fn fetch(config: Self::Config, known: Option<String>) -> Result<Option<Snapshot>, String>;
}

#[doc(hidden)]
pub fn parse_config<C: serde::de::DeserializeOwned>(json: &str) -> Result<C, String> {
    serde_json::from_str(json).map_err(|e| format!("invalid config: {e}"))
}

#[cfg_attr(not(any(feature = "renderer", feature = "validator")), allow(dead_code))]
fn to_documents(objects: Vec<Object>) -> Vec<bindings::moor::plugin::types::Document> {
    objects.into_iter().map(object::into_document).collect()
}

#[cfg_attr(not(any(feature = "renderer", feature = "validator")), allow(dead_code))]
fn from_documents(docs: Vec<bindings::moor::plugin::types::Document>) -> Outcome<Vec<Object>> {
    docs.into_iter().map(object::from_document).collect()
}

macro_rules! world {
    ($cfg:meta, $module:ident, $world:literal, $macro:literal, $path:literal) => {
        #[cfg($cfg)]
        #[doc(hidden)]
        pub mod $module {
            wit_bindgen::generate!({
                path: "wit",
                world: $world,
                with: {
                    "moor:plugin/types@0.1.0": crate::bindings::moor::plugin::types,
                    "moor:plugin/log@0.1.0": crate::bindings::moor::plugin::log,
                },
                pub_export_macro: true,
                export_macro_name: $macro,
                default_bindings_module: $path,
                runtime_path: "moor_plugin_sdk::__wit_bindgen::rt",
            });
            pub struct Adapter<T>(core::marker::PhantomData<fn() -> T>);
        }
    };
}

world!(
    all(feature = "renderer", not(feature = "tree-renderer")),
    renderer,
    "renderer",
    "__export_renderer_world",
    "moor_plugin_sdk::renderer"
);
world!(feature = "tree-renderer", renderer, "tree-renderer", "__export_renderer_world", "moor_plugin_sdk::renderer");
world!(feature = "validator", validator, "validator", "__export_validator_world", "moor_plugin_sdk::validator");
world!(
    all(feature = "notifier", not(feature = "status-notifier")),
    notifier,
    "notifier",
    "__export_notifier_world",
    "moor_plugin_sdk::notifier"
);
world!(
    feature = "status-notifier",
    status_notifier,
    "status-notifier",
    "__export_status_notifier_world",
    "moor_plugin_sdk::status_notifier"
);
world!(feature = "source", source, "source", "__export_source_world", "moor_plugin_sdk::source");

#[cfg(feature = "renderer")]
mod renderer_glue {
    use crate::renderer::Adapter;
    use crate::renderer::exports::moor::plugin::render;
    use crate::{Input, PluginKind, Renderer};

    impl<T: Renderer> render::Guest for Adapter<T> {
        fn info() -> crate::bindings::moor::plugin::types::PluginInfo {
            T::info().into_wit(PluginKind::Renderer)
        }

        fn render(
            config: String,
            input: render::Input,
        ) -> Result<Vec<crate::bindings::moor::plugin::types::Document>, Vec<crate::Diagnostic>> {
            let config = crate::parse_config(&config).map_err(|e| vec![crate::Diagnostic::error(e)])?;
            let input = match input {
                render::Input::Tree(tree) => Input::Tree { root: tree.root.into(), path: tree.path },
                render::Input::Objects(docs) => Input::Objects(crate::from_documents(docs)?),
            };
            T::render(config, input).map(crate::to_documents)
        }
    }
}

#[cfg(feature = "tree-renderer")]
mod tree_renderer_glue {
    use crate::TreeRenderer;
    use crate::renderer::Adapter;
    use crate::renderer::exports::moor::plugin::rewrite_tree;

    impl<T: TreeRenderer> rewrite_tree::Guest for Adapter<T> {
        fn rewrite(
            config: String,
            tree: rewrite_tree::Tree,
        ) -> Result<rewrite_tree::Rewritten, Vec<crate::Diagnostic>> {
            let config = crate::parse_config(&config).map_err(|e| vec![crate::Diagnostic::error(e)])?;
            T::rewrite(config, tree.root.into(), tree.path)
        }
    }
}

#[cfg(feature = "validator")]
mod validator_glue {
    use crate::validator::Adapter;
    use crate::validator::exports::moor::plugin::validate;
    use crate::{PluginKind, Validator};

    impl<T: Validator> validate::Guest for Adapter<T> {
        fn info() -> crate::bindings::moor::plugin::types::PluginInfo {
            T::info().into_wit(PluginKind::Validator)
        }

        fn validate(
            config: String,
            objects: Vec<crate::bindings::moor::plugin::types::Document>,
        ) -> Result<Vec<crate::Diagnostic>, String> {
            let config = crate::parse_config(&config)?;
            let objects = crate::from_documents(objects)
                .map_err(|d| d.into_iter().map(|d| d.message).collect::<Vec<_>>().join("; "))?;
            T::validate(config, objects)
        }
    }
}

#[cfg(all(feature = "notifier", not(feature = "status-notifier")))]
mod notifier_glue {
    use crate::notifier::Adapter;
    use crate::notifier::exports::moor::plugin::notify;
    use crate::{Notifier, PluginKind};

    impl<T: Notifier> notify::Guest for Adapter<T> {
        fn info() -> crate::bindings::moor::plugin::types::PluginInfo {
            T::info().into_wit(PluginKind::Notifier)
        }

        fn notify(config: String, events: Vec<crate::Event>) -> Result<(), String> {
            T::notify(crate::parse_config(&config)?, events)
        }
    }
}

#[cfg(feature = "status-notifier")]
mod status_notifier_glue {
    use crate::status_notifier::Adapter;
    use crate::status_notifier::exports::moor::plugin::{notify, notify_start};
    use crate::{PluginKind, StatusNotifier};

    impl<T: StatusNotifier> notify::Guest for Adapter<T> {
        fn info() -> crate::bindings::moor::plugin::types::PluginInfo {
            T::info().into_wit(PluginKind::Notifier)
        }

        fn notify(config: String, events: Vec<crate::Event>) -> Result<(), String> {
            T::notify(crate::parse_config(&config)?, events)
        }
    }

    impl<T: StatusNotifier> notify_start::Guest for Adapter<T> {
        fn started(config: String, run: notify_start::RunStart) -> Result<(), String> {
            T::started(crate::parse_config(&config)?, run)
        }
    }
}

#[cfg(feature = "source")]
mod source_glue {
    use crate::source::Adapter;
    use crate::source::exports::moor::plugin::fetch;
    use crate::{PluginKind, Source};

    impl<T: Source> fetch::Guest for Adapter<T> {
        fn info() -> crate::bindings::moor::plugin::types::PluginInfo {
            T::info().into_wit(PluginKind::Source)
        }

        fn fetch(config: String, known: Option<String>) -> Result<Option<fetch::Snapshot>, String> {
            let snapshot = T::fetch(crate::parse_config(&config)?, known)?;
            Ok(snapshot.map(|s| fetch::Snapshot { revision: s.revision, files: s.files }))
        }
    }
}

/// Exports a [`Renderer`] implementation as this component's renderer.
#[cfg(all(feature = "renderer", not(feature = "tree-renderer")))]
#[macro_export]
macro_rules! export_renderer {
    ($plugin:ty) => {
        // Only components export; a native build (unit tests, clippy) links no exports.
        #[cfg(target_arch = "wasm32")]
        type __MoorRenderer = $crate::renderer::Adapter<$plugin>;
        #[cfg(target_arch = "wasm32")]
        $crate::renderer::__export_renderer_world!(__MoorRenderer with_types_in $crate::renderer);
    };
}

/// With `tree-renderer` on (a workspace build may unify it in), plain renderers still
/// build natively; a component must use [`export_tree_renderer!`].
#[cfg(feature = "tree-renderer")]
#[macro_export]
macro_rules! export_renderer {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        compile_error!("moor-plugin-sdk's `tree-renderer` feature is on: export with `export_tree_renderer!`");
    };
}

/// Exports a [`TreeRenderer`] implementation as this component's renderer, of the
/// `tree-renderer` world: given the tree, the host asks it to rewrite files of it.
#[cfg(feature = "tree-renderer")]
#[macro_export]
macro_rules! export_tree_renderer {
    ($plugin:ty) => {
        // Only components export; a native build (unit tests, clippy) links no exports.
        #[cfg(target_arch = "wasm32")]
        type __MoorRenderer = $crate::renderer::Adapter<$plugin>;
        #[cfg(target_arch = "wasm32")]
        $crate::renderer::__export_renderer_world!(__MoorRenderer with_types_in $crate::renderer);
    };
}

/// Exports a [`Validator`] implementation as this component's validator.
#[cfg(feature = "validator")]
#[macro_export]
macro_rules! export_validator {
    ($plugin:ty) => {
        // Only components export; a native build (unit tests, clippy) links no exports.
        #[cfg(target_arch = "wasm32")]
        type __MoorValidator = $crate::validator::Adapter<$plugin>;
        #[cfg(target_arch = "wasm32")]
        $crate::validator::__export_validator_world!(__MoorValidator with_types_in $crate::validator);
    };
}

/// Exports a [`Notifier`] implementation as this component's notifier.
#[cfg(all(feature = "notifier", not(feature = "status-notifier")))]
#[macro_export]
macro_rules! export_notifier {
    ($plugin:ty) => {
        // Only components export; a native build (unit tests, clippy) links no exports.
        #[cfg(target_arch = "wasm32")]
        type __MoorNotifier = $crate::notifier::Adapter<$plugin>;
        #[cfg(target_arch = "wasm32")]
        $crate::notifier::__export_notifier_world!(__MoorNotifier with_types_in $crate::notifier);
    };
}

/// With `status-notifier` on (a workspace build may unify it in), plain notifiers still
/// build natively; a component must use [`export_status_notifier!`].
#[cfg(feature = "status-notifier")]
#[macro_export]
macro_rules! export_notifier {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        compile_error!("moor-plugin-sdk's `status-notifier` feature is on: export with `export_status_notifier!`");
    };
}

/// Exports a [`StatusNotifier`] implementation as this component's notifier, of the
/// `status-notifier` world: the host also tells it when runs start.
#[cfg(feature = "status-notifier")]
#[macro_export]
macro_rules! export_status_notifier {
    ($plugin:ty) => {
        // Only components export; a native build (unit tests, clippy) links no exports.
        #[cfg(target_arch = "wasm32")]
        type __MoorStatusNotifier = $crate::status_notifier::Adapter<$plugin>;
        #[cfg(target_arch = "wasm32")]
        $crate::status_notifier::__export_status_notifier_world!(__MoorStatusNotifier with_types_in $crate::status_notifier);
    };
}

/// Exports a [`Source`] implementation as this component's source.
#[cfg(feature = "source")]
#[macro_export]
macro_rules! export_source {
    ($plugin:ty) => {
        // Only components export; a native build (unit tests, clippy) links no exports.
        #[cfg(target_arch = "wasm32")]
        type __MoorSource = $crate::source::Adapter<$plugin>;
        #[cfg(target_arch = "wasm32")]
        $crate::source::__export_source_world!(__MoorSource with_types_in $crate::source);
    };
}
