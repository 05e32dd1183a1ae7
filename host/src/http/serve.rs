//! Serving a router over HTTP/1.1 with limits on what one client may take (#16): hyper
//! configured directly, since `axum::serve` sets no header-read timeout and no header or
//! connection limit.
//!
//! - headers must arrive within [`Limits::header_timeout`] (slow clients, and idle
//!   kept-alive connections, are closed) and fit in [`Limits::header_bytes`] (else 431);
//! - a request has [`Limits::request_timeout`] from its headers to its response, body
//!   read included (else 408), and a body of at most [`Limits::body_bytes`] (else 413);
//! - at most [`Limits::connections`] are served at once; more wait in the listen backlog
//!   until one closes.
//!
//! On `stop`, the listener closes and connections finish their requests in flight, for at
//! most [`DRAIN`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What one client may take of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub header_bytes: usize,
    pub body_bytes: usize,
}

impl Default for Limits {
    /// Ample for probes, browsers, Prometheus and webhook senders (GitHub's payloads are
    /// at most 25 MiB, push events of a few commits far less).
    fn default() -> Self {
        Limits {
            connections: 256,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            header_bytes: 16 * 1024,
            body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// How long requests in flight may finish after `stop`.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` within `limits` until `stop` resolves.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(axum::extract::DefaultBodyLimit::max(limits.body_bytes)).layer(
        tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout),
    );
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper answers 431 when the headers do not fit its read buffer (8 KiB at least).
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.header_bytes.max(8192));
    let slots = Arc::new(Semaphore::new(limits.connections));
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: wait rather than spin.
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("http connection: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {}s: closing their connections", DRAIN.as_secs());
    }
    Ok(())
}
