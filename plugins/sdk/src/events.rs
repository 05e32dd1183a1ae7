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
