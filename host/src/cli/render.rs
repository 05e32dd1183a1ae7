//! `moor build` and `moor plan`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use super::Output;
use crate::apply::{Action, RunOptions, Target};
use crate::reconcile::{Finding, Mode, RunFailure, RunReport};

/// Prints every object of one or all pipelines as a YAML stream.
pub fn build(cache: &Path, file: &Path, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let (moor, config) = super::load(cache, file, only, None)?;
    let prepared = moor.prepare(config.clone());
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for pipeline in config.pipelines_in_order() {
        if only.is_some_and(|n| n != pipeline.name) {
            continue;
        }
        let report = futures::executor::block_on(moor.reconcile(&prepared, pipeline, None, Mode::Render, &|_| {}));
        match report.error() {
            None => {
                for object in &report.objects {
                    writeln!(out, "---\n# pipeline: {}, source: {}", report.pipeline, object.origin())?;
                    out.write_all(serde_yaml_ng::to_string(&object.redacted())?.as_bytes())?;
                }
            }
            Some(e) => {
                failed = true;
                report_error(&pipeline.name, e);
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn report_error(pipeline: &str, e: &RunFailure) {
    eprintln!("error: pipeline `{pipeline}`: {e}");
    for finding in e.error.findings() {
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
    fn of(report: &'a RunReport) -> Self {
        let (stage, error, mut findings) = match &report.outcome {
            Ok(()) => (None, None, Vec::new()),
            Err(f) => (Some(f.stage), Some(f.error.to_string()), f.error.findings().iter().collect()),
        };
        findings.extend(&report.findings);
        if error.is_some() {
            let (kinds, changes) = (BTreeMap::new(), Vec::new());
            return PipelinePlan {
                pipeline: &report.pipeline,
                ok: false,
                revision: None,
                stage,
                error,
                kinds,
                changes,
                findings,
            };
        }
        // Without a cluster, the rendered objects, each a create against an empty cluster.
        let offline = report.objects.iter().map(|o| (o.kind(), Action::Created, o.display_name(), o.origin()));
        let planned =
            report.cluster.objects.iter().map(|o| (o.key.kind.as_str(), o.action, o.key.to_string(), o.origin()));
        let mut kinds = BTreeMap::new();
        let mut changes = Vec::new();
        for (kind, action, object, origin) in offline.chain(planned).filter(|c| c.1.planned().is_some()) {
            if action != Action::Pruned {
                *kinds.entry(kind).or_default() += 1;
            }
            changes.push(Change { action, object, origin });
        }
        PipelinePlan {
            pipeline: &report.pipeline,
            ok: true,
            revision: Some(&report.revision),
            stage: None,
            error: None,
            kinds,
            changes,
            findings,
        }
    }
}

#[derive(Serialize)]
struct Change {
    /// As a plan says it: `create`, `configure`, `unchanged`, `prune`.
    #[serde(serialize_with = "planned")]
    action: Action,
    object: String,
    origin: String,
}

fn planned<S: serde::Serializer>(action: &Action, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(action.planned().unwrap_or_default())
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
    let (moor, config) = super::load(cache, file, None, Some(kubeconfig))?;
    let prepared = moor.prepare(config.clone());
    // With a reachable cluster, each pipeline runs as the controller would run it (its
    // Secrets, the cluster's version for its renderers) and is diffed by server dry runs in
    // its own cluster; without one, everything is a create against an empty cluster.
    let rt = super::cluster::runtime()?;
    let target = rt.block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, Target::connect(kubeconfig)).await });
    let (cluster, target) = match target {
        Ok(Ok(target)) => ("reachable: planned with server-side dry runs".to_owned(), Some(target)),
        Ok(Err(e)) => (format!("not reachable ({e}): planned against an empty cluster"), None),
        Err(_) => ("not reachable (timed out): planned against an empty cluster".to_owned(), None),
    };
    let dry_run = Mode::Apply(RunOptions { dry_run: true, ..RunOptions::default() });
    let reports: Vec<RunReport> = config
        .pipelines_in_order()
        .into_iter()
        .map(|p| rt.block_on(moor.reconcile(&prepared, p, target.as_ref(), dry_run, &|_| {})))
        .collect();
    let pipelines: Vec<PipelinePlan<'_>> = reports.iter().map(PipelinePlan::of).collect();
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
                        Action::Created => "+",
                        Action::Configured | Action::Recreated => "~",
                        Action::Pruned => "-",
                        _ => "=",
                    };
                    let origin = if c.origin.is_empty() { String::new() } else { format!(" ({})", c.origin) };
                    writeln!(out, "  {mark} {} {}{origin}", c.action.planned().unwrap_or_default(), c.object)?;
                }
                for f in &p.findings {
                    writeln!(out, "  {f}")?;
                }
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
