//! `moor apply` and `moor diff`: the commands that talk to a cluster.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use super::{Color, Output};
use crate::apply::{self, Action, Health, Kubeconfig, Report, RunOptions, Target};
use crate::reconcile::Mode;

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Progress lines on stderr when it is a terminal.
fn progress_printer() -> impl Fn(&str) + Sync {
    let tty = std::io::stderr().is_terminal();
    move |line: &str| {
        if tty {
            eprintln!("  {line}");
        }
    }
}

pub fn apply(
    cache: &Path,
    file: &Path,
    only: Option<&str>,
    run: RunOptions,
    output: Output,
    kubeconfig: &Kubeconfig,
) -> anyhow::Result<ExitCode> {
    let (moor, config) = super::load(cache, file, only, Some(kubeconfig))?;
    let progress = progress_printer();
    if config.settings.instance_derived {
        progress(&format!("instance {} (derived from the config's path)", config.settings.instance));
    }
    let ran = runtime()?.block_on(async {
        let target = Target::connect(kubeconfig).await?;
        anyhow::Ok(moor.apply_config(config.clone(), &target, only, run, &progress).await)
    })?;
    let results = &ran.results;
    for note in &ran.notes {
        eprintln!("note: {note}");
    }

    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&ran)?)?,
        Output::Text => {
            for r in results {
                if let Some(report) = &r.report {
                    writeln!(out, "{}", summary(&r.pipeline, &r.revision, report))?;
                }
                match &r.error {
                    Some(error) if r.ok => writeln!(out, "pipeline {}: {error}", r.pipeline)?,
                    Some(error) => writeln!(out, "pipeline {}: FAILED: {error}", r.pipeline)?,
                    None => {}
                }
            }
        }
    }
    Ok(if results.iter().all(|r| r.ok) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// One line per pipeline: counts and health, then what was left alone and why.
pub(super) fn summary(pipeline: &str, revision: &str, r: &Report) -> String {
    let verb = if r.dry_run { " (dry run: nothing changed)" } else { "" };
    let mut line = format!(
        "pipeline {pipeline} @ {}{verb}: {} created, {} configured, {} unchanged, {} pruned, {} skipped",
        crate::source::short(revision),
        r.count(Action::Created),
        r.count(Action::Configured) + r.count(Action::Recreated),
        r.count(Action::Unchanged),
        r.count(Action::Pruned),
        r.count(Action::Skipped),
    );
    if r.count(Action::Orphaned) > 0 {
        line.push_str(&format!(", {} orphaned", r.count(Action::Orphaned)));
    }
    match &r.health {
        Health::NotChecked => {}
        Health::Ready => line.push_str("; healthy"),
        Health::Failed(_) => line.push_str("; NOT healthy"),
    }
    for o in r.objects.iter().filter(|o| o.why.is_some()) {
        line.push_str(&format!("\n  {}: {}", o.key, o.why.as_deref().unwrap_or_default()));
    }
    line
}

pub fn diff(
    cache: &Path,
    file: &Path,
    only: Option<&str>,
    color: Color,
    kubeconfig: &Kubeconfig,
) -> anyhow::Result<ExitCode> {
    let (moor, config) = super::load(cache, file, only, Some(kubeconfig))?;
    let colored = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal(),
    };
    let progress = |_: &str| {};
    let mut differs = false;
    let mut failed = false;
    runtime()?.block_on(async {
        let target = Target::connect(kubeconfig).await?;
        let prepared = moor.prepare(config.clone());
        let mut out = std::io::stdout().lock();
        for pipeline in config.pipelines_in_order() {
            if only.is_some_and(|o| o != pipeline.name) {
                continue;
            }
            let report = moor.reconcile(&prepared, pipeline, Some(&target), Mode::Diff, &progress).await;
            if let Some(e) = report.error() {
                failed = true;
                eprintln!("error: pipeline `{}`: {e}", pipeline.name);
                continue;
            }
            let diffs = report.diffs;
            for d in diffs.iter().filter(|d| d.change != Action::Unchanged) {
                differs = true;
                let what = d.change.planned().unwrap_or_default();
                writeln!(
                    out,
                    "{} {} ({what}){}",
                    pipeline.name,
                    d.object,
                    if d.origin.is_empty() { String::new() } else { format!(" from {}", d.origin) }
                )?;
                for line in d.diff.lines() {
                    let painted = match (colored, line.chars().next()) {
                        (true, Some('+')) if !line.starts_with("+++") => format!("\x1b[32m{line}\x1b[0m"),
                        (true, Some('-')) if !line.starts_with("---") => format!("\x1b[31m{line}\x1b[0m"),
                        (true, Some('@')) => format!("\x1b[36m{line}\x1b[0m"),
                        _ => line.to_owned(),
                    };
                    writeln!(out, "{painted}")?;
                }
            }
        }
        anyhow::Ok(())
    })?;
    // Like `diff(1)` and `kubectl diff`: 0 same, 1 different, >1 trouble.
    Ok(if failed {
        ExitCode::from(2)
    } else if differs {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `moor delete`: deletes what pipelines of the config's instance applied, then their
/// inventories. Every pipeline of the instance that has an inventory, or only `only`.
pub fn delete(
    cache: &Path,
    file: &Path,
    only: Option<&str>,
    dry_run: bool,
    yes: bool,
    kubeconfig: &Kubeconfig,
) -> anyhow::Result<ExitCode> {
    let (_, config) = super::load(cache, file, None, Some(kubeconfig))?;
    let settings = &config.settings;
    let progress = progress_printer();
    runtime()?.block_on(async {
        let target = Target::connect(kubeconfig).await?;
        let store = target.inventories(settings);
        let census = apply::remove::Census::take(&store).await?;
        // Inventories are by label (`team-a.web` for tenant `team-a`'s `web`); `only` is a name.
        let chosen: Vec<&String> =
            census.ours.keys().filter(|label| only.is_none_or(|o| o == config.name_of(label))).collect();
        if chosen.is_empty() {
            let which = only.map_or_else(|| "no pipeline".to_owned(), |p| format!("pipeline `{p}`"));
            anyhow::bail!(
                "{which} of instance `{}` has an inventory in {}: nothing to delete",
                settings.instance,
                settings.namespace
            );
        }
        let objects: usize = chosen.iter().map(|p| census.ours[*p]).sum();
        let names: Vec<&str> = chosen.iter().map(|p| p.as_str()).collect();
        if !dry_run && !yes {
            confirm(&format!(
                "delete {objects} object(s) of pipeline(s) {} (instance {})?",
                names.join(", "),
                settings.instance
            ))?;
        }
        let mut failed = false;
        let mut out = std::io::stdout().lock();
        for pipeline in chosen {
            let default = crate::config::PruneGuard::default();
            let guard = config.pipeline(&config.name_of(pipeline)).map_or(&default, |p| &p.prune_guard);
            let why = apply::remove::Why::Deleted { guard, dry_run };
            let removed = match store.load(pipeline).await {
                Ok(inventory) => apply::remove::remove(&target, &config, pipeline, &inventory, why, &progress).await,
                Err(e) => Err(e.into()),
            };
            match removed {
                Ok(report) => {
                    let verb = if dry_run { "would delete" } else { "deleted" };
                    let (pruned, kept) = (report.count(Action::Pruned), report.count(Action::Orphaned));
                    writeln!(out, "pipeline {pipeline}: {verb} {pruned} object(s), kept {kept}")?;
                    for o in &report.objects {
                        match (o.action, &o.why) {
                            (Action::Pruned, _) => writeln!(out, "  {}: {verb}", o.key)?,
                            (_, Some(why)) => writeln!(out, "  {}: kept: {why}", o.key)?,
                            (_, None) => {}
                        }
                    }
                }
                Err(e) => {
                    failed = true;
                    writeln!(out, "pipeline {pipeline}: FAILED: {e}")?;
                }
            }
        }
        anyhow::Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    })
}

/// Asks `question` on the terminal; anything but `y`/`yes` declines. Without a terminal
/// on stdin there is nobody to ask: `--yes` is needed.
fn confirm(question: &str) -> anyhow::Result<()> {
    anyhow::ensure!(std::io::stdin().is_terminal(), "stdin is not a terminal: pass --yes to delete without asking");
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    anyhow::ensure!(matches!(answer.trim(), "y" | "Y" | "yes"), "nothing deleted");
    Ok(())
}
