//! `moor plugin inspect` and `moor plugin test`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::{Output, TestArgs};
use crate::object::Object;
use crate::plugins::{
    self, CallScope, Diagnostic, Document, Event, EventReason, Limits, Plugin, PluginKind, PluginSource, RenderContext,
    RenderInput, RunStart, Runtime, Severity,
};
use crate::reconcile::{Finding, Level};

/// Loads a plugin named on the command line: a file, or a built-in plugin's name.
fn load(runtime: &Runtime, what: &str) -> anyhow::Result<Plugin> {
    let path = PathBuf::from(what);
    let (name, source) = match runtime.standard(what) {
        Ok(source) if !path.exists() => (what.to_owned(), source),
        _ => {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| what.to_owned());
            (stem, PluginSource::Inspect(path))
        }
    };
    Ok(runtime.load(&name, source, Limits::default())?)
}

/// `moor plugin push`: loads the file first, so only a plugin this moor runs is published,
/// with its self-description as the artifact's config.
pub fn push(cache: &Path, file: &Path, reference: &str, insecure: bool) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(cache)?;
    let plugin = load(&runtime, &file.to_string_lossy())?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let info = serde_json::to_value(&plugin.info)?;
    let pinned = plugins::artifact::push(bytes, info, reference, insecure).map_err(anyhow::Error::msg)?;
    println!("{pinned}");
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(cache: &Path, what: &str, output: Output) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(cache)?;
    let plugin = load(&runtime, what)?;
    let info = &plugin.info;
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(info)?)?,
        Output::Text => {
            writeln!(out, "name:         {}", info.name)?;
            writeln!(out, "version:      {}", info.version)?;
            writeln!(out, "kind:         {}", info.kind)?;
            writeln!(out, "flavor:       {}", info.flavor)?;
            match info.flavor {
                "component" => writeln!(out, "contract:     moor:plugin@{}", info.contract)?,
                _ => writeln!(out, "contract:     {}", info.contract)?,
            }
            writeln!(out, "sha256:       {}", info.sha256)?;
            if !info.description.is_empty() {
                writeln!(out, "description:  {}", info.description)?;
            }
            writeln!(out, "capabilities:")?;
            for cap in &info.capabilities {
                writeln!(out, "  - {cap}")?;
            }
            writeln!(out, "config schema:\n{}", serde_json::to_string_pretty(&info.config_schema)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `moor version`: moor's version, the contract's, and each built-in plugin's (as the
/// plugin describes itself).
pub fn version(cache: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(cache)?;
    let mut builtin = serde_json::Map::new();
    for name in plugins::builtin_names() {
        let version = match plugins::go_plugins().find(|(n, _)| *n == name) {
            // Go plugins describe nothing of themselves; the binary pins their build.
            Some((_, sha256)) => format!("go, sha256:{}", &sha256[..12]),
            None => load(&runtime, name)?.info.version.clone(),
        };
        builtin.insert(name.to_owned(), version.into());
    }
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => {
            let version = serde_json::json!({
                "moor": env!("CARGO_PKG_VERSION"),
                "contract": format!("moor:plugin@{}", plugins::CONTRACT_VERSION),
                "builtin_plugins": builtin,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&version)?)?;
        }
        Output::Text => {
            writeln!(out, "moor {}", env!("CARGO_PKG_VERSION"))?;
            writeln!(out, "contract moor:plugin@{}", plugins::CONTRACT_VERSION)?;
            for (name, version) in &builtin {
                writeln!(out, "plugin {name} {}", version.as_str().unwrap_or_default())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize, Default)]
struct TestReport {
    objects: Vec<serde_json::Value>,
    files: Vec<String>,
    revision: Option<String>,
    findings: Vec<Finding>,
    error: Option<String>,
    summary: Summary,
}

/// What `moor plugin test` always prints last: what went in and out, the diagnostics by
/// severity, and how long the plugin's call took.
#[derive(Serialize, Default)]
struct Summary {
    /// Objects given to the plugin; none for a renderer reading a tree, a source or a notifier.
    objects_in: Option<usize>,
    /// Objects (renderers) or files (sources) returned.
    out: usize,
    errors: usize,
    warnings: usize,
    infos: usize,
    millis: u128,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        match self.objects_in {
            Some(n) => write!(f, "{} in, {} out", plural(n, "object", "objects"), self.out)?,
            None => write!(f, "{} out", self.out)?,
        }
        write!(
            f,
            "; {}, {}, {}; {} ms",
            plural(self.errors, "error", "errors"),
            plural(self.warnings, "warning", "warnings"),
            plural(self.infos, "info", "infos"),
            self.millis
        )
    }
}

/// Runs a plugin once on `input` and prints what it returns; fails on any error.
pub fn test(cache: &Path, args: &TestArgs) -> anyhow::Result<ExitCode> {
    let TestArgs { plugin: what, input, with, after_yaml, as_kind, allow_hosts, output } = args;
    let runtime = Runtime::new(cache)?;
    let plugin = load(&runtime, what)?;
    let kind = match as_kind.map(PluginKind::from) {
        Some(kind) if !plugin.serves(kind) => {
            anyhow::bail!("plugin `{}` is a {}; it cannot run as a {kind}", plugin.info.name, plugin.kind())
        }
        Some(kind) => kind,
        None => plugin.kind(),
    };
    let config: serde_json::Value = serde_json::from_str(with).context("--with is not JSON")?;
    if let Err(errors) = plugin.check_config(&config) {
        anyhow::bail!("--with is rejected by the plugin's schema: {}", errors.join("; "));
    }
    let needs_input = || input.as_deref().context("this plugin needs --input DIR, a directory of manifests");
    let findings = |diags: Vec<Diagnostic>| {
        diags.into_iter().map(|d| Finding::from_diagnostic(d, &plugin.info.name)).collect::<Vec<_>>()
    };
    let mut report = TestReport::default();
    // `moor plugin test` gives a plugin no secrets, and nothing stops it but its limits.
    let scope = CallScope::default();
    let not_a = || anyhow::anyhow!("plugin `{}` is a {}; it cannot run as a {kind}", plugin.info.name, plugin.kind());
    let started;
    match kind {
        PluginKind::Renderer => {
            let dir = needs_input()?;
            let input = if *after_yaml {
                let docs = yaml_documents(&runtime, dir)?;
                report.summary.objects_in = Some(docs.len());
                RenderInput::Objects(docs)
            } else {
                RenderInput::Tree { snapshot: dir, path: "" }
            };
            let renderer = plugin.renderer().ok_or_else(not_a)?;
            started = std::time::Instant::now();
            match (input, renderer.tree_rewriter()) {
                // A `tree-renderer` given the tree: the files it rewrote, by size only
                // (they may hold what it decrypted).
                (RenderInput::Tree { snapshot, path }, Some(rewriter)) => {
                    match rewriter.rewrite(&config, snapshot, path, &scope)? {
                        Ok(rewritten) => {
                            report.files = rewritten
                                .files
                                .iter()
                                .map(|f| format!("{} ({} bytes, rewritten)", f.path, f.contents.len()))
                                .collect();
                        }
                        Err(diags) => report.findings = findings(diags),
                    }
                }
                (input, _) => match renderer.render(&config, input, &RenderContext::default(), &scope)? {
                    Ok(docs) => {
                        report.objects = docs.iter().map(|d| redacted(&d.json)).collect::<anyhow::Result<_>>()?;
                    }
                    Err(diags) => report.findings = findings(diags),
                },
            }
        }
        PluginKind::Validator => {
            let docs = yaml_documents(&runtime, needs_input()?)?;
            report.summary.objects_in = Some(docs.len());
            started = std::time::Instant::now();
            match plugin.validator().ok_or_else(not_a)?.validate(&config, &docs, &scope)? {
                Ok(diags) => report.findings = findings(diags),
                Err(message) => report.error = Some(message),
            }
        }
        PluginKind::Source => {
            started = std::time::Instant::now();
            match plugin.source().ok_or_else(not_a)?.fetch(&config, None, &scope)? {
                Ok(Some(snapshot)) => {
                    report.revision = Some(snapshot.revision);
                    report.files =
                        snapshot.files.iter().map(|f| format!("{} ({} bytes)", f.path, f.contents.len())).collect();
                }
                Ok(None) => report.error = Some("returned no snapshot".into()),
                Err(message) => report.error = Some(message),
            }
        }
        PluginKind::Notifier => {
            let event = Event {
                pipeline: "test".into(),
                reason: EventReason::RunSucceeded,
                severity: Severity::Info,
                revision: "0000000".into(),
                message: "moor plugin test: a sample event".into(),
                objects: Vec::new(),
                timestamp: "1970-01-01T00:00:00Z".into(),
            };
            started = std::time::Instant::now();
            // A notifier of the `status-notifier` world hears the run start first.
            let run = RunStart {
                pipeline: event.pipeline.clone(),
                revision: event.revision.clone(),
                timestamp: event.timestamp.clone(),
            };
            let notifier = plugin.notifier().ok_or_else(not_a)?;
            if let Err(message) = notifier.started(&config, &run, allow_hosts, &scope)? {
                report.error = Some(format!("run start: {message}"));
            } else if let Err(message) = notifier.notify(&config, &[event], allow_hosts, &scope)? {
                report.error = Some(message);
            }
        }
    }
    let count = |severity: Level| report.findings.iter().filter(|f| f.severity == severity).count();
    report.summary = Summary {
        out: report.objects.len() + report.files.len(),
        errors: count(Level::Error),
        warnings: count(Level::Warning),
        infos: count(Level::Info),
        millis: started.elapsed().as_millis(),
        ..report.summary
    };
    let failed = report.error.is_some() || report.findings.iter().any(Finding::is_error);
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Output::Text => {
            for object in &report.objects {
                write!(out, "---\n{}", serde_yaml_ng::to_string(object)?)?;
            }
            if let Some(revision) = &report.revision {
                writeln!(out, "revision: {revision}")?;
            }
            for file in &report.files {
                writeln!(out, "file: {file}")?;
            }
            for finding in &report.findings {
                writeln!(out, "{finding}")?;
            }
            if let Some(error) = &report.error {
                writeln!(out, "error: {error}")?;
            }
            // On stderr: stdout stays the plugin's output (YAML a renderer can pipe on).
            eprintln!("summary: {}", report.summary);
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The manifests of `dir`, read by the built-in `yaml` renderer.
fn yaml_documents(runtime: &Runtime, dir: &Path) -> anyhow::Result<Vec<Document>> {
    let yaml = runtime.load(
        "yaml",
        PluginSource::Builtin(plugins::builtin_bytes("yaml").expect("yaml is built in")),
        Limits::default(),
    )?;
    let yaml = yaml.renderer().context("the built-in `yaml` is a renderer")?;
    match yaml.render(
        &serde_json::json!({}),
        RenderInput::Tree { snapshot: dir, path: "" },
        &RenderContext::default(),
        &CallScope::default(),
    )? {
        Ok(docs) => Ok(docs),
        Err(diags) => {
            let text: Vec<String> =
                diags.into_iter().map(|d| Finding::from_diagnostic(d, "yaml").to_string()).collect();
            anyhow::bail!("reading {} failed:\n{}", dir.display(), text.join("\n"))
        }
    }
}

fn redacted(json: &str) -> anyhow::Result<serde_json::Value> {
    let value = serde_json::from_str(json)?;
    Ok(Object::new(value, "", 0).redacted())
}
