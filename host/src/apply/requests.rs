//! Requests moor sends to the apiserver, counted by verb as the apiserver names them
//! (`get`, `list`, `watch`, `patch`, …): `moor_kube_requests_total` in controller mode,
//! the client-side view of `apiserver_request_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: &'static str,
}

/// The counters, shared by every client of a run (remote clusters' too).
pub type Requests = Family<VerbLabels, Counter>;

/// A client made from `config` that counts its requests into `requests`.
pub fn counted_client(config: kube::Config, requests: &Requests) -> Result<kube::Client, kube::Error> {
    let requests = requests.clone();
    let layer = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
        let verb = verb_of(request.method(), request.uri());
        tracing::trace!(verb, uri = %request.uri(), "kube request");
        requests.get_or_create(&VerbLabels { verb }).inc();
        request
    });
    Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(&layer).build())
}

/// The apiserver's verb for a request: a GET of a collection is a `list` (a `watch` with
/// `watch=true`), of a named object a `get`; discovery and `/version` are `get`.
pub fn verb_of(method: &http::Method, uri: &http::Uri) -> &'static str {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // After `/api/v1` or `/apis/<group>/<version>`, and `namespaces/<ns>` when namespaced.
    let rest: &[&str] = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _, more @ ..] if !more.is_empty() => more,
        other => other,
    };
    let collection = rest.len() == 1;
    let watch = uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match *method {
        http::Method::GET if collection && watch => "watch",
        http::Method::GET if collection => "list",
        http::Method::GET | http::Method::HEAD => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if collection => "deletecollection",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn verbs_as_the_apiserver_names_them() {
        let verb = |m: Method, uri: &str| verb_of(&m, &uri.parse().unwrap());
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/web/configmaps/moor-web"), "get");
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/web/configmaps?labelSelector=a%3Db"), "list");
        assert_eq!(verb(Method::GET, "/api/v1/configmaps?labelSelector=a"), "list");
        assert_eq!(verb(Method::GET, "/apis/apps/v1/deployments?watch=true&resourceVersion=1"), "watch");
        assert_eq!(verb(Method::GET, "/apis/apps/v1/namespaces/web/deployments/api"), "get");
        assert_eq!(verb(Method::GET, "/api/v1/namespaces"), "list");
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/web"), "get");
        assert_eq!(verb(Method::GET, "/apis/rbac.authorization.k8s.io/v1/clusterroles/view"), "get");
        assert_eq!(verb(Method::GET, "/apis"), "get");
        assert_eq!(verb(Method::GET, "/version"), "get");
        assert_eq!(verb(Method::PATCH, "/api/v1/namespaces/web/configmaps/a?fieldManager=moor"), "patch");
        assert_eq!(verb(Method::PATCH, "/apis/apps/v1/namespaces/web/deployments/api/status"), "patch");
        assert_eq!(verb(Method::POST, "/api/v1/namespaces/web/events"), "create");
        assert_eq!(verb(Method::DELETE, "/api/v1/namespaces/web/configmaps/a"), "delete");
        assert_eq!(verb(Method::DELETE, "/api/v1/namespaces/web/configmaps"), "deletecollection");
    }
}
