//! The scheduling state of one pipeline, as a pure state machine: when it is due and why,
//! whether a run is in progress and what is queued behind it, backoff after failures,
//! suspension, and the history of its runs. No locks, tasks, clocks or metrics: the
//! controller passes `now` in and acts on what comes back.

use std::time::{Duration, Instant, SystemTime};

use backon::BackoffBuilder;
use serde::Serialize;

pub use super::record::Trigger;
use super::record::{History, RunRecord};
use crate::apply::Health;

/// What a trigger did (the API's `result`, which `moor reconcile` reads back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Triggered {
    /// The pipeline was idle: it runs now (as soon as a worker is free).
    Started,
    /// A run is in progress: one more was queued behind it.
    Queued,
    /// A run is in progress and one is already queued: nothing more is queued.
    AlreadyQueued,
}

/// Whether a run is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Not running: due at `due`, for `reason`.
    Idle { due: Instant, reason: Trigger },
    /// Running; at most one more run queued behind it.
    Running { queued: Option<Trigger> },
}

/// Why a due pipeline may not run yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// A dependency has not applied (its newest revision) yet.
    Waiting(String),
    /// A dependency failed or is unhealthy.
    Failed(String),
}

impl Blocked {
    pub fn reason(&self) -> &str {
        match self {
            Blocked::Waiting(r) | Blocked::Failed(r) => r,
        }
    }
}

/// A dependency as [`Slot::gate`] sees it: its last run and its source's newest known
/// revision.
#[derive(Debug, Clone, Copy)]
pub struct Dependency<'a> {
    pub name: &'a str,
    pub last: Option<&'a RunRecord>,
    pub newest: Option<&'a str>,
}

/// A finished run, as [`Slot::finish`] took it.
#[derive(Debug)]
pub struct Finish<'a> {
    /// When the next run is due.
    pub due: Instant,
    /// The run succeeded after failures.
    pub recovered: bool,
    /// The run's record, as the history keeps it.
    pub record: &'a RunRecord,
}

/// When runs repeat: the interval (plus jitter) after a success, backoff up to
/// `retry` after failures.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub interval: Duration,
    pub jitter: Duration,
    pub retry: Duration,
}

/// One pipeline's schedule.
#[derive(Debug)]
pub struct Slot {
    run: Run,
    backoff: Option<backon::ExponentialBackoff>,
    /// Set through the API; wins over the config's `suspend` until a restart.
    suspended_by_api: Option<bool>,
    /// The runs it had, the one record of each.
    history: History,
    failures_in_a_row: u32,
    runs: u64,
    /// Why the last run was stopped before it finished, until the next one finishes.
    stopped: Option<String>,
}

impl Slot {
    /// A new pipeline, due now.
    pub fn new(now: Instant, reason: Trigger) -> Slot {
        Slot {
            run: Run::Idle { due: now, reason },
            backoff: None,
            suspended_by_api: None,
            history: History::default(),
            failures_in_a_row: 0,
            runs: 0,
            stopped: None,
        }
    }

    #[cfg(test)]
    fn run(&self) -> Run {
        self.run
    }

    pub fn is_running(&self) -> bool {
        matches!(self.run, Run::Running { .. })
    }

    pub fn last(&self) -> Option<&RunRecord> {
        self.history.last()
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row
    }

    pub fn runs(&self) -> u64 {
        self.runs
    }

    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// The run queued behind the one in progress.
    pub fn queued(&self) -> Option<Trigger> {
        match self.run {
            Run::Running { queued } => queued,
            Run::Idle { .. } => None,
        }
    }

    /// Suspended through the API, else as the config says.
    pub fn suspended(&self, in_config: bool) -> bool {
        self.suspended_by_api.unwrap_or(in_config)
    }

    /// Idle and due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        matches!(self.run, Run::Idle { due, .. } if due <= now)
    }

    /// When it is due next, if idle.
    pub fn due(&self) -> Option<Instant> {
        match self.run {
            Run::Idle { due, .. } => Some(due),
            Run::Running { .. } => None,
        }
    }

    /// Asks for a run: an idle pipeline is due now (keeping a more specific reason than the
    /// interval); a running one gets exactly one run queued.
    pub fn trigger(&mut self, now: Instant, trigger: Trigger) -> Triggered {
        match &mut self.run {
            Run::Running { queued } => {
                let already = queued.is_some();
                *queued = Some(trigger);
                if already { Triggered::AlreadyQueued } else { Triggered::Queued }
            }
            Run::Idle { due, reason } => {
                if *due > now || *reason == Trigger::Interval {
                    *reason = trigger;
                }
                *due = (*due).min(now);
                Triggered::Started
            }
        }
    }

    /// The config changed: a run for `trigger`, now or right after the current one.
    pub fn reconfigured(&mut self, now: Instant, trigger: Trigger) {
        match &mut self.run {
            Run::Running { queued } => *queued = Some(trigger),
            Run::Idle { .. } => self.run = Run::Idle { due: now, reason: trigger },
        }
    }

    /// Becoming leader: whatever is idle is due now.
    pub fn due_now(&mut self, now: Instant) {
        if let Run::Idle { due, .. } = &mut self.run {
            *due = (*due).min(now);
        }
    }

    /// Suspends or resumes through the API; resuming makes it due now.
    pub fn set_suspended(&mut self, now: Instant, suspended: bool) {
        self.suspended_by_api = Some(suspended);
        if !suspended && let Run::Idle { .. } = self.run {
            self.run = Run::Idle { due: now, reason: Trigger::Manual };
        }
    }

    /// A run starts: returns why it runs.
    pub fn start(&mut self) -> Option<Trigger> {
        match self.run {
            Run::Idle { reason, .. } => {
                self.run = Run::Running { queued: None };
                Some(reason)
            }
            Run::Running { .. } => None,
        }
    }

    /// The run in progress was stopped (lease lost, shutdown): due again at once.
    pub fn stop(&mut self, now: Instant, why: &str) {
        if let Run::Running { queued } = self.run {
            self.run = Run::Idle { due: now, reason: queued.unwrap_or(Trigger::Retry) };
            self.stopped = Some(why.into());
        }
    }

    /// The run in progress finished, as `record` says. The next one is the queued one (now),
    /// else after the interval with jitter on success, else after the backoff.
    pub fn finish(&mut self, now: Instant, record: RunRecord, timing: Timing) -> Finish<'_> {
        let queued = self.queued();
        let ok = record.ok;
        let recovered = ok && self.failures_in_a_row > 0;
        self.runs += 1;
        self.stopped = None;
        if ok {
            self.failures_in_a_row = 0;
            self.backoff = None;
        } else {
            self.failures_in_a_row += 1;
        }
        let (due, reason) = match queued {
            Some(queued) => (now, queued),
            None if ok => (now + timing.interval + timing.jitter, Trigger::Interval),
            None => {
                let delay = self.backoff.get_or_insert_with(|| backoff(timing.retry)).next();
                (now + delay.unwrap_or(timing.retry), Trigger::Retry)
            }
        };
        self.run = Run::Idle { due, reason };
        Finish { due, recovered, record: self.history.push(record) }
    }

    /// Whether dependencies let a pipeline run: each one's last run succeeded, applied its
    /// source's newest known revision and did not fail health (one that does not wait is
    /// not checked, and counts as ready once applied).
    pub fn gate(deps: &[Dependency<'_>]) -> Result<(), Blocked> {
        for dep in deps {
            let name = dep.name;
            let Some(last) = dep.last else {
                return Err(Blocked::Waiting(format!("waiting for dependency `{name}` to apply")));
            };
            if !last.ok {
                let why = last.failure().unwrap_or_else(|| "failed".into());
                return Err(Blocked::Failed(format!("dependency `{name}` failed: {why}")));
            }
            if let Some(newest) = dep.newest
                && newest != last.revision
            {
                return Err(Blocked::Waiting(format!(
                    "waiting for dependency `{name}` to apply revision {}",
                    crate::source::short(newest)
                )));
            }
            if let Health::Failed(why) = &last.health {
                return Err(Blocked::Failed(format!("dependency `{name}` is not healthy: {why}")));
            }
        }
        Ok(())
    }
}

/// Start-up jitter and the spread of interval runs: up to a tenth of the interval.
pub fn jitter(interval: Duration, name: &str) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos().hash(&mut h);
    interval.mul_f64((h.finish() % 1000) as f64 / 10_000.0)
}

/// Exponential backoff from 1 s (or `retry`, if shorter) doubling up to `retry`, with jitter.
pub fn backoff(retry: Duration) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1).min(retry))
        .with_max_delay(retry)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing =
        Timing { interval: Duration::from_secs(600), jitter: Duration::from_secs(5), retry: Duration::from_secs(60) };

    use crate::schedule::record::test_record;

    fn ok(revision: &str) -> RunRecord {
        test_record(true, revision, Health::Ready, None)
    }

    fn failed(reason: &str) -> RunRecord {
        test_record(false, "r1", Health::NotChecked, Some(reason))
    }

    #[test]
    fn a_running_pipeline_queues_exactly_one_run() {
        let now = Instant::now();
        let mut slot = Slot::new(now, Trigger::Startup);
        assert_eq!(slot.start(), Some(Trigger::Startup));
        assert_eq!(slot.start(), None, "one run at a time");
        assert_eq!(slot.trigger(now, Trigger::Manual), Triggered::Queued);
        assert_eq!(slot.trigger(now, Trigger::Webhook), Triggered::AlreadyQueued);
        assert_eq!(slot.trigger(now, Trigger::Drift), Triggered::AlreadyQueued);
        let due = slot.finish(now, ok("r1"), TIMING).due;
        // The queued run is due at once, and only one.
        assert_eq!(due, now);
        assert_eq!(slot.start(), Some(Trigger::Drift));
        let due = slot.finish(now, ok("r1"), TIMING).due;
        assert_eq!(due, now + TIMING.interval + TIMING.jitter);
        assert_eq!(slot.run(), Run::Idle { due, reason: Trigger::Interval });
    }

    #[test]
    fn a_trigger_on_an_idle_pipeline_makes_it_due_now_and_names_the_reason() {
        let now = Instant::now();
        let mut slot = Slot::new(now, Trigger::Startup);
        slot.start();
        slot.finish(now, ok("r1"), TIMING);
        assert!(!slot.is_due(now));
        assert_eq!(slot.trigger(now, Trigger::Revision), Triggered::Started);
        assert!(slot.is_due(now));
        assert_eq!(slot.start(), Some(Trigger::Revision));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_retry_interval_and_a_success_resets() {
        let now = Instant::now();
        let mut slot = Slot::new(now, Trigger::Startup);
        let mut delays = Vec::new();
        for _ in 0..10 {
            slot.start();
            let due = slot.finish(now, failed("boom"), TIMING).due;
            delays.push(due - now);
        }
        assert_eq!(slot.failures_in_a_row(), 10);
        // Jitter adds up to one more delay; growth shows between the first and the fourth.
        assert!(delays[0] < Duration::from_secs(3), "{delays:?}");
        assert!(delays[3] > delays[0], "{delays:?}");
        assert!(delays.iter().all(|d| *d <= TIMING.retry * 2), "{delays:?}");
        assert!(delays[9] >= TIMING.retry, "capped at the retry interval: {delays:?}");
        assert_eq!(slot.run(), Run::Idle { due: now + delays[9], reason: Trigger::Retry });

        slot.start();
        let Finish { due, recovered, record } = slot.finish(now, ok("r2"), TIMING);
        assert_eq!(record.revision, "r2");
        assert!(recovered);
        assert_eq!((slot.failures_in_a_row(), due), (0, now + TIMING.interval + TIMING.jitter));
        slot.start();
        let due = slot.finish(now, failed("again"), TIMING).due;
        assert!(due - now < Duration::from_secs(3), "backoff starts over after a success");
    }

    #[test]
    fn a_stopped_run_is_due_again_at_once_and_says_why_until_the_next_run_ends() {
        let now = Instant::now();
        let mut slot = Slot::new(now, Trigger::Startup);
        slot.start();
        slot.stop(now, "this instance lost its lease");
        assert!(slot.is_due(now));
        assert_eq!(slot.stopped(), Some("this instance lost its lease"));
        slot.start();
        slot.finish(now, ok("r1"), TIMING);
        assert_eq!(slot.stopped(), None);
    }

    #[test]
    fn suspension_through_the_api_wins_over_the_config_and_resuming_runs_now() {
        let now = Instant::now();
        let mut slot = Slot::new(now, Trigger::Startup);
        assert!(slot.suspended(true));
        slot.set_suspended(now, false);
        assert!(!slot.suspended(true));
        assert_eq!(slot.start(), Some(Trigger::Manual));
        slot.finish(now, ok("r1"), TIMING);
        slot.set_suspended(now, true);
        assert!(slot.suspended(false));
    }

    #[test]
    fn dependencies_gate_a_run_with_their_reasons() {
        let dep = |last, newest| Dependency { name: "base", last, newest };
        assert_eq!(Slot::gate(&[]), Ok(()));
        assert_eq!(
            Slot::gate(&[dep(None, None)]),
            Err(Blocked::Waiting("waiting for dependency `base` to apply".into()))
        );
        let broken = failed("forbidden");
        assert_eq!(
            Slot::gate(&[dep(Some(&broken), None)]),
            Err(Blocked::Failed("dependency `base` failed: apply: forbidden".into()))
        );
        let old = ok("0123456789abcdef0123");
        assert_eq!(
            Slot::gate(&[dep(Some(&old), Some("fedcba9876543210fedc"))]),
            Err(Blocked::Waiting("waiting for dependency `base` to apply revision fedcba987654".into()))
        );
        let sick = test_record(true, "r1", Health::Failed("Deployment/a/web: timed out".into()), None);
        assert_eq!(
            Slot::gate(&[dep(Some(&sick), Some("r1"))]),
            Err(Blocked::Failed("dependency `base` is not healthy: Deployment/a/web: timed out".into()))
        );
        // Regression: a dependency with `wait = false` has its health not checked; it was
        // taken for unhealthy, and its dependents were blocked for ever.
        let unwaited = test_record(true, "r1", Health::NotChecked, None);
        assert_eq!(Slot::gate(&[dep(Some(&unwaited), Some("r1"))]), Ok(()));
        assert_eq!(Slot::gate(&[dep(Some(&ok("r1")), Some("r1"))]), Ok(()));
    }
}
