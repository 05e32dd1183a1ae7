//! #16's chaos test: `moor apply` killed with SIGKILL at a random moment of its run (while
//! it applies, prunes, writes the inventory, or between stages), revision after revision
//! of a pipeline that adds, changes and removes objects. After each kill: every object
//! labelled for the pipeline is in its inventory (nothing can be orphaned); a re-run
//! converges to exactly the revision's objects with the revision's data; and nothing else
//! was deleted (objects of another pipeline of the instance, and unlabelled ones).
//!
//! `MOOR_CHAOS_KILLS` kills (default 10, as CI runs it; BENCHMARKS.md records a run of 100),
//! from `MOOR_CHAOS_SEED` (printed, to replay a failure).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use moor_e2e::{Project, cluster};

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const UNIVERSE: u64 = 120;

fn cm(name: &str, revision: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: '{{ns}}'\ndata:\n  revision: '{revision}'\n"
    )
}

fn moor_apply(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moor-under-test"));
    cmd.args(["apply", config.to_str().unwrap()])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("MOOR_CACHE", moor_e2e::plugin_cache())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn kills_at_random_moments_orphan_nothing_and_delete_nothing_wrongly() -> anyhow::Result<()> {
    let kills: usize = std::env::var("MOOR_CHAOS_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
    let seed: u64 = std::env::var("MOOR_CHAOS_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("chaos: {kills} kills, MOOR_CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let client = cluster().client().await?;
    let p = Project::new(&client, "chaos").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    // Bystanders: another pipeline's object of the same instance, and an unlabelled one.
    for (name, labels) in [
        ("other-pipelines", serde_json::json!({"moor.dev/pipeline": "another", "moor.dev/instance": p.instance})),
        ("unlabelled", serde_json::json!({})),
    ] {
        let object = serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))?;
        cms.create(&PostParams::default(), &object).await?;
    }
    let config = p.config("[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\nwait = false\n");
    let selector = ListParams::default().labels(&format!("moor.dev/pipeline={}", p.ns));
    let labelled = || async {
        anyhow::Ok(
            cms.list(&selector).await?.items.into_iter().filter_map(|c| c.metadata.name).collect::<BTreeSet<_>>(),
        )
    };

    let mut wanted: BTreeSet<String> = (0..60).map(|i| format!("cm-{i}")).collect();
    let mut mid_run = 0;
    let mut run_time = Duration::from_secs(2);
    for revision in 0..=kills {
        // The next revision: about a fifth removed (under the prune guard's half), a few
        // added, a third changed, the rest as they were.
        if revision > 0 {
            let removed: Vec<String> = wanted.iter().filter(|_| rng.below(5) == 0).cloned().collect();
            for name in &removed {
                wanted.remove(name);
                p.remove(&format!("{name}.yaml"));
            }
            for _ in 0..rng.below(20) {
                wanted.insert(format!("cm-{}", rng.below(UNIVERSE)));
            }
        }
        for name in &wanted {
            if revision == 0 || rng.below(3) == 0 || !p.dir.path().join(format!("tree/{name}.yaml")).exists() {
                p.file(&format!("{name}.yaml"), &cm(name, revision));
            }
        }
        if revision > 0 {
            // Killed at a random moment of a run, as long as a whole run takes.
            let mut child = moor_apply(&config).spawn()?;
            let delay = Duration::from_millis(rng.below(run_time.as_millis() as u64 + 1));
            tokio::time::sleep(delay).await;
            if child.try_wait()?.is_none() {
                mid_run += 1;
            }
            child.kill()?;
            child.wait()?;
            let inventory = p.inventory_names(&p.ns).await?;
            let orphans: Vec<String> = labelled().await?.difference(&inventory).cloned().collect();
            assert!(orphans.is_empty(), "revision {revision}, killed after {delay:?}: orphans {orphans:?}");
        }
        let started = Instant::now();
        let out = moor_apply(&config).output()?;
        assert!(
            out.status.success(),
            "revision {revision}: the re-run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        run_time = started.elapsed();

        let live = labelled().await?;
        assert_eq!(live, wanted, "revision {revision}: the cluster has not converged");
        assert_eq!(p.inventory_names(&p.ns).await?, wanted, "revision {revision}: the inventory");
        for object in cms.list(&selector).await?.items {
            let data = object.data.unwrap_or_default();
            let name = object.metadata.name.unwrap_or_default();
            let file = std::fs::read_to_string(p.dir.path().join(format!("tree/{name}.yaml")))?;
            assert!(
                file.contains(&format!("revision: '{}'", data["revision"])),
                "revision {revision}: {name} has {data:?}"
            );
        }
        for bystander in ["other-pipelines", "unlabelled"] {
            assert!(cms.get_opt(bystander).await?.is_some(), "revision {revision}: {bystander} was deleted");
        }
    }
    eprintln!("chaos: {kills} kills ({mid_run} in mid-run), orphans 0, wrong deletions 0, seed {seed}");
    assert!(kills == 0 || mid_run > 0, "no kill landed in mid-run: the test proved nothing");
    Ok(())
}
