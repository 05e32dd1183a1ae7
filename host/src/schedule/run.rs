//! The controller's run of one pipeline: its context, [`Moor::run`] with the start told
//! to the notifiers that hear of starts, then its bookkeeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::OwnedSemaphorePermit;

use super::{Controller, Trigger, record};
use crate::apply::RunOptions;
use crate::interrupt::Interrupt;
use crate::metrics::Metrics;
use crate::reconcile::{Mode, OnStart, Prepared, RunContext, RunFailure, RunReport, StageError};

impl Controller {
    /// One run of one pipeline, then its bookkeeping: status, metrics, the next run,
    /// notifications and events.
    pub(super) async fn run_pipeline(
        self: Arc<Self>,
        name: String,
        trigger: Trigger,
        permit: OwnedSemaphorePermit,
        prepared: Arc<Prepared>,
        interrupt: Interrupt,
    ) {
        let Some(pipeline) = prepared.config.pipeline(&name).cloned() else { return };
        let _running = RunningGuard::new(&self.metrics);
        let started = SystemTime::now();
        let clock = Instant::now();
        tracing::info!(pipeline = name, trigger = trigger.as_str(), "run started");
        // The run's timeout, or the controller stopping it ([`super::RunHandle::stop`], or
        // this task dropped), stops its fetch and plugin calls too, not only its futures.
        let armed = interrupt.armed("the run was stopped by the controller");
        let on_start = TellStart { controller: &self, told: AtomicBool::new(false) };
        let ctx = RunContext::new(&prepared, &pipeline, Some(&self.target), interrupt.clone());
        let ctx = tokio::select! {
            ctx = ctx => ctx,
            () = interrupt.raised() => {
                let why = interrupt.why().unwrap_or_default();
                Err(RunFailure::at(crate::stage::Stage::Prepare)(StageError::Stopped(why)))
            }
        };
        let (report, ctx) = match ctx {
            Ok(ctx) => {
                (self.moor.run(&ctx, Mode::Apply(RunOptions::default()), Some(&on_start), &|_| {}).await, Some(ctx))
            }
            Err(e) => (RunReport::failed(&name, e), None),
        };
        armed.disarm();
        let told_start = on_start.told.load(Ordering::Relaxed);
        let took = clock.elapsed();
        match report.error() {
            None => tracing::info!(pipeline = name, revision = report.revision, ?took, "run succeeded"),
            Some(e) => tracing::warn!(pipeline = name, ?took, "run failed: {e}"),
        }
        // Before the run counts as over: the watch compares what it sees with this.
        self.remember_applied(&name, &report);
        let run = record::Finished { config: &prepared.config, trigger, started, took, report: &report };
        let outcome = self.finish(&pipeline, &run, told_start);
        let remote = ctx.as_ref().and_then(|c| c.place.as_ref()).and_then(|p| p.remote());
        self.watch_kinds(&pipeline, remote, &report.cluster.kinds());
        // Kubernetes Events go to the cluster moor runs in, about its objects only.
        if pipeline.cluster.is_none() {
            self.events.record(&name, &report);
        }
        if let Some(outcome) = outcome {
            self.notify(&prepared, &pipeline, ctx.as_ref().map(|c| &c.secrets), outcome).await;
        }
        // The worker is free before the scheduler looks: its pass would not find it otherwise.
        drop(permit);
        self.wake.notify_one();
    }
}

/// Tells the notifiers that hear of starts that a run of a new revision starts, and
/// remembers that it did (its end is told too).
struct TellStart<'a> {
    controller: &'a Controller,
    told: AtomicBool,
}

impl OnStart for TellStart<'_> {
    fn started<'c>(
        &'c self,
        ctx: &'c RunContext<'c>,
        revision: &'c str,
        applied: &'c str,
    ) -> futures::future::BoxFuture<'c, ()> {
        Box::pin(async move {
            if self.controller.tell_started(ctx, revision, applied).await {
                self.told.store(true, Ordering::Relaxed);
            }
        })
    }
}

/// Counts a run in progress for as long as it lives (also when it is stopped).
struct RunningGuard<'m>(&'m Metrics);

impl<'m> RunningGuard<'m> {
    fn new(metrics: &'m Metrics) -> Self {
        metrics.running.inc();
        RunningGuard(metrics)
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.dec();
    }
}
