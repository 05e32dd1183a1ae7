//! Controller mode's HTTP side, on axum: the status page, the JSON API, the webhook
//! receiver, `/metrics`, `/healthz` and `/readyz`.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | status page (server-rendered HTML) |
//! | `GET /api/v1/status` | the same data as JSON |
//! | `GET /?tenant=team-a`, `GET /api/v1/status?tenant=team-a` | one tenant's pipelines (`tenant=`: the platform's own) |
//! | `GET /api/v1/pipelines/{name}` | one pipeline |
//! | `POST /api/v1/pipelines/{name}/{reconcile,suspend,resume}` | bearer token |
//! | `POST /ui/pipelines/{name}/reconcile` | the page's force-run form (token field) |
//! | `POST /hooks/{name}` | GitHub-style `X-Hub-Signature-256` HMAC-SHA256 |
//!
//! A tenant's pipeline is named `{tenant}/{name}` in each route (`/api/v1/pipelines/team-a/web`).
//!
//! The server's limits on slow and large requests and on connections are in [`serve`].
//! The page may not be framed, and its form refuses requests from other sites.

mod page;
pub mod serve;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};
use serde_json::json;

use crate::schedule::{Controller, RequestError, Trigger, Triggered};

type Shared = State<Arc<Controller>>;

/// The routes, around a running controller.
pub fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/api/v1/status", get(status_json))
        .route("/api/v1/pipelines/{name}", get(pipeline_json))
        .route("/api/v1/pipelines/{tenant}/{name}", get(pipeline_json))
        .route("/api/v1/pipelines/{name}/reconcile", post(api_reconcile))
        .route("/api/v1/pipelines/{tenant}/{name}/reconcile", post(api_reconcile))
        .route("/api/v1/pipelines/{name}/suspend", post(api_suspend))
        .route("/api/v1/pipelines/{tenant}/{name}/suspend", post(api_suspend))
        .route("/api/v1/pipelines/{name}/resume", post(api_resume))
        .route("/api/v1/pipelines/{tenant}/{name}/resume", post(api_resume))
        .route("/ui/pipelines/{name}/reconcile", post(ui_reconcile))
        .route("/ui/pipelines/{tenant}/{name}/reconcile", post(ui_reconcile))
        .route("/hooks/{name}", post(webhook))
        .route("/hooks/{tenant}/{name}", post(webhook))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(controller)
}

/// A pipeline's name in a route: `{name}`, or `{tenant}/{name}` for a tenant's.
struct Named(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Named {
    type Rejection = <Path<Vec<(String, String)>> as axum::extract::FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        Ok(Named(params.into_iter().map(|(_, value)| value).collect::<Vec<_>>().join("/")))
    }
}

/// Serves until `stop` resolves; requests in flight are finished first.
pub async fn serve(
    controller: Arc<Controller>,
    listener: tokio::net::TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "serving the status page, API, webhooks and metrics");
    serve::serve(router(controller), listener, serve::Limits::default(), stop).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// The page, which no other site may frame (the force-run form would be clickjacked).
async fn status_page(State(c): Shared, Query(filter): Query<Filter>) -> Response {
    let headers = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (headers, Html(page::render(&filter.apply(c.status())))).into_response()
}

/// `?tenant=team-a`: only that tenant's pipelines; `?tenant=` only the platform's own.
#[derive(serde::Deserialize)]
struct Filter {
    tenant: Option<String>,
}

impl Filter {
    fn apply(self, mut status: crate::schedule::status::Status) -> crate::schedule::status::Status {
        if let Some(tenant) = self.tenant {
            status.only_tenant(&tenant);
        }
        status
    }
}

async fn status_json(State(c): Shared, Query(filter): Query<Filter>) -> Response {
    axum::Json(filter.apply(c.status())).into_response()
}

async fn pipeline_json(State(c): Shared, Named(name): Named) -> Response {
    match c.status().pipelines.into_iter().find(|p| p.name == name) {
        Some(p) => axum::Json(p).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no pipeline is named `{name}`")),
    }
}

async fn metrics(State(c): Shared) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], c.metrics.encode())
        .into_response()
}

async fn readyz(State(c): Shared) -> Response {
    if c.is_ready() { "ready".into_response() } else { (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response() }
}

/// Checks a token against `[moor] api_token`.
async fn authorize(c: &Controller, given: Option<&str>) -> Result<(), Response> {
    let settings = c.config().settings.clone();
    let Some(reference) = &settings.api_token else {
        return Err(error(StatusCode::FORBIDDEN, "no `[moor] api_token` is configured: manual operations are off"));
    };
    let token = crate::secrets::read_one(Some(&c.target.client), reference, &settings.namespace)
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, format!("the API token cannot be read: {e}")))?;
    match given {
        Some(given) if !token.is_empty() && same_token(given, &token) => Ok(()),
        Some(_) => Err(error(StatusCode::UNAUTHORIZED, "wrong token")),
        None => Err(error(StatusCode::UNAUTHORIZED, "a bearer token is needed")),
    }
}

/// Compares in constant time, lengths included: the digests of both are compared.
fn same_token(given: &str, token: &str) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    bool::from(sha2::Sha256::digest(given).ct_eq(&sha2::Sha256::digest(token)))
}

/// Whether a browser sent the request from the page itself (OWASP's check of standard
/// headers): `Sec-Fetch-Site` is `same-origin` or `none` when a browser sends it, else the
/// `Origin` names this host. Requests from other clients carry neither and pass; the token
/// still guards them.
fn same_site(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (value(header::ORIGIN.as_str()), value(header::HOST.as_str())) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

fn triggered(name: &str, result: Result<Triggered, RequestError>) -> Response {
    match result {
        Ok(t) => (StatusCode::ACCEPTED, axum::Json(json!({ "pipeline": name, "result": t }))).into_response(),
        Err(e) => refused(e),
    }
}

/// 404 for a pipeline that does not exist, 409 for one that cannot run now.
fn refused(e: RequestError) -> Response {
    let code = match e {
        RequestError::NoSuchPipeline(_) => StatusCode::NOT_FOUND,
        RequestError::Suspended(_) => StatusCode::CONFLICT,
    };
    error(code, e.to_string())
}

async fn api_reconcile(State(c): Shared, Named(name): Named, headers: HeaderMap) -> Response {
    if let Err(denied) = authorize(&c, bearer(&headers)).await {
        return denied;
    }
    triggered(&name, c.trigger(&name, Trigger::Manual))
}

async fn api_suspend(State(c): Shared, Named(name): Named, headers: HeaderMap) -> Response {
    set_suspended(c, name, headers, true).await
}

async fn api_resume(State(c): Shared, Named(name): Named, headers: HeaderMap) -> Response {
    set_suspended(c, name, headers, false).await
}

async fn set_suspended(c: Arc<Controller>, name: String, headers: HeaderMap, suspended: bool) -> Response {
    if let Err(denied) = authorize(&c, bearer(&headers)).await {
        return denied;
    }
    match c.set_suspended(&name, suspended) {
        Ok(()) => axum::Json(json!({ "pipeline": name, "suspended": suspended })).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(serde::Deserialize)]
struct ForceRun {
    token: String,
}

/// The status page's force-run button.
async fn ui_reconcile(
    State(c): Shared,
    Named(name): Named,
    headers: HeaderMap,
    Form(form): Form<ForceRun>,
) -> Response {
    if !same_site(&headers) {
        return error(StatusCode::FORBIDDEN, "a cross-site request: the form works from the status page only");
    }
    if let Err(denied) = authorize(&c, Some(form.token.as_str())).await {
        return denied;
    }
    match c.trigger(&name, Trigger::Manual) {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => refused(e),
    }
}

/// `POST /hooks/<pipeline>`: GitHub's format, `X-Hub-Signature-256: sha256=<hex HMAC of the body>`.
async fn webhook(State(c): Shared, Named(name): Named, headers: HeaderMap, body: Bytes) -> Response {
    let Some(reference) = c.webhook_secret(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no pipeline is named `{name}`"));
    };
    let Some(reference) = reference else {
        return error(StatusCode::NOT_FOUND, format!("pipeline `{name}` has no `webhook_secret`: no webhook"));
    };
    let namespace = c.config().settings.namespace.clone();
    let secret = match crate::secrets::read_one(Some(&c.target.client), &reference, &namespace).await {
        Ok(secret) if !secret.is_empty() => secret,
        Ok(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "the webhook secret is empty"),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("the webhook secret cannot be read: {e}")),
    };
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if let Err(why) = verify_signature(secret.as_bytes(), &body, signature) {
        tracing::warn!(pipeline = name, "webhook rejected: {why}");
        return error(StatusCode::UNAUTHORIZED, why);
    }
    if headers.get("x-github-event").and_then(|v| v.to_str().ok()) == Some("ping") {
        return axum::Json(json!({ "pipeline": name, "result": "pong" })).into_response();
    }
    triggered(&name, c.trigger(&name, Trigger::Webhook))
}

/// Checks a `sha256=<hex>` signature of `body` made with `secret`, in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], signature: Option<&str>) -> Result<(), &'static str> {
    let signature = signature.ok_or("the request is not signed (no X-Hub-Signature-256 header)")?;
    let hex_digest = signature.strip_prefix("sha256=").ok_or("the signature is not `sha256=<hex>`")?;
    let expected = hex::decode(hex_digest).map_err(|_| "the signature is not hexadecimal")?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|_| "unusable secret")?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| "the signature does not match")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature header value for `body`, as GitHub makes it.
    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_like_github_does() {
        // The example of GitHub's documentation on validating webhook deliveries.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(b"It's a Secret to Everybody", b"Hello, World!"), header);
        assert!(verify_signature(b"It's a Secret to Everybody", b"Hello, World!", Some(header)).is_ok());
        assert!(verify_signature(b"another secret", b"Hello, World!", Some(header)).is_err());
        assert!(verify_signature(b"It's a Secret to Everybody", b"Hello, World?", Some(header)).is_err());
        assert!(verify_signature(b"x", b"", None).unwrap_err().contains("not signed"));
        assert!(verify_signature(b"x", b"", Some("sha1=00")).is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cre", "s3cret"));
        assert!(!same_token("s3cret-and-more", "s3cret"));
        assert!(!same_token("", "s3cret"));
    }

    #[test]
    fn the_form_refuses_other_sites() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, header::HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(same_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(!same_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_site(&headers(&[("sec-fetch-site", "same-site"), ("origin", "http://moor:8080")])));
        assert!(same_site(&headers(&[("origin", "http://moor:8080"), ("host", "moor:8080")])));
        assert!(!same_site(&headers(&[("origin", "https://evil.example"), ("host", "moor:8080")])));
        assert!(!same_site(&headers(&[("origin", "null"), ("host", "moor:8080")])));
        // curl and scripts: no browser headers; the token alone decides.
        assert!(same_site(&headers(&[("host", "moor:8080")])));
    }
}
