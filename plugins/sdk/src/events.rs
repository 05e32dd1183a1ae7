//! Names and order of event reasons and severities, as configs and payloads spell them.

use crate::{Event, EventReason, Severity};

impl EventReason {
    /// `run-succeeded`, `run-failed`, `drift-corrected`, `health-failed`, `pruned`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::RunSucceeded => "run-succeeded",
            EventReason::RunFailed => "run-failed",
            EventReason::DriftCorrected => "drift-corrected",
            EventReason::HealthFailed => "health-failed",
            EventReason::Pruned => "pruned",
        }
    }
}

impl Severity {
    /// `info`, `warning`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// 0 for info, 1 for warning, 2 for error.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Error => 2,
        }
    }
}

/// The most severe event of a run (the first of equals), which a summary leads with.
pub fn worst(events: &[Event]) -> Option<&Event> {
    events.iter().reduce(|a, b| if b.severity.rank() > a.severity.rank() { b } else { a })
}

/// The objects of a run's events as `Kind/namespace/name` (`Kind/name` when cluster-scoped),
/// each wrapped by `quote`, at most `max` of them joined by `, `, then `and N more`; none
/// when no event names an object.
pub fn objects_line(events: &[Event], max: usize, quote: impl Fn(&str) -> String) -> Option<String> {
    let names: Vec<String> = events
        .iter()
        .flat_map(|e| &e.objects)
        .map(|o| match &o.namespace {
            Some(ns) => format!("{}/{ns}/{}", o.kind, o.name),
            None => format!("{}/{}", o.kind, o.name),
        })
        .collect();
    if names.is_empty() {
        return None;
    }
    let mut line = names.iter().take(max).map(|n| quote(n)).collect::<Vec<_>>().join(", ");
    if names.len() > max {
        line.push_str(&format!(" and {} more", names.len() - max));
    }
    Some(line)
}
