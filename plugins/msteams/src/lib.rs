//! `msteams`: posts one message per run to a Microsoft Teams workflow webhook ("When a
//! Teams webhook request is received"), as an Adaptive Card: a title coloured by the
//! outcome, each event's message, and facts (pipeline, revision, objects). The workflow's
//! URL is the credential: give it through the step's `secrets`.

use moor_plugin_sdk::{Event, Info, Notifier, Severity, export_notifier};
use serde::Deserialize;
use serde_json::{Value, json};

/// The step's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The workflow webhook's URL (a secret).
    pub url: String,
}

/// At most this many objects are listed in a card.
const MAX_OBJECTS: usize = 10;

pub struct Plugin;

impl Notifier for Plugin {
    type Config = Config;

    fn info() -> Info {
        Info::new("msteams", env!("CARGO_PKG_VERSION"))
            .description("Posts one Adaptive Card per run to a Microsoft Teams workflow webhook")
            .schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["url"],
                "properties": {"url": {"type": "string", "pattern": "^https?://"}}
            }))
    }

    fn notify(config: Config, events: Vec<Event>) -> Result<(), String> {
        let Some(message) = message(&events) else { return Ok(()) };
        moor_plugin_sdk::http::post_json(&config.url, &[], &message)
    }
}

export_notifier!(Plugin);

/// The workflow webhook's message: one Adaptive Card (version 1.4) as an attachment.
pub fn message(events: &[Event]) -> Option<Value> {
    let lead = moor_plugin_sdk::events::worst(events)?;
    let color = match lead.severity {
        Severity::Info => "Good",
        Severity::Warning => "Warning",
        Severity::Error => "Attention",
    };
    let mut body = vec![json!({
        "type": "TextBlock", "size": "Medium", "weight": "Bolder", "color": color, "wrap": true,
        "text": format!("{}: {}", lead.pipeline, lead.reason.as_str()),
    })];
    body.extend(events.iter().map(|e| json!({"type": "TextBlock", "wrap": true, "text": e.message})));
    let mut facts = vec![
        json!({"title": "Pipeline", "value": lead.pipeline}),
        json!({"title": "Revision", "value": lead.revision}),
        json!({"title": "Time", "value": lead.timestamp}),
    ];
    if let Some(line) = moor_plugin_sdk::events::objects_line(events, MAX_OBJECTS, str::to_owned) {
        facts.push(json!({"title": "Objects", "value": line}));
    }
    body.push(json!({"type": "FactSet", "facts": facts}));
    Some(json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_plugin_sdk::EventReason;

    fn event(reason: EventReason, severity: Severity, message: &str) -> Event {
        Event {
            pipeline: "web".into(),
            reason,
            severity,
            revision: "abc1234".into(),
            message: message.into(),
            objects: Vec::new(),
            timestamp: "2026-12-02T18:00:00Z".into(),
        }
    }

    #[test]
    fn a_run_is_one_adaptive_card() {
        let events = [
            event(EventReason::DriftCorrected, Severity::Warning, "drift corrected: 1 object(s) put back"),
            event(EventReason::RunSucceeded, Severity::Info, "applied abc1234"),
        ];
        let m = message(&events).unwrap();
        assert_eq!(m["type"], "message");
        let attachment = &m["attachments"][0];
        assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &attachment["content"];
        assert_eq!((card["type"].as_str(), card["version"].as_str()), (Some("AdaptiveCard"), Some("1.4")));
        let body = card["body"].as_array().unwrap();
        assert_eq!(body[0]["text"], "web: drift-corrected");
        assert_eq!(body[0]["color"], "Warning");
        assert_eq!(body.len(), 4, "title, two events, facts");
        assert_eq!(body[3]["facts"][1], json!({"title": "Revision", "value": "abc1234"}));
        assert!(message(&[]).is_none());
    }
}
