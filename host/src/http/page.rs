//! The status page: one server-rendered HTML document, no scripts. Every value from the
//! config, the cluster or a plugin is escaped.

use std::fmt::Write;

use crate::schedule::status::{PipelineStatus, RunRecord, State, Status};

/// Escapes text for HTML element content and quoted attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24;background:#fafbfc}\
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:0}\
.meta{color:#57606a;font-size:.9rem;margin-bottom:1rem}\
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.8rem 1rem;margin:.8rem 0}\
.state{display:inline-block;border-radius:1rem;padding:0 .6rem;font-size:.85rem;margin-left:.5rem}\
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}.other{background:#eaeef2;color:#24292f}\
table{border-collapse:collapse;margin:.4rem 0}td,th{padding:.15rem .7rem .15rem 0;text-align:left;font-size:.9rem;vertical-align:top}\
th{color:#57606a;font-weight:500}pre{background:#f6f8fa;padding:.5rem;white-space:pre-wrap;font-size:.85rem;margin:.3rem 0}\
.error{border-color:#cf222e}form{display:inline}input[type=password]{width:9rem}\
code{font-size:.85rem}.banner{background:#ffebe9;border:1px solid #cf222e;padding:.6rem;border-radius:6px}";

/// The whole page.
pub fn render(status: &Status) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>moor: {}</title>\
         <meta http-equiv=refresh content=10><style>{STYLE}</style></head><body>",
        esc(&status.instance)
    );
    let role = match (&status.shard, status.leader) {
        (Some(_), true) => "shard member",
        (Some(_), false) => "shard member, fenced: its Lease is not renewed",
        (None, true) => "leader",
        (None, false) => "standby",
    };
    let _ = write!(
        h,
        "<h1>moor · {}</h1><div class=meta>{} · {} · config <code>{}</code> loaded {} · up since {}</div>",
        esc(&status.instance),
        esc(&status.identity),
        role,
        esc(&status.config_file),
        esc(&status.config_loaded),
        esc(&status.started)
    );
    if let Some(source) = &status.config_source {
        let _ = write!(h, "<div class=meta id=config-source>running <code>{}</code></div>", esc(source));
    }
    if let Some(shard) = &status.shard {
        let _ = write!(
            h,
            "<div class=meta id=shard>shard of {} member(s): {} · owns {} of {} pipeline(s)</div>",
            shard.members.len(),
            esc(&shard.members.join(", ")),
            shard.owned.len(),
            status.pipelines.len()
        );
    }
    if let Some(e) = &status.config_error {
        let _ = write!(
            h,
            "<div class=banner id=config-error><b>The config was rejected; the previous config keeps running.</b><pre>{}</pre></div>",
            esc(e)
        );
    }
    for t in status.tenants.iter().filter(|t| t.error.is_some()) {
        let what = if t.held {
            "is held: none of its pipelines run or are removed".to_owned()
        } else {
            format!("keeps running {}", t.revision.as_deref().map(crate::source::short).unwrap_or_default())
        };
        let _ = write!(
            h,
            "<div class=banner id='tenant-{}'><b>The config of tenant {} was rejected; it {}.</b><pre>{}</pre></div>",
            esc(&t.name),
            esc(&t.name),
            esc(&what),
            esc(t.error.as_deref().unwrap_or_default())
        );
    }
    // The platform's own pipelines, then each tenant's under its name.
    let mut tenant = None;
    for p in &status.pipelines {
        if p.tenant != tenant {
            tenant.clone_from(&p.tenant);
            let name = esc(p.tenant.as_deref().unwrap_or_default());
            let _ =
                write!(h, "<h2 class=tenant id='tenant-group-{name}'>tenant <a href='/?tenant={name}'>{name}</a></h2>");
        }
        pipeline(&mut h, p);
    }
    h.push_str("</body></html>");
    h
}

fn pipeline(h: &mut String, p: &PipelineStatus) {
    let failed = p.last_run.as_ref().is_some_and(|r| !r.ok);
    let state_class = match (p.state, failed) {
        (_, true) | (State::Blocked, _) => "bad",
        (State::Idle | State::Running, false) => "ok",
        _ => "other",
    };
    let _ = write!(
        h,
        "<div class='card{}' id='pipeline-{}'><h2>{}<span class='state {state_class}'>{}</span>",
        if failed { " error" } else { "" },
        esc(&p.name),
        esc(&p.name),
        esc(p.state.as_str())
    );
    if p.suspended {
        h.push_str("<span class='state other'>suspended</span>");
    }
    if let Some(q) = p.queued {
        let _ = write!(h, "<span class='state other'>queued: {}</span>", esc(q.as_str()));
    }
    h.push_str("</h2>");
    if let Some(reason) = &p.reason {
        let _ = write!(h, "<div>{}</div>", esc(reason));
    }
    let _ = write!(
        h,
        "<div class=meta>source <code>{}</code> · every {}s{}{}{} · {} run(s)</div>",
        esc(&p.source),
        p.interval_seconds,
        if p.depends_on.is_empty() {
            String::new()
        } else {
            format!(" · depends on {}", esc(&p.depends_on.join(", ")))
        },
        if p.wait_for.is_empty() { String::new() } else { format!(" · waits for {}", esc(&p.wait_for.join(", "))) },
        p.next_run_in_seconds.map(|s| format!(" · next run in {s:.0}s")).unwrap_or_default(),
        p.runs
    );
    match &p.last_run {
        Some(run) => last_run(h, run),
        None => h.push_str("<div>No run yet.</div>"),
    }
    if let Some(e) = &p.notify_error {
        let _ = write!(h, "<div>Last notification failed: <code>{}</code></div>", esc(e));
    }
    h.push_str("<table><tr><th>step</th><th>plugin</th><th>granted</th></tr>");
    for step in &p.plugins {
        let mut granted = step.capabilities.join("; ");
        if !step.allow_hosts.is_empty() {
            granted.push_str(&format!("; hosts: {}", step.allow_hosts.join(", ")));
        }
        if let Some(e) = &step.error {
            granted = format!("not loaded: {e}");
        }
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{} {} <small>{}</small></td><td>{}</td></tr>",
            esc(step.chain),
            esc(&step.plugin),
            esc(step.version.as_deref().unwrap_or("")),
            esc(step.flavor.unwrap_or("")),
            esc(&granted)
        );
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<form method=post action='/ui/pipelines/{}/reconcile'><input type=password name=token placeholder='API token' required> \
         <button type=submit>Force run</button></form></div>",
        esc(&p.name)
    );
}

fn last_run(h: &mut String, run: &RunRecord) {
    let revision = match &run.revision_url {
        Some(url) => format!("<a href='{}'>{}</a>", esc(url), esc(&run.revision)),
        None => format!("<code>{}</code>", esc(&run.revision)),
    };
    let c = &run.counts;
    let _ = write!(
        h,
        "<table class=run><tr><th>last run</th><td>{} ({}) → {}, {:.2}s, {}</td></tr>\
         <tr><th>revision</th><td>{revision}</td></tr>\
         <tr><th>objects</th><td>discovered {} · applied {} · unchanged {} · pruned {} · ignored {} · in sync {}</td></tr></table>",
        esc(&run.started),
        esc(run.trigger.as_str()),
        esc(&run.finished),
        run.latency_seconds,
        if run.ok { "succeeded" } else { "failed" },
        c.discovered,
        c.applied,
        c.unchanged,
        c.pruned,
        c.ignored,
        c.in_sync
    );
    if let Some(e) = &run.error {
        let stage = run.stage.map_or("run", crate::stage::Stage::as_str);
        let _ = write!(
            h,
            "<p class=run-stage>failed at stage <b>{}</b></p><pre class=run-error>{}</pre>",
            esc(stage),
            esc(e)
        );
    }
    if !run.diagnostics.is_empty() {
        let _ = write!(h, "<pre class=diagnostics>{}</pre>", esc(&run.diagnostics.join("\n")));
    }
    if !run.files.is_empty() {
        h.push_str("<details><summary>files applied</summary><table>");
        for f in &run.files {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{} changed</td><td>{} unchanged</td></tr>",
                esc(&f.file),
                f.counts.changed,
                f.counts.unchanged
            );
        }
        h.push_str("</table></details>");
    }
    if !run.ignored.is_empty() {
        let _ = write!(h, "<details><summary>ignored</summary><pre>{}</pre></details>", esc(&run.ignored.join("\n")));
    }
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
