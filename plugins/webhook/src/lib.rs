//! `webhook`: Moor's standard notifier. Posts the events of a run as one JSON document
//! (`{"events": [...]}`) to a URL through wasi:http. The host lets the request out only
//! to hosts listed in the step's `allow_hosts`.

use std::collections::BTreeMap;

use moor_plugin_sdk::{Event, EventReason, Info, Notifier, Severity, export_notifier};
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
                    "min_severity": {"enum": ["info", "warning", "error"]}
                }
            }))
    }

    fn notify(config: Config, events: Vec<Event>) -> Result<(), String> {
        let floor = rank_name(config.min_severity.as_deref().unwrap_or("info"));
        let events: Vec<serde_json::Value> = events.iter().filter(|e| rank(e.severity) >= floor).map(to_json).collect();
        if events.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&serde_json::json!({ "events": events })).map_err(|e| e.to_string())?;
        let target = Target::parse(&config.url)?;
        post(&target, &config.headers, &body)
    }
}

fn rank(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Error => 2,
    }
}

fn rank_name(name: &str) -> u8 {
    match name {
        "warning" => 1,
        "error" => 2,
        _ => 0,
    }
}

fn reason(reason: EventReason) -> &'static str {
    match reason {
        EventReason::RunSucceeded => "run-succeeded",
        EventReason::RunFailed => "run-failed",
        EventReason::DriftCorrected => "drift-corrected",
        EventReason::HealthFailed => "health-failed",
        EventReason::Pruned => "pruned",
    }
}

fn to_json(e: &Event) -> serde_json::Value {
    let severity = ["info", "warning", "error"][rank(e.severity) as usize];
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
        "reason": reason(e.reason),
        "severity": severity,
        "revision": e.revision,
        "message": e.message,
        "objects": objects,
        "timestamp": e.timestamp,
    })
}

/// The parts of a URL a wasi:http request needs.
#[derive(Debug, PartialEq)]
struct Target {
    https: bool,
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("`{url}` has no usable host"));
        }
        Ok(Target { https, authority: authority.into(), path: path.into() })
    }
}

#[cfg(target_arch = "wasm32")]
fn post(target: &Target, headers: &BTreeMap<String, String>, body: &[u8]) -> Result<(), String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        // A length, not a chunked body: some receivers take nothing else.
        ("content-length".into(), body.len().to_string().into_bytes()),
    ];
    fields.extend(headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())));
    let fields = Fields::from_list(&fields).map_err(|e| format!("invalid header: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let invalid = |what: &str| format!("invalid {what} in the URL");
    request.set_method(&Method::Post).map_err(|_| invalid("method"))?;
    request
        .set_scheme(Some(if target.https { &Scheme::Https } else { &Scheme::Http }))
        .map_err(|_| invalid("scheme"))?;
    request.set_authority(Some(&target.authority)).map_err(|_| invalid("host"))?;
    request.set_path_with_query(Some(&target.path)).map_err(|_| invalid("path"))?;
    let outgoing = request.body().map_err(|_| "cannot open the request body".to_string())?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("request refused: {e}"))?;
    let sent = (|| {
        let stream = outgoing.write().map_err(|_| "cannot write the request body".to_string())?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("cannot send the body: {e:?}"))?;
        }
        drop(stream);
        OutgoingBody::finish(outgoing, None).map_err(|e| format!("cannot finish the body: {e}"))
    })();
    // The response (or why there is none) explains a failed write better than the write.
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(wasip2::http::types::ErrorCode::HttpRequestDenied))) => {
            return Err(format!("POST {}: denied by the host (not in the step's allow_hosts)", target.authority));
        }
        Some(Ok(Err(e))) => return Err(format!("POST {}: {e:?}", target.authority)),
        _ => return Err(format!("POST {}: no response", target.authority)),
    };
    sent?;
    match response.status() {
        200..300 => Ok(()),
        // Not the path: webhook URLs often carry their token there.
        status => Err(format!("POST {} answered {status}", target.authority)),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn post(_: &Target, _: &BTreeMap<String, String>, _: &[u8]) -> Result<(), String> {
    Err("the webhook notifier only posts from inside the wasm sandbox".into())
}

export_notifier!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let t = Target::parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!(t, Target { https: false, authority: "127.0.0.1:9000".into(), path: "/hook?x=1".into() });
        assert_eq!(Target::parse("https://hooks.example.com").unwrap().path, "/");
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("http://user@host/").is_err());
    }
}
