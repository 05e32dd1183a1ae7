//! `github-status`: a run as a commit status on the revision it applies, with context
//! `moor/<pipeline>`: `pending` when the run starts, then `success` or `failure`. Through
//! GitHub's REST API (`POST /repos/{owner}/{repo}/statuses/{sha}`). The token comes from a
//! Secret, through the step's `secrets`; allow `api.github.com` (or your GitHub Enterprise host).

use moor_plugin_sdk::status::{CommitStatus, State};
use moor_plugin_sdk::{Event, Info, Notifier, RunStart, StatusNotifier, export_status_notifier};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `owner/repo`.
    pub repository: String,
    /// A token that may write commit statuses (a secret).
    pub token: String,
    /// GitHub Enterprise: `https://github.example.com/api/v3`.
    #[serde(default = "default_api")]
    pub api_url: String,
    /// A link from the status: `{revision}` and `{pipeline}` are replaced.
    #[serde(default)]
    pub target_url: Option<String>,
}

fn default_api() -> String {
    "https://api.github.com".into()
}

/// GitHub cuts descriptions at 140 characters.
const MAX_DESCRIPTION: usize = 140;

pub struct Plugin;

impl Notifier for Plugin {
    type Config = Config;

    fn info() -> Info {
        Info::new("github-status", env!("CARGO_PKG_VERSION"))
            .description("Sets a GitHub commit status (context moor/<pipeline>) on the revision a run applied")
            .schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["repository", "token"],
                "properties": {
                    "repository": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
                    "token": {"type": "string"},
                    "api_url": {"type": "string", "pattern": "^https?://"},
                    "target_url": {"type": "string"}
                }
            }))
    }

    fn notify(config: Config, events: Vec<Event>) -> Result<(), String> {
        match CommitStatus::of(&events, MAX_DESCRIPTION, config.target_url.as_deref())? {
            Some(status) => post(&config, status),
            None => Ok(()),
        }
    }
}

impl StatusNotifier for Plugin {
    /// `pending` on the commit.
    fn started(config: Config, run: RunStart) -> Result<(), String> {
        post(&config, CommitStatus::started(&run, MAX_DESCRIPTION, config.target_url.as_deref())?)
    }
}

fn post(config: &Config, status: CommitStatus) -> Result<(), String> {
    let (url, body) = request(config, status);
    let headers = [
        ("authorization".to_owned(), format!("Bearer {}", config.token)),
        ("accept".to_owned(), "application/vnd.github+json".to_owned()),
        ("x-github-api-version".to_owned(), "2022-11-28".to_owned()),
        ("user-agent".to_owned(), "moor".to_owned()),
    ];
    moor_plugin_sdk::http::post_json(&url, &headers, &body)
}

export_status_notifier!(Plugin);

/// The status request's URL and body.
pub fn request(config: &Config, status: CommitStatus) -> (String, Value) {
    let url = format!("{}/repos/{}/statuses/{}", config.api_url.trim_end_matches('/'), config.repository, status.sha);
    let state = match status.state {
        State::Pending => "pending",
        State::Success => "success",
        State::Failure => "failure",
    };
    let mut body = json!({
        "state": state,
        "context": status.context,
        "description": status.description,
    });
    if let Some(target) = status.target_url {
        body["target_url"] = json!(target);
    }
    (url, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_plugin_sdk::{EventReason, Severity};

    #[test]
    fn a_failed_run_is_a_failure_status_on_its_commit() {
        let config = Config {
            repository: "acme/deploy".into(),
            token: "t".into(),
            api_url: "https://api.github.com/".into(),
            target_url: None,
        };
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let event = Event {
            pipeline: "web".into(),
            reason: EventReason::RunFailed,
            severity: Severity::Error,
            revision: sha.into(),
            message: "render: plugin `yaml` failed".into(),
            objects: Vec::new(),
            timestamp: "t".into(),
        };
        let status = CommitStatus::of(&[event], MAX_DESCRIPTION, None).unwrap().unwrap();
        let (url, body) = request(&config, status);
        assert_eq!(url, format!("https://api.github.com/repos/acme/deploy/statuses/{sha}"));
        assert_eq!(
            body,
            json!({"state": "failure", "context": "moor/web", "description": "render: plugin `yaml` failed"})
        );
        let run = RunStart { pipeline: "web".into(), revision: sha.into(), timestamp: "t".into() };
        let (_, body) = request(&config, CommitStatus::started(&run, MAX_DESCRIPTION, None).unwrap());
        assert_eq!(body, json!({"state": "pending", "context": "moor/web", "description": "applying 0123456"}));
    }
}
