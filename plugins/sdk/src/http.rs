//! Outgoing HTTP for notifiers, over wasi:http: one request with a body, and its status.
//! The host lets a request out only to a host in the step's `allow_hosts`; any other is
//! refused before a connection is made. Errors name the method and the host, never the
//! path or the query (webhook URLs carry their tokens there).

/// The parts of a URL a wasi:http request needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub authority: String,
    pub path: String,
}

impl Target {
    /// An `http://` or `https://` URL without user info.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("the URL is not http:// or https://".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err("the URL has no usable host".into());
        }
        Ok(Target { https, authority: authority.into(), path: path.into() })
    }
}

/// POSTs `body` as JSON to `url` with `headers`; Ok on a 2xx answer.
pub fn post_json(url: &str, headers: &[(String, String)], body: &serde_json::Value) -> Result<(), String> {
    let target = Target::parse(url)?;
    let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    match send(&target, headers, &body)? {
        200..300 => Ok(()),
        status => Err(format!("POST {} answered {status}", target.authority)),
    }
}

#[cfg(target_arch = "wasm32")]
fn send(target: &Target, headers: &[(String, String)], body: &[u8]) -> Result<u16, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

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
        Some(Ok(Err(ErrorCode::HttpRequestDenied))) => {
            return Err(format!("POST {}: denied by the host (not in the step's allow_hosts)", target.authority));
        }
        Some(Ok(Err(e))) => return Err(format!("POST {}: {e:?}", target.authority)),
        _ => return Err(format!("POST {}: no response", target.authority)),
    };
    sent?;
    Ok(response.status())
}

#[cfg(not(target_arch = "wasm32"))]
fn send(_: &Target, _: &[(String, String)], _: &[u8]) -> Result<u16, String> {
    Err("notifiers only send from inside the wasm sandbox".into())
}

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
        assert!(!Target::parse("ftp://secret-token").unwrap_err().contains("secret-token"));
    }
}
