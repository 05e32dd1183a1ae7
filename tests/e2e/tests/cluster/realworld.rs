//! Public manifests through Moor on the real control plane (issue #10, part 5): what Moor
//! applies is exactly what `kubectl apply --server-side` would have, and a re-run changes
//! nothing.

use moor::apply::Action;
use std::path::Path;

use moor_e2e::{Project, ReportExt, cluster};

/// Argo CD's whole install manifest into one namespace: applied, checked with `kubectl diff
/// --server-side` (no difference), then applied again with nothing to do.
#[tokio::test]
async fn argo_cds_install_manifest_applies_exactly_as_kubectl_would_and_reapplies_with_no_change() -> anyhow::Result<()>
{
    let c = cluster();
    let client = c.client().await?;
    let p = Project::new(&client, "argocd").await?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/realworld/argocd/install.yaml");
    std::fs::create_dir_all(p.dir.path().join("tree"))?;
    std::fs::copy(&manifest, p.dir.path().join("tree/install.yaml"))?;
    p.config(
        "[[pipeline]]\nname = \"{ns}\"\nsource = \"local\"\ntarget_namespace = \"{ns}\"\nhealth_timeout = \"180s\"\n",
    );

    let first = p.apply_ok(&p.ns).await;
    assert_eq!(
        first.count(Action::Created) + first.count(Action::Configured) + first.count(Action::Unchanged),
        59,
        "{first:?}"
    );
    assert!(first.is_healthy(), "{:?}", first.object_health());

    // kubectl, as another field manager, would apply nothing different.
    let out =
        c.kubectl().args(["diff", "--server-side", "--force-conflicts", "-n", &p.ns, "-f"]).arg(&manifest).output()?;
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(0),
        "kubectl diff found differences (exit {:?}):\n{diff}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );

    let again = p.apply_ok(&p.ns).await;
    assert_eq!(
        (
            again.count(Action::Created),
            again.count(Action::Configured),
            again.count(Action::Recreated),
            again.count(Action::Pruned)
        ),
        (0, 0, 0, 0),
        "{again:?}"
    );
    assert_eq!(again.count(Action::Unchanged), 59);
    Ok(())
}
