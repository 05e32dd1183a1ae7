//! What others ask of the controller: a run now (the API, the page's button, webhooks,
//! watches, polling), suspend and resume; and the webhook secret a request is checked with.

use std::time::Instant;

use super::{Controller, Trigger, Triggered};
use crate::metrics::{PipelineLabels, TriggerLabels};

/// Why a request about a pipeline was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no pipeline is named `{0}`")]
    NoSuchPipeline(String),
    #[error("pipeline `{0}` is suspended")]
    Suspended(String),
}

impl Controller {
    /// Asks for a run of `name`. A pipeline that is running gets exactly one run queued.
    pub fn trigger(&self, name: &str, trigger: Trigger) -> Result<Triggered, RequestError> {
        let mut st = self.lock();
        let suspended_in_config = st.prepared.config.pipeline(name).is_some_and(|p| p.suspend);
        let tracked = st.pipelines.get_mut(name).ok_or_else(|| RequestError::NoSuchPipeline(name.into()))?;
        if matches!(trigger, Trigger::Manual | Trigger::Webhook) && tracked.slot.suspended(suspended_in_config) {
            return Err(RequestError::Suspended(name.into()));
        }
        self.metrics
            .triggers
            .get_or_create(&TriggerLabels { pipeline: PipelineLabels::of(name), trigger: trigger.as_str().into() })
            .inc();
        let result = tracked.slot.trigger(Instant::now(), trigger);
        drop(st);
        self.wake.notify_one();
        Ok(result)
    }

    /// Suspends or resumes `name`. This wins over the config's `suspend` for as long as the
    /// controller runs (a restart goes back to the config).
    pub fn set_suspended(&self, name: &str, suspended: bool) -> Result<(), RequestError> {
        let mut st = self.lock();
        let tracked = st.pipelines.get_mut(name).ok_or_else(|| RequestError::NoSuchPipeline(name.into()))?;
        tracked.slot.set_suspended(Instant::now(), suspended);
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Whether `name` is a pipeline of the current config, and its webhook secret.
    pub fn webhook_secret(&self, name: &str) -> Option<Option<crate::config::SecretRef>> {
        let st = self.lock();
        st.prepared.config.pipeline(name).map(|p| p.webhook_secret.clone())
    }
}
