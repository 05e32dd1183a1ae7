//! Deciding locally whether a live object already carries what we would apply.
//!
//! `covers(live, desired)` holds when every field set in `desired` has the same value in
//! `live`. Fields only in `live` (defaults, status, fields other managers own, such as the
//! replicas an autoscaler sets) do not matter. Lists are compared element by element, and
//! lists of named items (containers, ports, env) by name. When this says "no", the server
//! has the last word (a dry-run apply): a value may be written differently (`0.1` CPU is
//! `100m`) yet be the same.

use serde_json::Value;

/// Whether `live` holds every field of `desired` with the same value.
pub fn covers(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => covers(lv, dv),
            // An empty value in desired matches an absent one in live (the server drops them).
            None => is_empty(dv),
        }),
        (Value::Array(l), Value::Array(d)) => {
            if let (Some(names), true) = (names_of(d), l.len() >= d.len()) {
                names.iter().zip(d).all(|(name, dv)| {
                    l.iter()
                        .find(|lv| lv.get("name").and_then(Value::as_str) == Some(name))
                        .is_some_and(|lv| covers(lv, dv))
                }) && l.len() == d.len()
            } else {
                l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| covers(lv, dv))
            }
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        (l, d) => l == d,
    }
}

/// `desired` as the server stores it, where that differs from what is applied: a Secret's
/// `stringData` becomes base64 `data` (a `stringData` key wins over the same `data` key,
/// as on the server). Without this, a Secret never looks unchanged and every run asks the
/// server again.
pub fn stored(desired: &Value) -> std::borrow::Cow<'_, Value> {
    let is_secret = desired.get("kind").and_then(Value::as_str) == Some("Secret");
    let Some(Value::Object(strings)) = desired.get("stringData").filter(|_| is_secret) else {
        return std::borrow::Cow::Borrowed(desired);
    };
    let mut value = desired.clone();
    let fields = value.as_object_mut().expect("an object has fields");
    fields.remove("stringData");
    let data = fields.entry("data").or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(data) = data {
        for (k, v) in strings {
            let bytes = v.as_str().unwrap_or_default().as_bytes().to_vec();
            data.insert(k.clone(), serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap_or_default());
        }
    }
    std::borrow::Cow::Owned(value)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The `name` of every element, when every element is an object with one.
fn names_of(list: &[Value]) -> Option<Vec<&str>> {
    list.iter().map(|v| v.get("name").and_then(Value::as_str)).collect()
}

/// The parts of a live object worth showing in a diff: no status, no server-managed
/// metadata.
pub fn for_display(mut value: Value) -> Value {
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"] {
                meta.remove(key);
            }
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
                annotations.remove("deployment.kubernetes.io/revision");
                if annotations.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_with_string_data_covers_what_the_server_stores() {
        let desired = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eQ=="},
                             "stringData": {"b": "two", "c": "three"}});
        let live = json!({"kind": "Secret", "metadata": {"name": "s", "uid": "u"},
                          "data": {"a": "eA==", "b": "dHdv", "c": "dGhyZWU="}, "type": "Opaque"});
        assert!(!covers(&live, &desired), "stringData is never stored as such");
        assert!(covers(&live, &stored(&desired)));
        let changed = json!({"kind": "Secret", "data": {"a": "eA==", "b": "dHdv", "c": "b3RoZXI="}});
        assert!(!covers(&changed, &stored(&desired)), "a changed value is still a change");
        let cm = json!({"kind": "ConfigMap", "stringData": {"x": "y"}});
        assert_eq!(*stored(&cm), cm, "only Secrets");
    }

    #[test]
    fn defaults_and_foreign_fields_do_not_count() {
        let desired = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let live = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [
            {"name": "a", "image": "x", "imagePullPolicy": "IfNotPresent"}
        ]}}}, "status": {}});
        assert!(covers(&live, &desired));
    }

    #[test]
    fn a_changed_or_missing_field_counts() {
        let desired = json!({"data": {"a": "1", "b": "2"}});
        assert!(!covers(&json!({"data": {"a": "1", "b": "3"}}), &desired));
        assert!(!covers(&json!({"data": {"a": "1"}}), &desired));
        let containers = json!({"c": [{"name": "a"}, {"name": "b"}]});
        assert!(!covers(&json!({"c": [{"name": "a"}]}), &containers));
        assert!(covers(&json!({"c": [{"name": "b"}, {"name": "a"}]}), &containers));
        assert!(!covers(&json!({"c": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}), &containers));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(covers(&json!({"n": 1.0}), &json!({"n": 1})));
        assert!(covers(&json!({}), &json!({"labels": {}})));
    }
}
