//! `moor build` and `moor plan`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use super::Output;
use crate::config::{Config, SpannedStr};
use crate::reconcile::{Finding, Moor, Rendered, StageError};

fn load(cache: &Path, file: &Path) -> anyhow::Result<(Moor, Config)> {
    let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
    let config = Config::load(file, &builtin)?;
    Ok((Moor::new(cache)?, config))
}

/// Prints every object of one or all pipelines as a YAML stream.
pub fn build(cache: &Path, file: &Path, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let (moor, config) = load(cache, file)?;
    if let Some(name) = only {
        anyhow::ensure!(config.pipeline(name).is_some(), "{}: no pipeline is named `{name}`", file.display());
    }
    let prepared = moor.prepare(&config);
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for pipeline in config.pipelines_in_order() {
        if only.is_some_and(|n| n != pipeline.name.s()) {
            continue;
        }
        match moor.render_pipeline(&prepared, pipeline) {
            Ok(rendered) => {
                for object in &rendered.objects {
                    writeln!(out, "---\n# pipeline: {}, source: {}", rendered.pipeline, object.origin())?;
                    out.write_all(serde_yaml_ng::to_string(&object.redacted())?.as_bytes())?;
                }
            }
            Err(e) => {
                failed = true;
                report_error(pipeline.name.s(), &e);
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn report_error(pipeline: &str, e: &StageError) {
    eprintln!("error: pipeline `{pipeline}`: {e}");
    for finding in e.findings() {
        eprintln!("  {finding}");
    }
}

#[derive(Serialize)]
struct PipelinePlan<'a> {
    pipeline: &'a str,
    ok: bool,
    revision: Option<&'a str>,
    stage: Option<&'a str>,
    error: Option<String>,
    /// Objects by kind.
    kinds: BTreeMap<&'a str, usize>,
    /// What would happen to each object.
    changes: Vec<Change>,
    findings: Vec<&'a Finding>,
}

#[derive(Serialize)]
struct Change {
    action: &'static str,
    object: String,
    origin: String,
}

#[derive(Serialize)]
struct PlanReport<'a> {
    /// Where the plan compared against.
    cluster: &'static str,
    pipelines: Vec<PipelinePlan<'a>>,
}

/// The plan is offline here: nothing in this build talks to a cluster yet, so every
/// object is planned as a create against an empty cluster, and the report says so.
const CLUSTER_NOTE: &str = "none: planned against an empty cluster";

/// Renders and validates every pipeline, prints what would be applied, and fails when
/// any pipeline has an error.
pub fn plan(cache: &Path, file: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let (moor, config) = load(cache, file)?;
    let prepared = moor.prepare(&config);
    let results: Vec<(&str, Result<Rendered, StageError>)> =
        config.pipelines_in_order().into_iter().map(|p| (p.name.s(), moor.render_pipeline(&prepared, p))).collect();

    let pipelines: Vec<PipelinePlan<'_>> = results
        .iter()
        .map(|(name, result)| match result {
            Ok(r) => PipelinePlan {
                pipeline: name,
                ok: true,
                revision: Some(&r.revision),
                stage: None,
                error: None,
                kinds: r.objects.iter().fold(BTreeMap::new(), |mut m, o| {
                    *m.entry(o.kind()).or_default() += 1;
                    m
                }),
                changes: r
                    .objects
                    .iter()
                    .map(|o| Change { action: "create", object: o.display_name(), origin: o.origin() })
                    .collect(),
                findings: r.findings.iter().collect(),
            },
            Err(e) => PipelinePlan {
                pipeline: name,
                ok: false,
                revision: None,
                stage: Some(e.stage()),
                error: Some(e.to_string()),
                kinds: BTreeMap::new(),
                changes: Vec::new(),
                findings: e.findings().iter().collect(),
            },
        })
        .collect();
    let failed = pipelines.iter().any(|p| !p.ok);
    let report = PlanReport { cluster: CLUSTER_NOTE, pipelines };

    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Output::Text => {
            writeln!(out, "cluster: {}", report.cluster)?;
            for p in &report.pipelines {
                writeln!(out)?;
                match (&p.error, p.revision) {
                    (Some(error), _) => {
                        writeln!(out, "pipeline {}: FAILED at {}: {error}", p.pipeline, p.stage.unwrap_or("?"))?
                    }
                    (None, Some(rev)) => {
                        writeln!(out, "pipeline {} @ {}: {} object(s)", p.pipeline, short(rev), p.changes.len())?
                    }
                    (None, None) => {}
                }
                for (kind, n) in &p.kinds {
                    writeln!(out, "  {kind}: {n}")?;
                }
                for c in &p.changes {
                    writeln!(out, "  + {} ({})", c.object, c.origin)?;
                }
                for f in &p.findings {
                    writeln!(out, "  {f}")?;
                }
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn short(revision: &str) -> &str {
    let hex = revision.strip_prefix("sha256:").unwrap_or(revision);
    &hex[..hex.len().min(12)]
}
