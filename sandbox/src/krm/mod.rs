//! The second plugin flavor: KRM functions, core WebAssembly modules for WASI preview 1 that
//! speak the KRM Functions Specification (a `ResourceList` on stdin, one on stdout, the
//! exit code, stderr to the log). Go plugins take this form, since Go cannot build
//! components yet.
//!
//! A KRM function gets what a component gets and no more: a fresh instance per call, the
//! epoch deadline, the memory cap and the output cap; no network (preview 1 has no
//! sockets), no host environment, no arguments. A renderer first in its chain also gets the
//! snapshot, read-only, at `/snapshot`, and its working directory (`PWD`) is the pipeline's
//! directory there. Renderers see the render context as `MOOR_*` variables
//! ([`RenderContext`]); no other variable reaches a function.

pub mod resource_list;

use std::path::Path;
use std::sync::Arc;

use wasmtime::{InstancePre, Linker, Module};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

use super::call::{CallData, MemoryLimiter};
use super::output::CappedOutput;
use super::{CallError, Diagnostic, Document, Plugin, RenderContext, RenderInput, SNAPSHOT_MOUNT, Severity};
use crate::CallScope;
use resource_list::{Request, Response};

/// The protocol KRM functions speak, as `moor plugin inspect` names it.
pub const CONTRACT: &str = "KRM Functions Specification, config.kubernetes.io/v1 ResourceList";

/// Store data of one KRM call.
pub(crate) struct KrmState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

impl CallData for KrmState {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

/// The linker of KRM functions: WASI preview 1, nothing else.
pub(super) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<KrmState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut KrmState| &mut s.wasi)?;
    Ok(linker)
}

/// Why a module is not a KRM function this host can run, or `None`.
pub(super) fn unfit(module: &Module) -> Option<String> {
    if module.get_export("_start").is_none() {
        return Some("it exports no `_start`: build a command (GOOS=wasip1 GOARCH=wasm go build)".into());
    }
    let foreign: Vec<String> = module
        .imports()
        .filter(|i| i.module() != "wasi_snapshot_preview1")
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    (!foreign.is_empty()).then(|| format!("it imports what this host does not provide: {}", foreign.join(", ")))
}

/// What KRM functions are allowed, in the words of `moor plugin inspect`.
pub(super) fn capabilities() -> Vec<String> {
    vec![
        "filesystem: the source snapshot, read-only, as the working directory (renderers first in a chain)".into(),
        "stdio: a ResourceList in and out; stderr to the log, capped".into(),
        "environment: PWD and the render context (MOOR_PIPELINE, MOOR_NAMESPACE, MOOR_KUBE_VERSION, MOOR_API_VERSIONS)"
            .into(),
        "clocks".into(),
        "random".into(),
    ]
}

/// A KRM renderer's or validator's outcome: its objects and diagnostics, or the
/// diagnostics that made it fail.
pub(super) type Outcome = Result<Response, Vec<Diagnostic>>;

impl Plugin {
    /// A KRM function as a renderer: on the snapshot (first in a chain) or on objects.
    pub(super) fn render_krm(
        &self,
        pre: &Pre,
        config: &serde_json::Value,
        input: RenderInput<'_>,
        context: &RenderContext,
        scope: &CallScope,
    ) -> Result<Result<Vec<Document>, Vec<Diagnostic>>, CallError> {
        let outcome = match input {
            RenderInput::Tree { snapshot, path } => {
                self.run_krm(pre, config, &[], Some((snapshot, path)), context, scope)?
            }
            RenderInput::Objects(docs) => self.run_krm(pre, config, &docs, None, context, scope)?,
        };
        Ok(outcome.map(|response| {
            for d in response.diagnostics.iter().filter(|d| d.severity != Severity::Error) {
                tracing::warn!(plugin = &*self.name, "{}", d.message);
            }
            response.items
        }))
    }

    /// Runs the function on `docs` with `config` as its `functionConfig`; with `tree`
    /// (snapshot, pipeline path), in the pipeline's directory of the read-only snapshot.
    pub(super) fn run_krm(
        &self,
        pre: &InstancePre<KrmState>,
        config: &serde_json::Value,
        docs: &[Document],
        tree: Option<(&Path, &str)>,
        context: &RenderContext,
        scope: &CallScope,
    ) -> Result<Outcome, CallError> {
        let request = Request::new(docs, config).map_err(|message| self.trap(message))?;
        let (stdout, code) = self.call_krm(pre, request.json.clone().into_bytes(), tree, context, scope)?;
        let workdir = tree.map_or("", |(_, path)| path);
        let response = match request.response(&stdout, workdir) {
            Ok(response) => response,
            Err(problem) if code != 0 => return Ok(Err(vec![exited(code, &problem)])),
            Err(problem) => return Err(self.trap(problem)),
        };
        if code != 0 || response.failed() {
            let mut diagnostics = response.diagnostics;
            if !diagnostics.iter().any(|d| d.severity == Severity::Error) {
                diagnostics.push(exited(code, "it reported no error"));
            }
            return Ok(Err(diagnostics));
        }
        Ok(Ok(response))
    }

    fn trap(&self, message: String) -> CallError {
        CallError::Trap { plugin: self.name.to_string(), message }
    }

    /// One run of the module's `_start` in the one sandboxed call: its stdout and exit code.
    fn call_krm(
        &self,
        pre: &InstancePre<KrmState>,
        stdin: Vec<u8>,
        tree: Option<(&Path, &str)>,
        context: &RenderContext,
        scope: &CallScope,
    ) -> Result<(Vec<u8>, i32), CallError> {
        let stdout = CappedOutput::new(self.limits.output);
        let stderr = CappedOutput::new(self.limits.log);
        let mut wasi = self.wasi(tree.map(|(snapshot, _)| snapshot), &stderr)?;
        wasi.stdin(MemoryInputPipe::new(stdin)).stdout(stdout.clone()).arg(&*self.name);
        for (key, value) in context.env() {
            wasi.env(key, value);
        }
        if let Some((_, path)) = tree {
            wasi.env("PWD", Path::new(SNAPSHOT_MOUNT).join(path).to_string_lossy());
        }
        let state = KrmState { wasi: wasi.build_p1(), limiter: MemoryLimiter::new(self.limits_in(scope).memory) };
        let result = self.sandboxed(
            state,
            &stderr,
            scope,
            |store| pre.instantiate(store),
            |store, instance| {
                let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
                match start.call(store, ()) {
                    Ok(()) => Ok(0),
                    Err(e) => e.downcast_ref::<I32Exit>().map(|exit| exit.0).ok_or(e),
                }
            },
        );
        // A flood of output is what the call is refused for, also when it ran out of time
        // writing it.
        let (out, over) = stdout.take_bytes();
        if over > 0 {
            return Err(CallError::Output {
                plugin: self.name.to_string(),
                size: out.len() + over,
                limit: self.limits.output,
            });
        }
        Ok((out, result?))
    }
}

/// The diagnostic for a function that exited with `code` without saying why.
fn exited(code: i32, why: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        message: format!("the KRM function exited with code {code}: {why}"),
        file: None,
        line: None,
        object: None,
    }
}

/// Shared between a loaded module's calls.
pub(super) type Pre = Arc<InstancePre<KrmState>>;
