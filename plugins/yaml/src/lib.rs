//! `yaml` renderer: reads Kubernetes manifests (`.yaml`, `.yml`, `.json`, multi-document)
//! from the pipeline's directory of the snapshot and keeps each object's file and line.
//!
//! Config (`with`):
//! - `ignore`: glob patterns, relative to the pipeline directory, of files to skip (KA-8);
//! - `namespace_per_directory`: each first-level directory is a namespace; objects in it
//!   get that namespace, and an object that names another one is an error (KA-2);
//! - `recursive`: descend into subdirectories (default true).
//!
//! Files are read as kubectl reads them: a UTF-8 byte-order mark and CRLF line ends are
//! fine, and any list kind (`kind: List`, `ConfigMapList`, ... with `items`) is expanded
//! into its items. Documents that are not Kubernetes objects (no `apiVersion` or `kind`,
//! such as a Helm values file or a JSON array) are skipped with a warning naming them.
//! A directory holding a kustomization or a `Chart.yaml` is refused: rendering its files
//! one by one would apply them without the overlay (or the templates) they belong to.

mod documents;
mod files;
mod json;

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use moor_plugin_sdk::{Diagnostic, Info, Input, Object, Outcome, Renderer, export_renderer, log};
use serde::Deserialize;
use serde_json::Value;

use documents::shift_lines;
pub use documents::{Doc, split_documents};
use files::{collect, read_file};
use json::Strict;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub ignore: Vec<String>,
    pub namespace_per_directory: bool,
    pub recursive: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { ignore: Vec::new(), namespace_per_directory: false, recursive: true }
    }
}

pub struct Yaml;

impl Renderer for Yaml {
    type Config = Config;

    fn info() -> Info {
        Info::new("yaml", env!("CARGO_PKG_VERSION"))
            .description("reads Kubernetes manifests from YAML and JSON files")
            .schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "ignore": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "glob patterns of files to skip, relative to the pipeline directory"
                    },
                    "namespace_per_directory": {
                        "type": "boolean",
                        "description": "each first-level directory is a namespace"
                    },
                    "recursive": {"type": "boolean", "description": "read subdirectories (default true)"}
                }
            }))
    }

    fn render(config: Config, input: Input) -> Outcome<Vec<Object>> {
        match input {
            Input::Tree { root, path } => render_tree(&config, &root, &path),
            Input::Objects(_) => Err(vec![Diagnostic::error(
                "the yaml renderer reads the source tree: put it first in the render chain",
            )]),
        }
    }
}

export_renderer!(Yaml);

/// Renders every manifest under `root/path`; origins are relative to `root`.
pub fn render_tree(config: &Config, root: &Path, path: &str) -> Outcome<Vec<Object>> {
    let ignore = ignore_set(&config.ignore)?;
    let dir = root.join(path);
    let mut files = Vec::new();
    let mut broken = Vec::new();
    collect(&dir, config.recursive, &mut files, &mut broken)
        .map_err(|e| vec![Diagnostic::error(format!("cannot read directory: {e}")).at(path, 0)])?;
    let origin_of = |file: &Path| file.strip_prefix(root).unwrap_or(file).to_string_lossy().into_owned();
    if !broken.is_empty() {
        return Err(broken
            .into_iter()
            .map(|(link, e)| Diagnostic::error(format!("symlink: {e}")).at(origin_of(&link), 0))
            .collect());
    }
    files.sort();
    files.retain(|file| !ignore.is_match(file.strip_prefix(&dir).unwrap_or(file)));
    let refused: Vec<Diagnostic> = files.iter().filter_map(|f| other_renderers_file(&origin_of(f))).collect();
    if !refused.is_empty() {
        return Err(refused);
    }

    let mut objects = Vec::new();
    let mut diagnostics = Vec::new();
    for file in files {
        let in_dir = file.strip_prefix(&dir).unwrap_or(&file);
        let origin = origin_of(&file);
        let namespace = if config.namespace_per_directory {
            match in_dir.components().count() {
                1 => None,
                _ => in_dir.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()),
            }
        } else {
            None
        };
        let text = match read_file(&file) {
            Ok(text) => text,
            Err(e) => {
                diagnostics.push(Diagnostic::error(format!("cannot read file: {e}")).at(&origin, 0));
                continue;
            }
        };
        match parse_file(&origin, &text) {
            Ok(parsed) => {
                for mut object in parsed {
                    if let Some(conflict) = namespace.as_deref().and_then(|ns| place_in_namespace(&mut object, ns)) {
                        diagnostics.push(conflict);
                        continue;
                    }
                    objects.push(object);
                }
            }
            Err(mut d) => diagnostics.append(&mut d),
        }
    }
    if diagnostics.is_empty() { Ok(objects) } else { Err(diagnostics) }
}

fn ignore_set(patterns: &[String]) -> Outcome<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob =
            Glob::new(pattern).map_err(|e| vec![Diagnostic::error(format!("ignore pattern `{pattern}`: {e}"))])?;
        builder.add(glob);
    }
    builder.build().map_err(|e| vec![Diagnostic::error(format!("ignore patterns: {e}"))])
}

/// Files that make their directory another renderer's input: kustomize's, or a Helm
/// chart's. The yaml renderer refuses such a directory, naming the file and the renderer.
fn other_renderers_file(origin: &str) -> Option<Diagnostic> {
    let name = origin.rsplit('/').next().unwrap_or(origin);
    let (what, lost, renderer) = match name {
        "kustomization.yaml" | "kustomization.yml" | "Kustomization" => {
            ("a kustomization", "what it does to them (patches, prefixes, generators)", "kustomize")
        }
        "Chart.yaml" => ("a Helm chart", "rendering its templates", "helm"),
        _ => return None,
    };
    let dir = origin.rsplit_once('/').map_or(".", |(d, _)| d);
    Some(
        Diagnostic::error(format!(
            "directory `{dir}` is {what}: the yaml renderer would apply its files one by one, without {lost}; \
             render it with the `{renderer}` renderer, or leave it out with `ignore`"
        ))
        .at(origin, 0),
    )
}

/// Parses one file into objects, each with its origin line.
pub fn parse_file(origin: &str, text: &str) -> Outcome<Vec<Object>> {
    // As editors save them: a byte-order mark first (CRLF line ends parse as they are).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut objects = Vec::new();
    let mut diagnostics = Vec::new();
    if origin.ends_with(".json") {
        match serde_json::from_str::<Strict>(text) {
            Ok(Strict(value)) => push_object(value, origin, 1, &mut objects),
            Err(e) => diagnostics.push(Diagnostic::error(format!("invalid JSON: {e}")).at(origin, e.line() as u32)),
        }
    } else {
        for doc in split_documents(text) {
            match serde_saphyr::from_str_with_options::<Value>(doc.text, as_kubectl_reads()) {
                Ok(value) => push_object(value, origin, doc.first_content_line, &mut objects),
                // Told at once: serde_yaml_ng takes time quadratic in the depth to say so
                // (a minute at 100,000 levels).
                Err(refusal) if too_deep(&refusal).is_some() => {
                    let line = too_deep(&refusal).unwrap_or_default() + doc.start_line - 1;
                    diagnostics.push(
                        Diagnostic::error(format!("invalid YAML: nested deeper than {MAX_DEPTH} levels"))
                            .at(origin, line),
                    );
                }
                // serde_yaml_ng's messages and locations are the clearer ones; it decides
                // the message, not whether the document is valid.
                Err(refusal) => match serde_yaml_ng::from_str::<Value>(doc.text) {
                    Err(e) => {
                        let offset = doc.start_line - 1;
                        let line = e.location().map(|l| offset + l.line() as u32).unwrap_or(doc.start_line);
                        let message = shift_lines(&e.to_string(), offset);
                        diagnostics.push(Diagnostic::error(format!("invalid YAML: {message}")).at(origin, line));
                    }
                    Ok(_) => diagnostics
                        .push(Diagnostic::error(format!("invalid YAML: {refusal}")).at(origin, doc.start_line)),
                },
            }
        }
    }
    if diagnostics.is_empty() { Ok(objects) } else { Err(diagnostics) }
}

/// YAML as kubectl reads numbers (sigs.k8s.io/yaml, YAML 1.1): `0755` is octal, 493, as in
/// `defaultMode: 0755`. Booleans are only `true` and `false`: YAML 1.1's `yes`, `no`, `on`
/// and `off` stay strings (a name `off` stays a name). Anchors and aliases within the
/// parser's budget.
pub fn as_kubectl_reads() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options.strict_booleans = true;
    let mut budget = options.budget.take().unwrap_or_default();
    budget.max_depth = MAX_DEPTH;
    options.budget = Some(budget);
    options
}

/// How deep mappings and sequences may nest in a document. The deepest real manifests
/// (CRDs' schemas, such as Argo CD's) nest about 30 levels. JSON files have the same limit.
pub const MAX_DEPTH: usize = 64;

/// The document line where the parser found nesting over [`MAX_DEPTH`], if that was why
/// it refused.
fn too_deep(refusal: &serde_saphyr::Error) -> Option<u32> {
    use serde_saphyr::{Error, budget::BudgetBreach};
    let mut error = refusal;
    while let Error::AliasError { error: inner, .. } | Error::WithSnippet { error: inner, .. } = error {
        error = inner;
    }
    match error {
        Error::Budget { breach: BudgetBreach::Depth { .. }, location } => Some(location.line().max(1) as u32),
        // The scanner's own limit on nested flow collections (`[[[[…`), deeper still.
        Error::ExternalMessage { msg, location, .. } if msg == "recursion limit exceeded" => {
            Some(location.line().max(1) as u32)
        }
        _ => None,
    }
}

fn push_object(value: Value, origin: &str, line: u32, out: &mut Vec<Object>) {
    let is_object = |v: &Value| {
        v.get("apiVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
            && v.get("kind").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
    };
    if !is_object(&value) {
        let what = match &value {
            Value::Null => return,
            Value::Array(_) => "a list, not an object",
            Value::Object(_) => "no apiVersion and kind",
            _ => "a scalar, not an object",
        };
        log::warn(&format!("{origin}:{line}: not a Kubernetes manifest ({what}), skipped"));
        return;
    }
    let kind = value["kind"].as_str().unwrap_or_default();
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    if api_version.starts_with("kustomize.config.k8s.io/") {
        log::debug(&format!("{origin}:{line}: kustomize file, skipped"));
        return;
    }
    // kubectl's rule (`meta.IsListType`): a kind ending in `List` with `items` is a list,
    // whatever its group (`ConfigMapList`, `kind: List` under rbac.authorization.k8s.io/v1).
    if kind.ends_with("List")
        && let Some(Value::Array(items)) = value.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            if is_object(item) {
                out.push(Object::new(item.clone(), origin, line));
            } else {
                log::warn(&format!("{origin}:{line}: item {i} of the {kind} is not a Kubernetes object, skipped"));
            }
        }
        return;
    }
    out.push(Object::new(value, origin, line));
}

/// Kinds that are never namespaced, for namespace-per-directory mode.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "FlowSchema",
    "PriorityLevelConfiguration",
    "CertificateSigningRequest",
];

/// Gives a namespaced object the directory's namespace; returns the conflict, if any.
fn place_in_namespace(object: &mut Object, namespace: &str) -> Option<Diagnostic> {
    if CLUSTER_SCOPED.contains(&object.kind()) {
        return None;
    }
    match object.namespace() {
        None => {
            object.value["metadata"]["namespace"] = Value::String(namespace.to_owned());
            None
        }
        Some(ns) if ns == namespace => None,
        Some(ns) => Some(Diagnostic::error(format!(
            "object declares namespace `{ns}` but lives in directory `{namespace}/`, which is namespace `{namespace}`"
        ))
        .on(object)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_lines_are_shifted_to_file_lines() {
        assert_eq!(
            shift_lines("x at line 2 column 1, while parsing at line 1 column 3", 4),
            "x at line 6 column 1, while parsing at line 5 column 3"
        );
    }

    #[test]
    fn any_list_kind_is_expanded_whatever_its_group() {
        let text = "apiVersion: v1\nkind: ConfigMapList\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: List\nitems:\n- {apiVersion: rbac.authorization.k8s.io/v1, kind: Role, metadata: {name: r}}\n";
        let objects = parse_file("lists.yaml", text).unwrap();
        let names: Vec<String> = objects.iter().map(|o| format!("{}:{}", o.display_name(), o.line)).collect();
        assert_eq!(names, ["ConfigMap/a:1", "Role/r:6"]);
        // A kind ending in List without items is an ordinary object (a CRD's kind, say).
        let plain =
            parse_file("p.yaml", "apiVersion: example.com/v1\nkind: ShoppingList\nmetadata: {name: s}\n").unwrap();
        assert_eq!(plain[0].kind(), "ShoppingList");
    }

    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_are_read_as_kubectl_reads_them() {
        let text = "\u{feff}apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: a\r\n---\r\napiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: b\r\n";
        let objects = parse_file("bom.yaml", text).unwrap();
        assert_eq!(objects.iter().map(|o| (o.name(), o.line)).collect::<Vec<_>>(), [("a", 1), ("b", 6)]);
        let json = parse_file(
            "bom.json",
            "\u{feff}{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"j\"}}",
        )
        .unwrap();
        assert_eq!(json[0].name(), "j");
    }

    #[test]
    fn octal_numbers_are_read_as_kubectl_reads_them_and_quoted_ones_stay_strings() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  mode: 0755\n  quoted: '0755'\n  tty: yes\n  word: 'yes'\n  switch: off\n  n: 10\n  f: 1.5\n  s: hello\n";
        let spec = &parse_file("p.yaml", text).unwrap()[0].value["spec"];
        assert_eq!(spec["mode"], 493);
        assert_eq!(spec["quoted"], "0755");
        assert_eq!(spec["tty"], "yes", "YAML 1.1 booleans stay strings");
        assert_eq!(spec["word"], "yes");
        assert_eq!(spec["switch"], "off");
        assert_eq!((spec["n"].as_i64(), spec["f"].as_f64(), spec["s"].as_str()), (Some(10), Some(1.5), Some("hello")));
    }

    #[test]
    fn a_json_array_is_skipped_not_read_as_objects() {
        assert!(parse_file("a.json", "[{\"apiVersion\": \"v1\"}]").unwrap().is_empty());
    }

    #[test]
    fn kustomize_and_helm_directories_are_refused_naming_the_file_and_the_renderer() {
        let k = other_renderers_file("apps/web/kustomization.yaml").unwrap();
        assert!(
            k.message.contains("directory `apps/web` is a kustomization") && k.message.contains("`kustomize` renderer"),
            "{}",
            k.message
        );
        assert_eq!(k.file.as_deref(), Some("apps/web/kustomization.yaml"));
        let h = other_renderers_file("Chart.yaml").unwrap();
        assert!(h.message.contains("a Helm chart") && h.message.contains("`helm` renderer"), "{}", h.message);
        assert!(other_renderers_file("apps/values.yaml").is_none());
    }

    #[test]
    fn block_scalars_with_dashes_are_not_markers() {
        let text = "a: |\n  ---\n  x\n";
        assert_eq!(split_documents(text).len(), 1);
    }

    #[test]
    fn alias_bombs_hit_the_repetition_limit() {
        let mut text =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (prev, name) in
            ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 9].join(",");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        text =
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata:\n  {}", text.replace('\n', "\n  "));
        let err = parse_file("bomb.yaml", &text).unwrap_err();
        assert!(err[0].message.contains("repetition limit exceeded"), "{:?}", err[0].message);
    }
}
