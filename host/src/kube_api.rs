//! Small helpers around kube's API and its errors: a leaf that the apply engine, the
//! secrets reader and the controller share (it depends on nothing of moor's but the
//! object key).

use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;

use crate::object::ObjKey;

/// The API of `resource` in `namespace` (all namespaces, or cluster-scoped, when empty).
pub fn api_for(client: &kube::Client, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
    if namespace.is_empty() {
        Api::all_with(client.clone(), resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, resource)
    }
}

/// A server-side apply of `value` through `api`, and whether it created the object: the
/// apiserver answers 201 to an apply that creates, 200 to one that updates (kube's `patch`
/// keeps the object and drops the status). This spares a GET per object that may be new.
pub async fn apply_telling_created(
    api: &Api<DynamicObject>,
    name: &str,
    pp: &kube::api::PatchParams,
    value: &serde_json::Value,
) -> Result<(bool, DynamicObject), kube::Error> {
    use http_body_util::BodyExt;
    let request = kube::core::Request::new(api.resource_url())
        .patch(name, pp, &kube::api::Patch::Apply(value))
        .map_err(kube::Error::BuildRequest)?;
    let response = api.clone().into_client().send(request.map(kube::client::Body::from)).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status.is_client_error() || status.is_server_error() {
        // As kube reads an error: the apiserver's `Status`, else the text with the code.
        let text = String::from_utf8_lossy(&body);
        let error = serde_json::from_slice::<kube::core::Status>(&body)
            .unwrap_or_else(|_| kube::core::Status::failure(text.trim(), "").with_code(status.as_u16()));
        return Err(kube::Error::Api(error.boxed()));
    }
    let object = serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
    Ok((status == http::StatusCode::CREATED, object))
}

/// The key of a live object of `resource` (listed and watched objects carry no type).
pub fn key_of(resource: &ApiResource, object: &DynamicObject) -> ObjKey {
    ObjKey {
        group: resource.group.clone(),
        version: resource.version.clone(),
        kind: resource.kind.clone(),
        namespace: object.metadata.namespace.clone().unwrap_or_default(),
        name: object.metadata.name.clone().unwrap_or_default(),
    }
}

/// The server's message for an API error; the error and its causes otherwise (the
/// connection refused, the certificate not trusted).
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => crate::causes::causes(other),
    }
}

/// The HTTP status of an API error.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// What apimachinery's validation says of a change to an immutable field
/// (`apimachineryvalidation.FieldImmutableErrorMsg`), in the detail of a
/// `FieldValueInvalid` cause (a Job's template, a Service's `clusterIP`) or of a
/// `FieldValueForbidden` one (an `immutable: true` ConfigMap's `data`: "field is immutable
/// when `immutable` is set").
const FIELD_IMMUTABLE: &str = "field is immutable";

/// The server refused a change to an immutable field: an `Invalid` (422) status one of
/// whose causes is an invalid or forbidden value of an immutable field.
pub fn is_immutable(e: &kube::Error) -> bool {
    let kube::Error::Api(status) = e else { return false };
    let causes = status.details.iter().flat_map(|d| &d.causes);
    status.code == 422
        && status.reason == "Invalid"
        && causes.into_iter().any(|c| {
            matches!(c.reason.as_str(), "FieldValueInvalid" | "FieldValueForbidden")
                && c.message.contains(FIELD_IMMUTABLE)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, causes: serde_json::Value) -> kube::Error {
        let status = serde_json::json!({
            "status": "Failure", "message": "Job.batch \"m\" is invalid: spec.template: Invalid value: ...: field is immutable",
            "reason": reason, "code": code, "details": { "name": "m", "kind": "jobs", "causes": causes },
        });
        kube::Error::Api(serde_json::from_value::<kube::core::Status>(status).unwrap().boxed())
    }

    #[test]
    fn immutability_is_read_from_the_status_causes() {
        let immutable = serde_json::json!([{ "reason": "FieldValueInvalid", "message": "Invalid value: {}: field is immutable", "field": "spec.template" }]);
        assert!(is_immutable(&status(422, "Invalid", immutable.clone())));
        let frozen = serde_json::json!([{ "reason": "FieldValueForbidden", "message": "Forbidden: field is immutable when `immutable` is set", "field": "data" }]);
        assert!(is_immutable(&status(422, "Invalid", frozen)));
        // The same words in the message, but another cause or status: not immutability.
        let required =
            serde_json::json!([{ "reason": "FieldValueRequired", "message": "Required value", "field": "spec.x" }]);
        assert!(!is_immutable(&status(422, "Invalid", required)));
        assert!(!is_immutable(&status(409, "Conflict", immutable)));
    }
}
