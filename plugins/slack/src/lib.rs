//! `slack`: posts one message per run to a Slack incoming webhook, in Block Kit: a header
//! with the outcome, each event's message, the objects concerned, and a context line with
//! the revision. The webhook URL is the credential: give it through the step's `secrets`,
//! and allow `hooks.slack.com`.

use moor_plugin_sdk::{Event, Info, Notifier, Severity, export_notifier};
use serde::Deserialize;
use serde_json::{Value, json};

/// The step's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The incoming webhook's URL (a secret).
    pub url: String,
    /// Overrides the webhook's default channel, where the app allows it.
    #[serde(default)]
    pub channel: Option<String>,
    /// A link to show with the revision: `{revision}` is replaced.
    #[serde(default)]
    pub revision_url: Option<String>,
}

/// At most this many objects are listed in a message.
const MAX_OBJECTS: usize = 10;

pub struct Plugin;

impl Notifier for Plugin {
    type Config = Config;

    fn info() -> Info {
        Info::new("slack", env!("CARGO_PKG_VERSION"))
            .description("Posts one Block Kit message per run to a Slack incoming webhook")
            .schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "pattern": "^https?://"},
                    "channel": {"type": "string"},
                    "revision_url": {"type": "string"}
                }
            }))
    }

    fn notify(config: Config, events: Vec<Event>) -> Result<(), String> {
        let Some(message) = message(&config, &events) else { return Ok(()) };
        moor_plugin_sdk::http::post_json(&config.url, &[], &message)
    }
}

export_notifier!(Plugin);

/// Slack's escaping for mrkdwn text: `&`, `<` and `>`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The Block Kit message for a run's events; none for no events.
pub fn message(config: &Config, events: &[Event]) -> Option<Value> {
    let lead = moor_plugin_sdk::events::worst(events)?;
    let icon = match lead.severity {
        Severity::Info => ":white_check_mark:",
        Severity::Warning => ":warning:",
        Severity::Error => ":x:",
    };
    let title = format!("{} {}: {}", icon, lead.pipeline, lead.reason.as_str());
    let lines: Vec<String> =
        events.iter().map(|e| format!("• *{}*: {}", e.reason.as_str(), escape(&e.message))).collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}}),
    ];
    if let Some(line) = moor_plugin_sdk::events::objects_line(events, MAX_OBJECTS, |n| format!("`{n}`")) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&line)}}));
    }
    let short: String = lead.revision.chars().take(12).collect();
    let revision = match &config.revision_url {
        Some(url) => format!("<{}|{short}>", url.replace("{revision}", &lead.revision)),
        None => format!("`{short}`"),
    };
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": format!("moor · pipeline `{}` · revision {revision} · {}", lead.pipeline, lead.timestamp)}
    ]}));
    let mut body = json!({"text": format!("{}: {}", lead.pipeline, lead.message), "blocks": blocks});
    if let Some(channel) = &config.channel {
        body["channel"] = json!(channel);
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_plugin_sdk::{EventReason, ObjectRef};

    fn event(reason: EventReason, severity: Severity, message: &str, objects: usize) -> Event {
        let objects = (0..objects)
            .map(|i| ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("apps".into()),
                name: format!("cm-{i}"),
            })
            .collect();
        Event {
            pipeline: "web".into(),
            reason,
            severity,
            revision: "0123456789abcdef0123".into(),
            message: message.into(),
            objects,
            timestamp: "2026-12-02T18:00:00Z".into(),
        }
    }

    fn config() -> Config {
        Config { url: "https://hooks.slack.com/services/T/B/x".into(), channel: None, revision_url: None }
    }

    #[test]
    fn a_run_is_one_block_kit_message_led_by_its_worst_event() {
        let events = [
            event(EventReason::Pruned, Severity::Info, "pruned 1 object(s)", 1),
            event(EventReason::HealthFailed, Severity::Error, "Deployment/web <not ready>", 12),
        ];
        let m = message(&config(), &events).unwrap();
        assert_eq!(m["text"], "web: Deployment/web <not ready>");
        let blocks = m["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], ":x: web: health-failed");
        assert_eq!(
            blocks[1]["text"]["text"],
            "• *pruned*: pruned 1 object(s)\n• *health-failed*: Deployment/web &lt;not ready&gt;"
        );
        assert!(blocks[2]["text"]["text"].as_str().unwrap().ends_with("and 3 more"), "{}", blocks[2]);
        assert_eq!(blocks[3]["type"], "context");
        assert!(blocks[3]["elements"][0]["text"].as_str().unwrap().contains("`0123456789ab`"));
        assert!(message(&config(), &[]).is_none());
    }

    #[test]
    fn a_revision_link_and_a_channel_are_used_when_given() {
        let config = Config {
            channel: Some("#deploys".into()),
            revision_url: Some("https://git.example.com/commit/{revision}".into()),
            ..config()
        };
        let m = message(&config, &[event(EventReason::RunSucceeded, Severity::Info, "applied", 0)]).unwrap();
        assert_eq!(m["channel"], "#deploys");
        let context = m["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert!(context.contains("<https://git.example.com/commit/0123456789abcdef0123|0123456789ab>"), "{context}");
    }
}
