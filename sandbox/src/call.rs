//! The one sandboxed call, for components and KRM modules alike ([`Plugin::sandboxed`]): a
//! fresh store and instance with the plugin's limits (time, memory, output, log volume), a
//! WASI context with nothing granted but what [`Plugin::wasi`] gives (plus the read-only
//! snapshot for a first renderer, and the step's HTTP grant for a component), its log and
//! stdio redacted and capped, and a trap turned into a [`CallError`] that names the plugin
//! and the limit.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{InstancePre, ResourceTable};
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::output::CappedOutput;
use super::{CallError, Plugin, SNAPSHOT_MOUNT, TICK, bindings, http};
use crate::interrupt::Interrupt;

/// What the plugin calls of one step carry besides their input: the secret values to
/// redact from what the plugin logs or prints (replaced by `***` before it reaches the
/// host's log), the run's interrupt, which stops a call at the next epoch tick, and caps
/// tighter than the plugin's own limits (a tenant's, for a platform plugin it uses). Every
/// call is given one; each copies it into its store's data.
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    pub redact: Vec<String>,
    pub interrupt: Option<Interrupt>,
    pub cap: Cap,
}

/// Caps on one call's memory and time: the plugin's limits apply, or these when tighter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cap {
    pub memory: Option<usize>,
    pub timeout: Option<std::time::Duration>,
}

impl Plugin {
    /// This plugin's limits for a call in `scope`: its own, capped by the scope's.
    pub(super) fn limits_in(&self, scope: &CallScope) -> crate::Limits {
        let mut limits = self.limits;
        limits.memory = scope.cap.memory.map_or(limits.memory, |cap| cap.min(limits.memory));
        limits.timeout = scope.cap.timeout.map_or(limits.timeout, |cap| cap.min(limits.timeout));
        limits
    }
}

/// Arms a fresh store's deadline: the plugin's time limit, and the run's interrupt, looked
/// at every [`CHECK_EVERY`] ticks. Either ends the call with `Trap::Interrupt`.
fn arm<T>(store: &mut Store<T>, limit: std::time::Duration, interrupt: Option<Interrupt>) {
    let mut left = limit.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64;
    store.set_epoch_deadline(left.min(CHECK_EVERY));
    store.epoch_deadline_callback(move |_| {
        left = left.saturating_sub(CHECK_EVERY);
        if left == 0 || interrupt.as_ref().is_some_and(Interrupt::is_raised) {
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        Ok(wasmtime::UpdateDeadline::Continue(left.min(CHECK_EVERY)))
    });
}

/// Ticks between two looks at a run's interrupt: 100 ms.
const CHECK_EVERY: u64 = 20;

/// Why a call ended with `Trap::Interrupt`: the run was stopped, else the plugin's limit.
fn interrupted(plugin: &str, limit: std::time::Duration, interrupt: Option<&Interrupt>) -> CallError {
    match interrupt.and_then(Interrupt::why) {
        Some(why) => CallError::Stopped { plugin: plugin.into(), why },
        None => CallError::Timeout { plugin: plugin.into(), limit },
    }
}

/// Store data of one call.
pub(crate) struct CallState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) http: wasmtime_wasi_http::WasiHttpCtx,
    /// The hosts wasi:http may reach in this call (none unless a notify step allows some).
    pub(super) http_grant: http::Grant,
    limiter: MemoryLimiter,
    plugin: Arc<str>,
    /// Secret values this call was given, redacted from what it logs, and the run's interrupt.
    scope: CallScope,
    /// Bytes of `log` messages still allowed in this call, and bytes dropped past that.
    log_budget: usize,
    log_dropped: usize,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bindings::log::Host for CallState {
    fn log(&mut self, level: bindings::log::Level, message: String) {
        use bindings::log::Level;
        if message.len() > self.log_budget {
            self.log_dropped += message.len();
            return;
        }
        self.log_budget -= message.len();
        let message = moor_object::redact_text(&message, &self.scope.redact);
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// Refuses memory growth past the plugin's cap and remembers that it did.
pub(super) struct MemoryLimiter {
    limit: usize,
    hit: bool,
}

impl MemoryLimiter {
    pub(super) fn new(limit: usize) -> MemoryLimiter {
        MemoryLimiter { limit, hit: false }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            wasmtime::bail!("memory limit of {} MiB reached", self.limit >> 20);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The store data of a call of either flavor: the memory limiter the store consults, and
/// how many bytes of `log` messages it dropped over its budget (components only).
pub(crate) trait CallData: Send + 'static {
    fn limiter(&mut self) -> &mut MemoryLimiter;
    fn log_dropped(&self) -> usize {
        0
    }
}

impl CallData for CallState {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
    fn log_dropped(&self) -> usize {
        self.log_dropped
    }
}

impl Plugin {
    /// Runs `f` on a fresh instance of the component `pre` in a fresh store with this
    /// plugin's limits.
    pub(super) fn call<R>(
        &self,
        pre: &InstancePre<CallState>,
        snapshot: Option<&Path>,
        scope: &CallScope,
        f: impl FnOnce(&mut Store<CallState>, &wasmtime::component::Instance) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call_with(pre, snapshot, http::Grant::none(), scope, f)
    }

    /// [`Plugin::call`] with network grants.
    pub(super) fn call_with<R>(
        &self,
        pre: &InstancePre<CallState>,
        snapshot: Option<&Path>,
        http_grant: http::Grant,
        scope: &CallScope,
        f: impl FnOnce(&mut Store<CallState>, &wasmtime::component::Instance) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let log = CappedOutput::new(self.limits.log);
        let mut wasi = self.wasi(snapshot, &log)?;
        wasi.stdout(log.clone());
        let state = CallState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_grant,
            limiter: MemoryLimiter::new(self.limits_in(scope).memory),
            plugin: self.name.clone(),
            scope: scope.clone(),
            log_budget: self.limits.log,
            log_dropped: 0,
        };
        self.sandboxed(state, &log, scope, |store| pre.instantiate(store), |store, instance| f(store, &instance))
    }

    /// The WASI context every call starts from, of either flavor: no sockets, no
    /// environment, no arguments, no stdin; stderr captured into `log`; file I/O on the
    /// calling thread; and, when given, the snapshot preopened read-only at `/snapshot`.
    pub(super) fn wasi(&self, snapshot: Option<&Path>, log: &CappedOutput) -> Result<WasiCtxBuilder, CallError> {
        let mut wasi = WasiCtx::builder();
        wasi.stderr(log.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        // Calls are synchronous and run off the async workers: do file I/O on this thread
        // instead of a spawn_blocking round trip per operation (12x faster on big trees).
        wasi.allow_blocking_current_thread(true);
        if let Some(dir) = snapshot {
            wasi.preopened_dir(dir, SNAPSHOT_MOUNT, wasmtime_wasi::FsPerms::ReadOnly).map_err(|e| {
                CallError::Snapshot { plugin: self.name.to_string(), dir: dir.to_owned(), message: e.to_string() }
            })?;
        }
        Ok(wasi)
    }

    /// The one sandboxed call, of either flavor: a fresh store holding `state`, with this
    /// plugin's memory cap and time limit and the scope's interrupt; `instantiate`, then
    /// `run` on the instance. Afterwards what the plugin wrote to `log` goes to the host's
    /// log (redacted and capped), the call's duration to the observer, and a failure
    /// becomes a [`CallError`] naming the plugin and the limit it hit.
    pub(super) fn sandboxed<S: CallData, I, R>(
        &self,
        state: S,
        log: &CappedOutput,
        scope: &CallScope,
        instantiate: impl FnOnce(&mut Store<S>) -> wasmtime::Result<I>,
        run: impl FnOnce(&mut Store<S>, I) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let started = Instant::now();
        let limits = self.limits_in(scope);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s.limiter());
        arm(&mut store, limits.timeout, scope.interrupt.clone());

        let result = instantiate(&mut store)
            .map_err(|e| (true, e))
            .and_then(|instance| run(&mut store, instance).map_err(|e| (false, e)));

        let (printed, dropped) = log.take();
        let dropped = dropped + store.data().log_dropped();
        for line in printed.lines() {
            tracing::info!(plugin = &*self.name, "{}", moor_object::redact_text(line, &scope.redact));
        }
        if dropped > 0 {
            tracing::warn!(
                plugin = &*self.name,
                "dropped {dropped} bytes of output and log over the {} byte cap",
                self.limits.log
            );
        }
        tracing::debug!(plugin = &*self.name, elapsed = ?started.elapsed(), "plugin call");
        if let Some(observe) = self.observer.get() {
            observe(&self.name, started.elapsed());
        }

        result.map_err(|(instantiating, error)| {
            let plugin = self.name.to_string();
            if store.data_mut().limiter().hit {
                return CallError::Memory { plugin, limit: limits.memory };
            }
            if let Some(wasmtime::Trap::Interrupt) = error.downcast_ref::<wasmtime::Trap>() {
                return interrupted(&plugin, limits.timeout, scope.interrupt.as_ref());
            }
            let message = format!("{error:#}");
            if instantiating { CallError::Instantiate { plugin, message } } else { CallError::Trap { plugin, message } }
        })
    }
}
