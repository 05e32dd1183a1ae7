//! `gitlab-status`: a run as a commit status on the revision it applies, named
//! `moor/<pipeline>`: `running` when the run starts, then `success` or `failed`. Through
//! GitLab's REST API (`POST /projects/:id/statuses/:sha`). The token (`PRIVATE-TOKEN`)
//! comes from a Secret, through the step's `secrets`; allow `gitlab.com` (or your GitLab host).

use moor_plugin_sdk::status::{CommitStatus, State};
use moor_plugin_sdk::{Event, Info, Notifier, RunStart, StatusNotifier, export_status_notifier};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The project's id or path (`group/project`).
    pub project: String,
    /// A token with the `api` scope (a secret).
    pub token: String,
    /// A self-managed GitLab: `https://gitlab.example.com/api/v4`.
    #[serde(default = "default_api")]
    pub api_url: String,
    /// A link from the status: `{revision}` and `{pipeline}` are replaced.
    #[serde(default)]
    pub target_url: Option<String>,
}

fn default_api() -> String {
    "https://gitlab.com/api/v4".into()
}

/// GitLab keeps descriptions short; the same cut as GitHub's.
const MAX_DESCRIPTION: usize = 140;

pub struct Plugin;

impl Notifier for Plugin {
    type Config = Config;

    fn info() -> Info {
        Info::new("gitlab-status", env!("CARGO_PKG_VERSION"))
            .description("Sets a GitLab commit status (name moor/<pipeline>) on the revision a run applied")
            .schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["project", "token"],
                "properties": {
                    "project": {"type": "string"},
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
    /// `running` on the commit: GitLab's state for work under way (`pending` means queued).
    fn started(config: Config, run: RunStart) -> Result<(), String> {
        post(&config, CommitStatus::started(&run, MAX_DESCRIPTION, config.target_url.as_deref())?)
    }
}

fn post(config: &Config, status: CommitStatus) -> Result<(), String> {
    let (url, body) = request(config, status);
    let headers = [("private-token".to_owned(), config.token.clone())];
    moor_plugin_sdk::http::post_json(&url, &headers, &body)
}

export_status_notifier!(Plugin);

/// A project path as one URL path segment (`group/sub/project` → `group%2Fsub%2Fproject`).
fn encoded(project: &str) -> String {
    project
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The status request's URL and body.
pub fn request(config: &Config, status: CommitStatus) -> (String, Value) {
    let api = config.api_url.trim_end_matches('/');
    let url = format!("{api}/projects/{}/statuses/{}", encoded(&config.project), status.sha);
    let state = match status.state {
        State::Pending => "running",
        State::Success => "success",
        State::Failure => "failed",
    };
    let mut body = json!({
        "state": state,
        "name": status.context,
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
    fn a_run_is_a_status_named_after_its_pipeline_on_its_commit() {
        let config = Config {
            project: "acme/platform/deploy".into(),
            token: "t".into(),
            api_url: default_api(),
            target_url: Some("https://moor.example.com/api/v1/pipelines/{pipeline}".into()),
        };
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let event = Event {
            pipeline: "web".into(),
            reason: EventReason::RunSucceeded,
            severity: Severity::Info,
            revision: sha.into(),
            message: "applied".into(),
            objects: Vec::new(),
            timestamp: "t".into(),
        };
        let target = config.target_url.as_deref();
        let (url, body) = request(&config, CommitStatus::of(&[event], MAX_DESCRIPTION, target).unwrap().unwrap());
        assert_eq!(url, format!("https://gitlab.com/api/v4/projects/acme%2Fplatform%2Fdeploy/statuses/{sha}"));
        assert_eq!(body["state"], "success");
        assert_eq!(body["name"], "moor/web");
        assert_eq!(body["target_url"], "https://moor.example.com/api/v1/pipelines/web");
        let run = RunStart { pipeline: "web".into(), revision: sha.into(), timestamp: "t".into() };
        let (_, body) = request(&config, CommitStatus::started(&run, MAX_DESCRIPTION, target).unwrap());
        assert_eq!((&body["state"], &body["name"]), (&json!("running"), &json!("moor/web")));
    }
}
