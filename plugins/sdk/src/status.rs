//! What commit-status notifiers (GitHub, GitLab) share: the commit a run was for, its
//! outcome, the status's name and description.

use crate::{Event, RunStart, Severity};

/// Where a run stands, as a commit status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The run of this revision has started.
    Pending,
    Success,
    Failure,
}

/// A run (its start, or its outcome) as a commit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// The commit id (hex), from the run's revision.
    pub sha: String,
    pub state: State,
    /// `moor/<pipeline>`.
    pub context: String,
    /// What happened, cut to `max` characters.
    pub description: String,
    /// `target_url` with `{revision}` and `{pipeline}` replaced.
    pub target_url: Option<String>,
}

impl CommitStatus {
    /// The status of a run's events, from its worst; an error when the revision is not a
    /// git commit.
    pub fn of(events: &[Event], max: usize, target_url: Option<&str>) -> Result<Option<CommitStatus>, String> {
        let Some(lead) = crate::events::worst(events) else { return Ok(None) };
        let state = if lead.severity == Severity::Error { State::Failure } else { State::Success };
        Self::new(&lead.pipeline, &lead.revision, state, &lead.message, max, target_url).map(Some)
    }

    /// `pending`: the run of `run.revision` has started.
    pub fn started(run: &RunStart, max: usize, target_url: Option<&str>) -> Result<CommitStatus, String> {
        let short: String = run.revision.chars().take(7).collect();
        Self::new(&run.pipeline, &run.revision, State::Pending, &format!("applying {short}"), max, target_url)
    }

    fn new(
        pipeline: &str,
        sha: &str,
        state: State,
        message: &str,
        max: usize,
        target_url: Option<&str>,
    ) -> Result<CommitStatus, String> {
        let is_commit = matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_commit {
            return Err(format!("revision `{sha}` is not a git commit: commit statuses need a git source"));
        }
        let description = if message.chars().count() > max {
            let cut: String = message.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        } else {
            message.to_owned()
        };
        Ok(CommitStatus {
            sha: sha.to_owned(),
            state,
            context: format!("moor/{pipeline}"),
            description,
            target_url: target_url.map(|u| u.replace("{revision}", sha).replace("{pipeline}", pipeline)),
        })
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
        assert_eq!(status.state, State::Failure);
        assert_eq!(status.context, "moor/web");
        assert_eq!(status.description.chars().count(), 140);
        assert_eq!(status.target_url.as_deref(), Some("https://moor.example.com/#web"));
        assert!(CommitStatus::of(&[event("sha256:abc", Severity::Info, "m")], 140, None).unwrap_err().contains("git"));
        assert_eq!(CommitStatus::of(&[], 140, None), Ok(None));
        assert_eq!(
            CommitStatus::of(&[event(sha, Severity::Warning, "drift")], 140, None).unwrap().unwrap().state,
            State::Success
        );
    }

    #[test]
    fn a_start_is_pending_on_its_commit() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let run = RunStart { pipeline: "web".into(), revision: sha.into(), timestamp: "t".into() };
        let status = CommitStatus::started(&run, 140, Some("https://ci/{revision}")).unwrap();
        assert_eq!((status.state, status.sha.as_str(), status.context.as_str()), (State::Pending, sha, "moor/web"));
        assert_eq!(status.description, "applying 0123456");
        assert_eq!(status.target_url.as_deref(), Some(&*format!("https://ci/{sha}")));
        let tree = RunStart { revision: "sha256:abc".into(), ..run };
        assert!(CommitStatus::started(&tree, 140, None).unwrap_err().contains("git source"));
    }
}
