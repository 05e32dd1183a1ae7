//! One pass of the scheduler: which due pipelines start now, as a pure function. The
//! controller gives the pipelines in dependency order with their slots, how many workers
//! are free and the gate, and acts on what comes back.
//!
//! A pass runs after every finished run, so it must cost little with many pipelines due
//! and no worker free (10,000 pipelines at start-up): a pipeline's gate (its dependencies
//! and `wait_for`) is asked only while a worker is free for it.

use std::time::Instant;

use super::slot::Slot;

/// A pipeline as the pass sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'p, 's, P> {
    pub pipeline: &'p P,
    pub slot: &'s Slot,
    pub suspended: bool,
}

/// What one pass decided.
#[derive(Debug)]
pub struct Pass<'a, P> {
    /// Due, let through by its gate, with a worker free: start these, in this order.
    pub start: Vec<&'a P>,
    /// Due and not started: blocked, waiting for a worker, or not leading.
    pub waiting: usize,
    /// When the first pipeline not yet due becomes due.
    pub next: Option<Instant>,
}

/// Walks `pipelines` (in dependency order, so that a dependency gets a worker before what
/// depends on it). `free` workers can start runs; `may_run` is false when this instance
/// does not lead or is stopping; `ready` is the gate.
pub fn plan<'a, 's, P>(
    pipelines: impl IntoIterator<Item = Candidate<'a, 's, P>>,
    now: Instant,
    mut free: usize,
    may_run: bool,
    mut ready: impl FnMut(&P) -> bool,
) -> Pass<'a, P> {
    let mut pass = Pass { start: Vec::new(), waiting: 0, next: None };
    for Candidate { pipeline, slot, suspended } in pipelines {
        if slot.is_running() || suspended {
            continue;
        }
        if !slot.is_due(now) {
            pass.next = pass.next.into_iter().chain(slot.due()).min();
            continue;
        }
        if may_run && free > 0 && ready(pipeline) {
            free -= 1;
            pass.start.push(pipeline);
        } else {
            pass.waiting += 1;
        }
    }
    pass
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schedule::slot::Trigger;

    struct Pipelines {
        now: Instant,
        slots: Vec<(&'static str, Slot, bool)>,
    }

    impl Pipelines {
        /// Pipelines due now, or `Some(seconds)` from now.
        fn new(due: &[(&'static str, Option<u64>)]) -> Pipelines {
            let now = Instant::now();
            let slots = due
                .iter()
                .map(|&(name, later)| {
                    let at = now + Duration::from_secs(later.unwrap_or(0));
                    (name, Slot::new(at, Trigger::Startup), false)
                })
                .collect();
            Pipelines { now, slots }
        }

        fn plan(&self, free: usize, may_run: bool, ready: impl FnMut(&&'static str) -> bool) -> Pass<'_, &'static str> {
            let candidates = self.slots.iter().map(|(name, slot, suspended)| Candidate {
                pipeline: name,
                slot,
                suspended: *suspended,
            });
            plan(candidates, self.now, free, may_run, ready)
        }
    }

    fn names(ps: &[&&'static str]) -> Vec<&'static str> {
        ps.iter().map(|p| **p).collect()
    }

    #[test]
    fn due_pipelines_start_in_order_while_workers_are_free() {
        let ps = Pipelines::new(&[("db", None), ("web", None), ("later", Some(30)), ("api", None)]);
        let pass = ps.plan(2, true, |_| true);
        assert_eq!(names(&pass.start), ["db", "web"]);
        assert_eq!(pass.waiting, 1, "api waits for a worker");
        assert_eq!(pass.next, Some(ps.now + Duration::from_secs(30)));
    }

    #[test]
    fn a_blocked_pipeline_waits_and_leaves_its_worker_to_the_next() {
        let ps = Pipelines::new(&[("web", None), ("db", None)]);
        let pass = ps.plan(1, true, |p| *p != "web");
        assert_eq!(names(&pass.start), ["db"]);
        assert_eq!(pass.waiting, 1);
    }

    #[test]
    fn gates_are_asked_only_while_a_worker_is_free() {
        let due: Vec<(&'static str, Option<u64>)> = ["a", "b", "c", "d", "e"].iter().map(|n| (*n, None)).collect();
        let ps = Pipelines::new(&due);
        let mut asked = Vec::new();
        let pass = ps.plan(2, true, |p| {
            asked.push(*p);
            true
        });
        assert_eq!(asked, ["a", "b"]);
        assert_eq!(names(&pass.start), ["a", "b"]);
        assert_eq!(pass.waiting, 3);
    }

    #[test]
    fn running_and_suspended_pipelines_are_passed_over_and_nothing_starts_without_the_lead() {
        let mut ps = Pipelines::new(&[("running", None), ("suspended", None), ("due", None)]);
        ps.slots[0].1.start();
        ps.slots[1].2 = true;
        let pass = ps.plan(4, false, |_| panic!("no gate is asked when nothing may run"));
        assert!(pass.start.is_empty());
        assert_eq!(pass.waiting, 1);
        assert_eq!(pass.next, None);
        let pass = ps.plan(4, true, |_| true);
        assert_eq!(names(&pass.start), ["due"]);
    }
}
