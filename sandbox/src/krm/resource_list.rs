//! The KRM Functions Specification's `ResourceList`, as Moor speaks it: objects in with their
//! origin annotations, objects and results out, results turned into diagnostics with
//! `file:line`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::{Diagnostic, Document, ObjectRef, Severity};

/// Where an object came from, as KRM functions see it (`config.kubernetes.io/path`,
/// `config.kubernetes.io/index`, and kyaml's `internal.` copies of both).
const PATH: &str = "config.kubernetes.io/path";
const INDEX: &str = "config.kubernetes.io/index";
const INTERNAL_PATH: &str = "internal.config.kubernetes.io/path";
const INTERNAL_INDEX: &str = "internal.config.kubernetes.io/index";
/// Moor's own mark: the object's position in the input. kyaml's reader replaces the index
/// annotations with positions and its writer drops them, so this is what comes back.
const ORIGIN: &str = "moor.dev/origin";

/// The input of one call, and how to map what comes back to files and lines.
#[derive(Debug)]
pub struct Request {
    /// The `ResourceList` as JSON (which is YAML too).
    pub json: String,
    /// (file, index of the object in the file) → line, for results that name a file.
    lines: HashMap<(String, u64), u32>,
    /// Each input object's file and line, by position.
    origins: Vec<(String, u32)>,
}

impl Request {
    /// A `ResourceList` of `docs`, each annotated with its file and its index in the file,
    /// and `config` (the step's `with` table) as `functionConfig`.
    pub fn new(docs: &[Document], config: &Value) -> Result<Request, String> {
        let mut lines = HashMap::new();
        let mut per_file: HashMap<&str, u64> = HashMap::new();
        let mut items = Vec::with_capacity(docs.len());
        for (position, doc) in docs.iter().enumerate() {
            let mut value: Value =
                serde_json::from_str(&doc.json).map_err(|e| format!("{}: not JSON: {e}", doc.file))?;
            let index = per_file.entry(doc.file.as_str()).or_default();
            if !doc.file.is_empty() {
                let annotations = annotations_mut(&mut value);
                for (key, v) in [(PATH, doc.file.clone()), (INTERNAL_PATH, doc.file.clone())] {
                    annotations.insert(key.into(), Value::String(v));
                }
                for key in [INDEX, INTERNAL_INDEX] {
                    annotations.insert(key.into(), Value::String(index.to_string()));
                }
                annotations.insert(ORIGIN.into(), Value::String(position.to_string()));
                lines.insert((doc.file.clone(), *index), doc.line);
            }
            *index += 1;
            items.push(value);
        }
        let list = json!({
            "apiVersion": "config.kubernetes.io/v1",
            "kind": "ResourceList",
            "items": items,
            "functionConfig": config,
        });
        let origins = docs.iter().map(|d| (d.file.clone(), d.line)).collect();
        Ok(Request { json: list.to_string(), lines, origins })
    }

    /// Reads the function's output: its objects (origin annotations turned back into file
    /// and line) and its results. `workdir` is the pipeline's directory for a function that
    /// read the tree ("" otherwise): paths it names are relative to it, as the KRM
    /// specification has them relative to the package, and objects that name none come
    /// from it.
    pub fn response(&self, stdout: &[u8], workdir: &str) -> Result<Response, String> {
        let text = std::str::from_utf8(stdout).map_err(|_| "its output is not UTF-8".to_owned())?;
        if text.trim().is_empty() {
            return Ok(Response::default());
        }
        let list: Value =
            serde_yaml_ng::from_str(text).map_err(|e| format!("its output is not a ResourceList: {e}"))?;
        if list.get("kind").and_then(Value::as_str) != Some("ResourceList") {
            return Err("its output is not a ResourceList".into());
        }
        let mut out = Response::default();
        for mut item in list.get("items").and_then(Value::as_array).cloned().unwrap_or_default() {
            let (position, file) = take_origin(&mut item);
            let (file, line) = match (position.and_then(|p| self.origins.get(p)), file) {
                (Some((file, line)), _) => (file.clone(), *line),
                (None, Some(file)) => (in_dir(workdir, &file), 0),
                (None, None) => (workdir.to_owned(), 0),
            };
            out.items.push(Document { json: item.to_string(), file, line });
        }
        for result in list.get("results").and_then(Value::as_array).into_iter().flatten() {
            out.diagnostics.push(self.diagnostic(result, workdir));
        }
        Ok(out)
    }

    fn diagnostic(&self, result: &Value, workdir: &str) -> Diagnostic {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let severity = match result.get("severity").and_then(Value::as_str) {
            Some("warning") => Severity::Warning,
            Some("info") => Severity::Info,
            _ => Severity::Error,
        };
        let mut message = text(result.get("message")).unwrap_or_else(|| "(no message)".into());
        if let Some(path) = result.pointer("/field/path").and_then(Value::as_str) {
            message = format!("{message} (field {path})");
        }
        let object = result.get("resourceRef").map(|r| ObjectRef {
            api_version: text(r.get("apiVersion")).unwrap_or_default(),
            kind: text(r.get("kind")).unwrap_or_default(),
            namespace: text(r.get("namespace")).filter(|n| !n.is_empty()),
            name: text(r.get("name")).unwrap_or_default(),
        });
        let file = text(result.pointer("/file/path")).map(|f| in_dir(workdir, &f));
        let number = |key: &str| {
            result.pointer(&format!("/file/{key}")).and_then(|i| i.as_u64().or_else(|| i.as_str()?.parse().ok()))
        };
        let index = number("index");
        // Moor's `file.line` (a template's line) first. Else the index: the object's position
        // in the list for kyaml's functions, its index in its file for others; a position
        // whose object is of that file wins.
        let line = number("line").map(|l| l as u32).or_else(|| {
            let f = file.as_ref()?;
            let by_position = index.and_then(|i| self.origins.get(i as usize)).filter(|(of, _)| of == f);
            by_position.map(|(_, line)| *line).or_else(|| self.lines.get(&(f.clone(), index.unwrap_or(0))).copied())
        });
        Diagnostic { severity, message, file, line, object }
    }
}

/// What a call returned.
#[derive(Debug, Default)]
pub struct Response {
    pub items: Vec<Document>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Response {
    pub fn failed(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }
}

/// `file`, named relative to `dir`, relative to the snapshot.
fn in_dir(dir: &str, file: &str) -> String {
    let file = file.trim_start_matches("./");
    match dir.trim_end_matches('/') {
        "" | "." => file.to_owned(),
        dir if file.is_empty() || file == "." => dir.to_owned(),
        dir => format!("{dir}/{file}"),
    }
}

fn annotations_mut(value: &mut Value) -> &mut Map<String, Value> {
    let metadata = value
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| Value::Object(Map::new())))
        .expect("an object");
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    let annotations = metadata.as_object_mut().expect("made an object").entry("annotations");
    let annotations = annotations.or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    annotations.as_object_mut().expect("made an object")
}

/// Removes the origin annotations (and kyaml's other bookkeeping ones) from an output
/// object; returns its input position and its file, if it has them.
fn take_origin(item: &mut Value) -> (Option<usize>, Option<String>) {
    let Some(annotations) = item.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) else {
        return (None, None);
    };
    let mut take = |key: &str| annotations.remove(key).and_then(|v| v.as_str().map(str::to_owned));
    let position = take(ORIGIN).and_then(|p| p.parse().ok());
    let path = take(INTERNAL_PATH).or(take(PATH));
    take(INTERNAL_INDEX);
    take(INDEX);
    annotations.retain(|k, _| !k.starts_with("internal.config.kubernetes.io/") && k != "config.k8s.io/id");
    let empty = annotations.is_empty();
    if empty && let Some(metadata) = item.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        metadata.remove("annotations");
    }
    (position, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: Value, file: &str, line: u32) -> Document {
        Document { json: json.to_string(), file: file.into(), line }
    }

    #[test]
    fn objects_go_in_with_their_origin_and_come_back_to_their_file_and_line_without_it() {
        let docs = [
            doc(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}), "app.yaml", 1),
            doc(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "annotations": {"keep": "me"}}}),
                "app.yaml",
                7,
            ),
        ];
        let request = Request::new(&docs, &json!({"prefix": "x-"})).unwrap();
        let sent: Value = serde_json::from_str(&request.json).unwrap();
        assert_eq!(sent["kind"], "ResourceList");
        assert_eq!(sent["functionConfig"]["prefix"], "x-");
        assert_eq!(sent["items"][1]["metadata"]["annotations"][INDEX], "1");
        assert_eq!(sent["items"][1]["metadata"]["annotations"][INTERNAL_PATH], "app.yaml");

        // The function renames both and adds one of its own; kyaml writes YAML.
        let stdout = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n\
            - apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: x-b\n    annotations:\n      keep: me\n      config.kubernetes.io/index: '1'\n      internal.config.kubernetes.io/index: '1'\n      config.kubernetes.io/path: app.yaml\n      internal.config.kubernetes.io/path: app.yaml\n      config.k8s.io/id: '2'\n      moor.dev/origin: '1'\n\
            - apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: x-a\n    annotations:\n      config.kubernetes.io/path: app.yaml\n      moor.dev/origin: '0'\n\
            - apiVersion: v1\n  kind: Secret\n  metadata:\n    name: new\n\
            results:\n- message: name too long\n  severity: warning\n  resourceRef: {apiVersion: v1, kind: ConfigMap, name: x-b}\n  file: {path: app.yaml, index: 1}\n";
        let response = request.response(stdout.as_bytes(), "").unwrap();
        let back: Vec<(String, String, u32)> = response
            .items
            .iter()
            .map(|d| (serde_json::from_str::<Value>(&d.json).unwrap()["metadata"].to_string(), d.file.clone(), d.line))
            .collect();
        assert_eq!(back[0], (json!({"name": "x-b", "annotations": {"keep": "me"}}).to_string(), "app.yaml".into(), 7));
        assert_eq!(back[1], (json!({"name": "x-a"}).to_string(), "app.yaml".into(), 1));
        assert_eq!(back[2], (json!({"name": "new"}).to_string(), "".into(), 0));
        let d = &response.diagnostics[0];
        assert_eq!((d.severity, d.file.as_deref(), d.line), (Severity::Warning, Some("app.yaml"), Some(7)));
        assert_eq!(d.object.as_ref().map(|o| o.name.as_str()), Some("x-b"));
        assert!(!response.failed());
    }

    #[test]
    fn results_without_a_severity_are_errors_and_output_that_is_not_a_resource_list_is_refused() {
        let request = Request::new(&[], &json!({})).unwrap();
        let response = request.response(b"kind: ResourceList\nresults:\n- message: boom\n", "").unwrap();
        assert!(response.failed());
        assert_eq!(response.diagnostics[0].message, "boom");
        assert!(request.response(b"kind: ConfigMap\n", "").is_err());
        assert!(request.response(b"", "").unwrap().items.is_empty());
    }

    #[test]
    fn a_tree_renderer_names_files_in_the_pipeline_directory_and_may_give_a_line() {
        let request = Request::new(&[], &json!({})).unwrap();
        let stdout = json!({
            "kind": "ResourceList",
            "items": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                "annotations": {PATH: "chart/templates/service.yaml", INDEX: "0"}}}],
            "results": [{"message": "values: replicas is required", "severity": "error",
                "file": {"path": "chart/templates/deployment.yaml", "line": 12}}],
        });
        let response = request.response(stdout.to_string().as_bytes(), "apps/web").unwrap();
        assert_eq!(response.items[0].file, "apps/web/chart/templates/service.yaml");
        assert_eq!(
            response.items[0].json,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}).to_string()
        );
        let d = &response.diagnostics[0];
        assert_eq!((d.file.as_deref(), d.line), (Some("apps/web/chart/templates/deployment.yaml"), Some(12)));
        assert_eq!(in_dir("", "./a.yaml"), "a.yaml");
        assert_eq!(in_dir("apps", "."), "apps");
    }
}
