//! One plugin step, ready to call: its loaded plugin, its config checked against the
//! plugin's schema (secrets filled in), and the secret values to redact from what it says;
//! and how plugin calls run from async code.

use super::{Finding, Prepared, StageError};
use crate::config::Step;
use crate::interrupt::Interrupt;
use crate::plugins::{self, Kind, Plugin};
use crate::secrets::SecretValues;

/// Runs blocking work (plugin calls) from async code. On a multi-threaded runtime the worker
/// hands its other tasks over and runs `f` itself (`block_in_place`), so a long render does
/// not stall the controller's HTTP server, and the WASI host may block on the runtime.
/// Elsewhere `f` runs on a thread of its own, so that the WASI host, which drives its own
/// small runtime, never finds itself inside another one.
pub fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// The plugins of one chain, as the kind `K` the chain takes, with their checked configs.
pub(super) fn resolve_chain<'p, K: Kind<'p>>(
    prepared: &'p Prepared,
    chain: &str,
    steps: &[Step],
    secrets: &SecretValues,
    interrupt: &Interrupt,
) -> Result<Vec<StepCall<K>>, StageError> {
    steps.iter().map(|step| resolve_step(prepared, chain, step, secrets, Some(interrupt))).collect()
}

/// One step, ready to call: its plugin, its `with` table (secrets filled in) and the
/// secret values it was given, which are redacted from what the plugin logs or returns
/// as messages.
pub(crate) struct StepCall<K> {
    /// The plugin, as the kind its chain takes.
    kind: K,
    pub with: serde_json::Value,
    /// The secret values it was given (redacted from what it says) and the run's interrupt.
    scope: plugins::CallScope,
}

impl<'p, K: Kind<'p>> StepCall<K> {
    pub fn plugin(&self) -> &'p Plugin {
        self.kind.plugin()
    }

    /// Calls the plugin with the step's config and scope (its log lines redacted, the
    /// call stopped by the run's interrupt).
    pub fn run<R>(&self, f: impl FnOnce(&K, &serde_json::Value, &plugins::CallScope) -> R) -> R {
        f(&self.kind, &self.with, &self.scope)
    }

    /// Hides `values` too (plaintext an earlier step decrypted) from what the plugin says.
    pub(super) fn hide(&mut self, values: &[String]) {
        for value in values {
            if !self.scope.redact.contains(value) {
                self.scope.redact.push(value.clone());
            }
        }
    }

    /// A message from the plugin, without the secret values it was given.
    pub fn redact(&self, text: &str) -> String {
        crate::secrets::redact(text, &self.scope.redact)
    }

    pub(super) fn finding(&self, d: plugins::Diagnostic) -> Finding {
        let mut finding = Finding::from_diagnostic(d, self.plugin().name());
        finding.message = self.redact(&finding.message);
        finding
    }
}

/// The loaded plugin of one step, as the kind `K` its chain takes, and its config, checked
/// against the plugin's schema. Errors name and point at the step where it is written
/// (`step.at`) in the config file.
pub(crate) fn resolve_step<'p, K: Kind<'p>>(
    prepared: &'p Prepared,
    chain: &str,
    step: &Step,
    secrets: &SecretValues,
    interrupt: Option<&Interrupt>,
) -> Result<StepCall<K>, StageError> {
    let config = &prepared.config;
    let (name, at) = (&step.uses, &step.at);
    let plugin = prepared.plugin(name).map_err(StageError::Load)?;
    let Some(kind) = K::of(plugin) else {
        let message = format!("plugin `{name}` is a {}; `{chain}` takes {}s", plugin.kind(), K::KIND);
        return Err(config.error_at_step(step, ".use", message).into());
    };
    let crate::secrets::StepConfig { with, secret_values } = secrets
        .step_config(step, &config.settings.namespace)
        .map_err(|source| StageError::Secrets { at: format!("{at}."), source })?;
    if let Err(errors) = plugin.check_config(&with) {
        let message = format!("rejected by plugin `{name}`'s schema: {}", errors.join("; "));
        return Err(config.error_at_step(step, ".with", message).into());
    }
    Ok(StepCall {
        kind,
        with,
        scope: plugins::CallScope { redact: secret_values, interrupt: interrupt.cloned(), cap: step.cap },
    })
}
