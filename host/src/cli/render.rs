//! `moor build` and `moor plan`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use super::Output;
use crate::apply::{self, Report, RunOptions, Target};
use crate::config::SpannedStr;
use crate::reconcile::{Finding, Rendered, StageError};

/// Prints every object of one or all pipelines as a YAML stream.
pub fn build(cache: &Path, file: &Path, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let (moor, config) = super::load(cache, file, only)?;
    let prepared = moor.prepare(config.clone());
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for pipeline in config.pipelines_in_order() {
        if only.is_some_and(|n| n != pipeline.name.s()) {
            continue;
        }
        match futures::executor::block_on(moor.render_with_secrets(&prepared, pipeline, None)) {
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
    stage: Option<crate::stage::Stage>,
    error: Option<String>,
    /// Objects by kind.
    kinds: BTreeMap<&'a str, usize>,
    /// What would happen to each object.
    changes: Vec<Change>,
    findings: Vec<&'a Finding>,
}

impl<'a> PipelinePlan<'a> {
    fn failed(pipeline: &'a str, e: &StageError, findings: Vec<&'a Finding>) -> Self {
        PipelinePlan {
            pipeline,
            ok: false,
            revision: None,
            stage: Some(e.stage()),
            error: Some(e.to_string()),
            kinds: BTreeMap::new(),
            changes: Vec::new(),
            findings,
        }
    }
}

#[derive(Serialize)]
struct Change {
    action: &'static str,
    object: String,
    origin: String,
}

#[derive(Serialize)]
struct PlanReport<'a> {
    /// What the plan compared against.
    cluster: String,
    pipelines: Vec<PipelinePlan<'a>>,
}

/// How long `plan` tries to reach a cluster before planning offline.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Renders and validates every pipeline, prints what would be applied, and fails when
/// any pipeline has an error.
pub fn plan(
    cache: &Path,
    file: &Path,
    output: Output,
    kubeconfig: &crate::apply::Kubeconfig,
) -> anyhow::Result<ExitCode> {
    let (moor, config) = super::load(cache, file, None)?;
    let prepared = moor.prepare(config.clone());
    let results: Vec<(&str, Result<Rendered, StageError>)> = config
        .pipelines_in_order()
        .into_iter()
        .map(|p| (p.name.s(), futures::executor::block_on(moor.render_with_secrets(&prepared, p, None))))
        .collect();

    // With a reachable cluster, each rendered pipeline is diffed against it by a server
    // dry-run; without one, everything is a create against an empty cluster.
    let rt = super::cluster::runtime()?;
    let target = rt.block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, Target::connect(kubeconfig)).await });
    let (cluster, target) = match target {
        Ok(Ok(target)) => ("reachable: planned with server-side dry runs".to_owned(), Some(target)),
        Ok(Err(e)) => (format!("not reachable ({e}): planned against an empty cluster"), None),
        Err(_) => ("not reachable (timed out): planned against an empty cluster".to_owned(), None),
    };
    let mut live_plans: HashMap<&str, Result<Report, StageError>> = HashMap::new();
    if let Some(target) = &target {
        for (name, result) in &results {
            let (Ok(rendered), Some(pipeline)) = (result, config.pipeline(name)) else { continue };
            let run = RunOptions { dry_run: true, ..RunOptions::default() };
            let objects = rendered.objects.clone();
            let report = rt.block_on(apply::apply(
                target,
                &config.settings,
                pipeline,
                &rendered.revision,
                objects,
                run,
                &|_| {},
            ));
            live_plans.insert(name, report.map_err(|failed| StageError::from(failed).hiding(&rendered.revealed)));
        }
    }

    let pipelines: Vec<PipelinePlan<'_>> = results
        .iter()
        .map(|(name, result)| match (result, live_plans.remove(name)) {
            (Ok(_), Some(Err(e))) => PipelinePlan::failed(name, &e, Vec::new()),
            (Ok(r), live) => PipelinePlan {
                pipeline: name,
                ok: true,
                revision: Some(&r.revision),
                stage: None,
                error: None,
                kinds: r.objects.iter().fold(BTreeMap::new(), |mut m, o| {
                    *m.entry(o.kind()).or_default() += 1;
                    m
                }),
                changes: match live {
                    Some(Ok(report)) => changes(&report),
                    _ => r
                        .objects
                        .iter()
                        .map(|o| Change { action: "create", object: o.display_name(), origin: o.origin() })
                        .collect(),
                },
                findings: r.findings.iter().collect(),
            },
            (Err(e), _) => PipelinePlan::failed(name, e, e.findings().iter().collect()),
        })
        .collect();
    let failed = pipelines.iter().any(|p| !p.ok);
    let report = PlanReport { cluster, pipelines };

    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Output::Text => {
            writeln!(out, "cluster: {}", report.cluster)?;
            for p in &report.pipelines {
                writeln!(out)?;
                match (&p.error, p.revision) {
                    (Some(error), _) => writeln!(out, "pipeline {}: FAILED: {error}", p.pipeline)?,
                    (None, Some(rev)) => writeln!(
                        out,
                        "pipeline {} @ {}: {} object(s)",
                        p.pipeline,
                        crate::source::short(rev),
                        p.changes.len()
                    )?,
                    (None, None) => {}
                }
                for (kind, n) in &p.kinds {
                    writeln!(out, "  {kind}: {n}")?;
                }
                for c in &p.changes {
                    let mark = match c.action {
                        "create" => "+",
                        "configure" => "~",
                        "prune" => "-",
                        _ => "=",
                    };
                    let origin = if c.origin.is_empty() { String::new() } else { format!(" ({})", c.origin) };
                    writeln!(out, "  {mark} {} {}{origin}", c.action, c.object)?;
                }
                for f in &p.findings {
                    writeln!(out, "  {f}")?;
                }
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The changes a dry-run report describes.
fn changes(report: &Report) -> Vec<Change> {
    let entry =
        |action: &'static str| move |object: &String| Change { action, object: object.clone(), origin: String::new() };
    let mut out: Vec<Change> = report.created.iter().map(entry("create")).collect();
    out.extend(report.configured.iter().chain(&report.recreated).map(entry("configure")));
    out.extend(report.unchanged.iter().map(entry("unchanged")));
    out.extend(report.pruned.iter().map(entry("prune")));
    out
}
