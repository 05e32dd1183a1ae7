//! `webhook`: Moor's standard notifier. Posts the events of a run as one JSON document
//! (`{"events": [...]}`, or the step's `body` template) to a URL through wasi:http. The
//! host lets the request out only to hosts listed in the step's `allow_hosts`.

use std::collections::BTreeMap;

use moor_plugin_sdk::{Event, Info, Notifier, export_notifier};
use serde::Deserialize;

/// The step's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra request headers (an `authorization` header can come from the step's `secrets`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Only events at least this severe: `info` (default), `warning` or `error`.
    #[serde(default)]
    pub min_severity: Option<String>,
    /// The body instead of `{"events": [...]}`: any JSON value whose strings may hold
    /// `{pipeline}`, `{reason}`, `{severity}`, `{revision}`, `{message}` (of the run's most
    /// severe event) and `{summary}` (every event's message, one per line).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

pub struct Plugin;

impl Notifier for Plugin {
    type Config = Config;

    fn info() -> Info {
        Info::new("webhook", env!("CARGO_PKG_VERSION"))
            .description("Posts events as JSON to a URL (wasi:http, allow-listed hosts only)")
            .schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "pattern": "^https?://"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "min_severity": {"enum": ["info", "warning", "error"]},
                    "body": {}
                }
            }))
    }

    fn notify(config: Config, events: Vec<Event>) -> Result<(), String> {
        let floor = rank_name(config.min_severity.as_deref().unwrap_or("info"));
        let events: Vec<Event> = events.into_iter().filter(|e| e.severity.rank() >= floor).collect();
        if events.is_empty() {
            return Ok(());
        }
        let body = match &config.body {
            Some(template) => fill(template, &events),
            None => serde_json::json!({ "events": events.iter().map(to_json).collect::<Vec<_>>() }),
        };
        let headers: Vec<(String, String)> = config.headers.into_iter().collect();
        moor_plugin_sdk::http::post_json(&config.url, &headers, &body)
    }
}

/// The `body` template with its placeholders filled, in every string of it.
fn fill(template: &serde_json::Value, events: &[Event]) -> serde_json::Value {
    use serde_json::Value;
    let Some(lead) = moor_plugin_sdk::events::worst(events) else { return template.clone() };
    let summary: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    let fill_str = |s: &str| {
        s.replace("{pipeline}", &lead.pipeline)
            .replace("{reason}", lead.reason.as_str())
            .replace("{severity}", lead.severity.as_str())
            .replace("{revision}", &lead.revision)
            .replace("{message}", &lead.message)
            .replace("{summary}", &summary.join("\n"))
    };
    match template {
        Value::String(s) => Value::String(fill_str(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, events)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), fill(v, events))).collect()),
        other => other.clone(),
    }
}

fn rank_name(name: &str) -> u8 {
    match name {
        "warning" => 1,
        "error" => 2,
        _ => 0,
    }
}

fn to_json(e: &Event) -> serde_json::Value {
    let objects: Vec<serde_json::Value> = e
        .objects
        .iter()
        .map(|o| {
            serde_json::json!({
                "apiVersion": o.api_version, "kind": o.kind, "namespace": o.namespace, "name": o.name
            })
        })
        .collect();
    serde_json::json!({
        "pipeline": e.pipeline,
        "reason": e.reason.as_str(),
        "severity": e.severity.as_str(),
        "revision": e.revision,
        "message": e.message,
        "objects": objects,
        "timestamp": e.timestamp,
    })
}

export_notifier!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use moor_plugin_sdk::{EventReason, Severity};

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
    fn a_body_template_gets_the_runs_values_in_its_strings() {
        let events = [
            event(EventReason::Pruned, Severity::Info, "pruned 2 object(s)"),
            event(EventReason::HealthFailed, Severity::Error, "Deployment/web not ready"),
        ];
        let template = serde_json::json!({"text": "{pipeline} {reason}: {message}", "n": 1, "all": ["{summary}"]});
        let body = fill(&template, &events);
        assert_eq!(body["text"], "web health-failed: Deployment/web not ready");
        assert_eq!(body["n"], 1);
        assert_eq!(body["all"][0], "pruned 2 object(s)\nDeployment/web not ready");
    }
}
