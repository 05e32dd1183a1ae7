//! #16: the container image (deploy/image: FROM scratch, non-root), built with buildah and
//! run with podman against the test control plane: `moor run` answers `/readyz` and
//! applies the quickstart from inside the container.

use std::process::Command;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use moor_e2e::{cluster, eventually, free_port, repo_root};

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    anyhow::ensure!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Removes the container and the image, also when the test fails.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", &self.container]).output();
        let _ = Command::new("podman").args(["rmi", "-f", &self.image]).output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_from_scratch_runs_the_quickstart() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let tag = format!("{}-{}", std::process::id(), free_port());
    let image = format!("localhost/moor-test:{tag}");
    let built = run(Command::new(repo_root().join("deploy/image/build")).args([BIN, &image]))?;
    let size: u64 = built.rsplit(' ').next().unwrap_or_default().parse()?;
    eprintln!("image {image}: {size} bytes (from the debug build; `deploy/image/build` alone uses the dist build)");
    let user = run(Command::new("podman").args(["image", "inspect", "--format", "{{.Config.User}}", &image]))?;
    assert_eq!(user, "65532:65532");
    let container = format!("moor-test-{tag}");
    let _cleanup = Cleanup { container: container.clone(), image: image.clone() };

    // The quickstart in a namespace of its own, readable by the image's user.
    let ns = format!("image-{tag}");
    let dir = tempfile::tempdir()?;
    let example = repo_root().join("examples/quickstart");
    std::fs::create_dir_all(dir.path().join("manifests"))?;
    for entry in std::fs::read_dir(example.join("manifests"))? {
        let entry = entry?;
        let text = std::fs::read_to_string(entry.path())?.replace("quickstart", &ns);
        std::fs::write(dir.path().join("manifests").join(entry.file_name()), text)?;
    }
    let config = std::fs::read_to_string(example.join("moor.toml"))?;
    std::fs::write(
        dir.path().join("moor.toml"),
        config.replace("[moor]\n", &format!("[moor]\ninstance = \"{ns}\"\n")),
    )?;
    std::fs::copy(&c.kubeconfig, dir.path().join("kubeconfig"))?;
    // As these machines run containers (field notes): runc, cgroupfs, no default ulimits.
    std::fs::write(dir.path().join("containers.conf"), "[containers]\ndefault_ulimits = []\n")?;
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(dir.path()))?;

    let port = free_port();
    run(Command::new("podman")
        .env("CONTAINERS_CONF", dir.path().join("containers.conf"))
        .args(["run", "-d", "--name", &container, "--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(["--network", "host", "-v", &format!("{}:/config:ro", dir.path().display())])
        .args(["-e", "KUBECONFIG=/config/kubeconfig", "-e", "MOOR_API_TOKEN=t", "-e", "MOOR_WEBHOOK_SECRET=w"])
        .args([&image, "run", "/config/moor.toml", "--listen", &format!("127.0.0.1:{port}")]))?;
    let logs = || {
        Command::new("podman")
            .args(["logs", &container])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default()
    };
    let url = format!("http://127.0.0.1:{port}");
    let ready = eventually(60, "/readyz from inside the container", || async {
        Ok(reqwest::get(format!("{url}/readyz")).await.ok().filter(|r| r.status().is_success()).map(|_| ()))
    })
    .await;
    ready.map_err(|e| anyhow::anyhow!("{e}\n--- container log ---\n{}", logs()))?;
    let applied = eventually(60, "the quickstart applied from inside the container", || async {
        let status: serde_json::Value = reqwest::get(format!("{url}/api/v1/pipelines/hello")).await?.json().await?;
        Ok((status["last_run"]["ok"] == true).then_some(status))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- container log ---\n{}", logs()))?;
    assert_eq!(applied["last_run"]["counts"]["applied"], 4, "{applied}");
    let hello = Api::<ConfigMap>::namespaced(client.clone(), &ns).get_opt("hello").await?;
    assert!(hello.is_some(), "the quickstart's ConfigMap is not in namespace {ns}");
    let _ = c.kubectl().args(["delete", "namespace", &ns, "--wait=false"]).output();
    Ok(())
}
