//! wasi:http for plugins, behind an allow-list of hosts.
//!
//! Every plugin links wasi:http, but a call may only reach the hosts its pipeline step
//! lists in `allow_hosts` (only notify steps may list any). Any other request fails with
//! `HTTP-request-denied` before a connection is made.

use std::time::Duration;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::CallState;

/// The hosts one call may reach, and how long a request may take.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// `host` (any port) or `host:port`.
    pub hosts: Vec<String>,
    pub timeout: Duration,
}

impl Grant {
    pub fn none() -> Grant {
        Grant { hosts: Vec::new(), timeout: Duration::ZERO }
    }

    /// Whether `host` at `port` is on the list.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|allowed| match allowed.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h.eq_ignore_ascii_case(host) && p.parse() == Ok(port),
            _ => allowed.eq_ignore_ascii_case(host),
        })
    }
}

type SendResult =
    wasmtime_wasi_http::Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>)>;

impl WasiHttpHooks for Grant {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        _ = fut;
        let uri = request.uri();
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if !self.allows(&host, port) {
            tracing::warn!(host, port, "plugin request denied: host is not in the step's allow_hosts");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        // The plugin's own time limit bounds the request too.
        let limit = Some(self.timeout);
        let options = RequestOptions {
            connect_timeout: options.and_then(|o| o.connect_timeout).or(limit),
            first_byte_timeout: options.and_then(|o| o.first_byte_timeout).or(limit),
            between_bytes_timeout: options.and_then(|o| o.between_bytes_timeout).or(limit),
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { hooks: &mut self.http_grant, table: &mut self.table, ctx: &mut self.http }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_or_without_a_port() {
        let grant = Grant { hosts: vec!["hooks.example.com".into(), "127.0.0.1:8080".into()], timeout: Duration::ZERO };
        assert!(grant.allows("hooks.example.com", 443));
        assert!(grant.allows("HOOKS.example.com", 80));
        assert!(grant.allows("127.0.0.1", 8080));
        assert!(!grant.allows("127.0.0.1", 8081));
        assert!(!grant.allows("example.com", 443));
        assert!(!Grant::none().allows("localhost", 80));
    }
}
