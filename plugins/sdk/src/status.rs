//! What commit-status notifiers (GitHub, GitLab) share: the commit a run was for, its
//! outcome, the status's name and description.

use crate::{Event, Severity};

/// A run's outcome as a commit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// The commit id (hex), from the run's revision.
    pub sha: String,
    pub failed: bool,
    /// `moor/<pipeline>`.
    pub context: String,
    /// The lead event's message, cut to `max` characters.
    pub description: String,
    /// `target_url` with `{revision}` and `{pipeline}` replaced.
    pub target_url: Option<String>,
}

impl CommitStatus {
    /// The status of a run's events; an error when the revision is not a git commit.
    pub fn of(events: &[Event], max: usize, target_url: Option<&str>) -> Result<Option<CommitStatus>, String> {
        let Some(lead) = crate::events::worst(events) else { return Ok(None) };
        let sha = lead.revision.as_str();
        let is_commit = matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_commit {
            return Err(format!("revision `{sha}` is not a git commit: commit statuses need a git source"));
        }
        let description = if lead.message.chars().count() > max {
            let cut: String = lead.message.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        } else {
            lead.message.clone()
        };
        Ok(Some(CommitStatus {
            sha: sha.to_owned(),
            failed: lead.severity == Severity::Error,
            context: format!("moor/{}", lead.pipeline),
            description,
            target_url: target_url.map(|u| u.replace("{revision}", sha).replace("{pipeline}", &lead.pipeline)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventReason;

    fn event(revision: &str, severity: Severity, message: &str) -> Event {
        Event {
            pipeline: "web".into(),
            reason: EventReason::RunFailed,
            severity,
            revision: revision.into(),
            message: message.into(),
            objects: Vec::new(),
            timestamp: "t".into(),
        }
    }

    #[test]
    fn a_run_becomes_a_commit_status_of_its_worst_event() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let events = [event(sha, Severity::Info, "pruned 1"), event(sha, Severity::Error, &"x".repeat(200))];
        let status = CommitStatus::of(&events, 140, Some("https://moor.example.com/#{pipeline}")).unwrap().unwrap();
        assert!(status.failed);
        assert_eq!(status.context, "moor/web");
        assert_eq!(status.description.chars().count(), 140);
        assert_eq!(status.target_url.as_deref(), Some("https://moor.example.com/#web"));
        assert!(CommitStatus::of(&[event("sha256:abc", Severity::Info, "m")], 140, None).unwrap_err().contains("git"));
        assert_eq!(CommitStatus::of(&[], 140, None), Ok(None));
    }
}
