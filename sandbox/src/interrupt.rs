//! A run's stop signal. Its timeout, or the controller stopping it (a lost lease or shard,
//! shutdown), raises it; the work that a dropped future cannot stop reads it: a plugin call
//! (checked on the engine's epoch ticks), a git fetch (gix's interrupt flag, and a deadline
//! on each HTTP request). The first reason given is the one told.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Shared by everything one run does; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    raised: AtomicBool,
    why: OnceLock<String>,
    /// When the run's timeout raises it, and the timeout, if it has one.
    deadline: OnceLock<(Instant, Duration)>,
    /// Wakes the async work waiting in [`Interrupt::raised`].
    wake: tokio::sync::Notify,
    /// The task that raises it at the deadline, stopped when the run is over: a run's
    /// timeout is minutes, and a controller finishes many runs in that time.
    timer: OnceLock<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.get() {
            timer.abort();
        }
    }
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// An interrupt that `timeout` from now raises itself (on the tokio runtime, when
    /// there is one, else on a thread of its own), naming the timeout. The timer ends with
    /// the last clone.
    pub fn after(timeout: Duration) -> Interrupt {
        let interrupt = Interrupt::new();
        let _ = interrupt.0.deadline.set((Instant::now() + timeout, timeout));
        // The deadline alone stops what asks; raising the flag at it stops gix and wakes
        // what waits.
        let raise = {
            let interrupt = Arc::downgrade(&interrupt.0);
            move || {
                if let Some(inner) = interrupt.upgrade() {
                    Interrupt(inner).raise(timed_out(timeout));
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let timer = runtime.spawn(async move {
                    tokio::time::sleep(timeout).await;
                    raise();
                });
                let _ = interrupt.0.timer.set(timer.abort_handle());
            }
            Err(_) => {
                std::thread::spawn(move || {
                    std::thread::sleep(timeout);
                    raise();
                });
            }
        }
        interrupt
    }

    /// Stops the work that reads this interrupt, for `why` (kept only the first time).
    pub fn raise(&self, why: impl Into<String>) {
        let _ = self.0.why.set(why.into());
        self.0.raised.store(true, Ordering::Release);
        self.0.wake.notify_waiters();
    }

    /// Returns once it is raised (for async work, which stops by being dropped).
    pub async fn raised(&self) {
        loop {
            let woken = self.0.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.is_raised() {
                return;
            }
            woken.await;
        }
    }

    /// Raised, or past its deadline (a request that timed out at the deadline may come
    /// back before the timer raises the flag).
    pub fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::Acquire) || self.0.deadline.get().is_some_and(|(at, _)| Instant::now() >= *at)
    }

    /// Why it was raised, once it is.
    pub fn why(&self) -> Option<String> {
        if !self.is_raised() {
            return None;
        }
        let timeout = self.0.deadline.get().map(|(_, timeout)| timed_out(*timeout));
        self.0.why.get().cloned().or(timeout)
    }

    /// The flag itself, for gix's `should_interrupt`.
    pub fn flag(&self) -> &AtomicBool {
        &self.0.raised
    }

    /// How long is left before the run's timeout raises it, if it has one.
    pub fn left(&self) -> Option<Duration> {
        self.0.deadline.get().map(|(at, _)| at.saturating_duration_since(Instant::now()))
    }

    /// Raises the interrupt when dropped unless [`Armed::disarm`]ed: a run's future that is
    /// dropped (aborted, timed out) stops the blocking work it started.
    pub fn armed(&self, why: &'static str) -> Armed {
        Armed { interrupt: Some(self.clone()), why }
    }
}

fn timed_out(timeout: Duration) -> String {
    format!("the run's timeout of {} passed", humantime::format_duration(timeout))
}

/// See [`Interrupt::armed`].
#[derive(Debug)]
pub struct Armed {
    interrupt: Option<Interrupt>,
    why: &'static str,
}

impl Armed {
    pub fn disarm(mut self) {
        self.interrupt = None;
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(interrupt) = &self.interrupt {
            interrupt.raise(self.why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_is_kept_and_a_dropped_guard_raises_it() {
        let interrupt = Interrupt::new();
        assert_eq!((interrupt.is_raised(), interrupt.why(), interrupt.left()), (false, None, None));
        interrupt.armed("kept").disarm();
        assert!(!interrupt.is_raised(), "a disarmed guard raises nothing");
        drop(interrupt.armed("the run was stopped"));
        interrupt.raise("later");
        assert_eq!(interrupt.why().as_deref(), Some("the run was stopped"));
        assert!(interrupt.flag().load(Ordering::Relaxed));
    }

    #[test]
    fn a_timeout_raises_it_naming_the_timeout() {
        let interrupt = Interrupt::after(Duration::from_millis(20));
        assert!(interrupt.left().is_some_and(|left| left <= Duration::from_millis(20)));
        let start = Instant::now();
        while !interrupt.flag().load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(interrupt.why().as_deref(), Some("the run's timeout of 20ms passed"));
        assert!(interrupt.flag().load(Ordering::Relaxed), "the flag gix reads is raised too");
    }

    #[tokio::test]
    async fn the_timer_ends_with_the_last_clone() {
        let interrupt = Interrupt::after(Duration::from_secs(3600));
        let timer = interrupt.0.timer.get().expect("a timer on the runtime").clone();
        assert!(!timer.is_finished());
        drop(interrupt);
        tokio::time::timeout(Duration::from_secs(5), async {
            while !timer.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the timer was stopped");
    }

    #[tokio::test]
    async fn async_work_waiting_on_it_wakes_when_it_is_raised() {
        let interrupt = Interrupt::new();
        let waiting = tokio::spawn({
            let interrupt = interrupt.clone();
            async move { interrupt.raised().await }
        });
        tokio::task::yield_now().await;
        interrupt.raise("stopped");
        tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken").unwrap();
        interrupt.raised().await;
    }
}
