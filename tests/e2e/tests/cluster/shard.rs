//! Sharding (`moor run --shard`): replicas split the pipelines through their Leases. Three
//! replicas and 30 pipelines: each pipeline is applied once, by one member, and pipelines
//! joined by `depends_on` share a member; a member killed with SIGKILL has its pipelines
//! taken over within 20 s; a new member takes its share; no two runs of a pipeline overlap
//! (the run times every member reports).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use moor_e2e::{Controller, Project, cluster, eventually};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");
const PIPELINES: usize = 30;

async fn member(config: &std::path::Path, identity: &str) -> anyhow::Result<Controller> {
    Controller::start(BIN, config, &["--shard", "--lease-duration", "6s", "--identity", identity], &[]).await
}

/// Each member's status, by identity.
async fn statuses(members: &BTreeMap<String, Controller>) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for (id, m) in members {
        out.insert(id.clone(), m.status().await?);
    }
    Ok(out)
}

fn owned(status: &Value) -> BTreeSet<String> {
    status["shard"]["owned"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect()
}

fn pipeline<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["pipelines"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()
}

/// The run spans (started, finished) of every pipeline, with the member that ran each.
type Spans = BTreeMap<String, BTreeSet<(String, String, String)>>;

fn collect_spans(spans: &mut Spans, statuses: &BTreeMap<String, Value>) {
    for (id, status) in statuses {
        for p in status["pipelines"].as_array().unwrap() {
            let entry = spans.entry(p["name"].as_str().unwrap().to_owned()).or_default();
            for run in p["history"].as_array().unwrap() {
                let (s, f) = (run["started"].as_str().unwrap(), run["finished"].as_str().unwrap());
                entry.insert((s.to_owned(), f.to_owned(), id.clone()));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn members_split_pipelines_take_over_and_never_overlap() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "shard").await?;
    let mut pipelines = String::new();
    for i in 0..PIPELINES {
        p.file(
            &format!("p{i}/cm.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: p{i}, namespace: {{ns}}}}\n"),
        );
        let depends = if i == 1 { "depends_on = [\"p0\"]\n" } else { "" };
        pipelines.push_str(&format!(
            "[[pipeline]]\nname = \"p{i}\"\nsource = \"local\"\npath = \"p{i}\"\ninterval = \"1h\"\n{depends}\n"
        ));
    }
    let config = p.config(&pipelines);

    // Started together, as a Deployment's replicas are.
    let (a, b, c) = tokio::join!(member(&config, "r1"), member(&config, "r2"), member(&config, "r3"));
    let mut members: BTreeMap<String, Controller> =
        [("r1", a?), ("r2", b?), ("r3", c?)].into_iter().map(|(id, m)| (id.to_owned(), m)).collect();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    eventually(60, "every pipeline applied", || async {
        let names = configmaps.list(&ListParams::default()).await?;
        let n = names.items.iter().filter(|cm| cm.metadata.name.as_deref().is_some_and(|n| n.starts_with('p'))).count();
        Ok((n == PIPELINES).then_some(()))
    })
    .await?;
    let settled = eventually(30, "each pipeline owned by one member, run once", || async {
        let s = statuses(&members).await?;
        let all: Vec<BTreeSet<String>> = s.values().map(owned).collect();
        let total: usize = all.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<&String> = all.iter().flatten().collect();
        let runs_done = (0..PIPELINES)
            .all(|i| s.values().map(|st| pipeline(st, &format!("p{i}"))["runs"].as_u64().unwrap()).sum::<u64>() >= 1);
        Ok((total == PIPELINES && union.len() == PIPELINES && runs_done).then_some(s))
    })
    .await?;
    for i in 0..PIPELINES {
        let name = format!("p{i}");
        let runs: Vec<u64> = settled.values().map(|s| pipeline(s, &name)["runs"].as_u64().unwrap()).collect();
        assert_eq!(runs.iter().sum::<u64>(), 1, "{name} is applied once, by one member: {runs:?}");
    }
    for (id, s) in &settled {
        assert_eq!(s["shard"]["members"].as_array().unwrap().len(), 3, "{id}: {s}");
        assert!(!owned(s).is_empty(), "{id} owns a share");
        for name in owned(s) {
            assert_eq!(pipeline(s, &name)["runs"], 1, "{id} ran what it owns");
        }
        let other = (0..PIPELINES).map(|i| format!("p{i}")).find(|n| !owned(s).contains(n)).unwrap();
        assert_eq!(pipeline(s, &other)["state"], "elsewhere");
    }
    let owner_of = |s: &BTreeMap<String, Value>, name: &str| {
        s.iter().find(|(_, st)| owned(st).contains(name)).map(|(id, _)| id.clone()).unwrap()
    };
    assert_eq!(owner_of(&settled, "p0"), owner_of(&settled, "p1"), "a dependency and its dependent share a member");
    let (_, metrics) = members["r1"].get_text("/metrics").await?;
    assert!(metrics.contains("moor_shard_members{shard=\"r1\"} 3"), "{metrics}");
    let (_, page) = members["r2"].get_text("/").await?;
    assert!(page.contains("id=shard") && page.contains("shard of 3 member(s)"), "{page}");
    let mut spans = Spans::new();
    collect_spans(&mut spans, &settled);

    // SIGKILL one member: the others take its pipelines over within 20 s.
    let victim = owner_of(&settled, "p5");
    let lost = owned(&settled[&victim]);
    let mut killed = members.remove(&victim).unwrap();
    killed.child.kill()?;
    killed.child.wait()?;
    let t0 = Instant::now();
    let taken = eventually(40, "the killed member's pipelines run elsewhere", || async {
        let s = statuses(&members).await?;
        let done = lost.iter().all(|name| {
            s.values().any(|st| owned(st).contains(name) && pipeline(st, name)["runs"].as_u64().unwrap() >= 1)
        });
        Ok(done.then_some(s))
    })
    .await?;
    let took = t0.elapsed();
    eprintln!("the killed member's {} pipeline(s) were taken over in {took:?}", lost.len());
    assert!(took < Duration::from_secs(20), "taken over in {took:?}");
    assert!(taken.values().all(|s| s["shard"]["members"].as_array().unwrap().len() == 2));
    collect_spans(&mut spans, &taken);

    // A new member takes its share from the others.
    members.insert("r4".into(), member(&config, "r4").await?);
    let joined = eventually(40, "the new member to run its share", || async {
        let s = statuses(&members).await?;
        let mine = owned(&s["r4"]);
        let ran = !mine.is_empty() && mine.iter().all(|n| pipeline(&s["r4"], n)["runs"].as_u64().unwrap() >= 1);
        let total: usize = s.values().map(|st| owned(st).len()).sum();
        Ok((ran && total == PIPELINES).then_some(s))
    })
    .await?;
    for (id, s) in &joined {
        assert_eq!(s["shard"]["members"].as_array().unwrap().len(), 3, "{id}");
    }
    collect_spans(&mut spans, &joined);

    // No two runs of a pipeline overlap, whichever members ran them.
    for (name, runs) in &spans {
        let runs: Vec<_> = runs.iter().collect();
        for pair in runs.windows(2) {
            let ((_, finished, by), (started, _, next)) = (pair[0], pair[1]);
            assert!(
                started >= finished,
                "{name}: a run by {next} started at {started}, before {by}'s ended at {finished}"
            );
        }
    }
    assert!(spans.values().map(BTreeSet::len).sum::<usize>() > PIPELINES, "takeovers ran pipelines again");
    Ok(())
}
