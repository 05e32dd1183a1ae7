//! #16's control-plane faults in controller mode. Each must give a clear per-pipeline
//! error, a retry with backoff, nothing pruned wrongly, other pipelines unaffected, and
//! `/healthz` up.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use moor_e2e::{Controller, Project, cluster, eventually};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");

fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: '{{ns}}'\ndata:\n  value: {value}\n"
    )
}

/// Another field manager owns a field the pipeline sets, and the pipeline does not take
/// fields from others (`force = false`; by default it does, as Flux does): the pipeline
/// fails naming the object and the manager, and is retried with backoff until the other tool lets go; the
/// object is never deleted, and another pipeline runs on.
#[tokio::test(flavor = "multi_thread")]
async fn a_conflicting_field_manager_fails_only_its_pipeline_until_it_lets_go() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "fault-conflict").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    let theirs =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"value": "theirs"}});
    cms.patch("shared", &PatchParams::apply("other-tool"), &Patch::Apply(&theirs)).await?;
    p.file("fought/shared.yaml", &cm("shared", "ours"));
    p.file("calm/mine.yaml", &cm("mine", "ours"));
    let config = p.config(
        "[[pipeline]]\nname = \"fought\"\nsource = \"local\"\npath = \"fought\"\ninterval = \"1h\"\nretry_interval = \"4s\"\nforce = false\n\n\
         [[pipeline]]\nname = \"calm\"\nsource = \"local\"\npath = \"calm\"\ninterval = \"1h\"\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let fought = moor.runs("fought", 2, 60).await?;
    let run = &fought["last_run"];
    assert_eq!((run["ok"].as_bool(), run["stage"].as_str()), (Some(false), Some("plan")), "{fought}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("ConfigMap") && error.contains("shared"), "the error names the object: {error}");
    assert!(error.contains("conflict") && error.contains("other-tool"), "the error names the manager: {error}");
    assert_eq!(run["trigger"], "retry", "{fought}");
    assert!(fought["failures_in_a_row"].as_u64().unwrap_or(0) >= 2, "{fought}");
    assert_eq!(moor.pipeline("calm").await?["last_run"]["ok"], true);
    assert_eq!(moor.get_text("/healthz").await?.0, 200);
    let shared = cms.get("shared").await?;
    assert_eq!(shared.data.unwrap_or_default()["value"], "theirs", "the other tool's value was overwritten");

    // The other tool lets go of the field: the next retry applies.
    let released = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}});
    cms.patch("shared", &PatchParams::apply("other-tool"), &Patch::Apply(&released)).await?;
    eventually(30, "the retry after the other tool let go", || async {
        let run = moor.pipeline("fought").await?["last_run"].clone();
        Ok((run["ok"] == true).then_some(()))
    })
    .await?;
    assert_eq!(cms.get("shared").await?.data.unwrap_or_default()["value"], "ours");
    Ok(())
}

/// A validating admission webhook on loopback HTTPS: it refuses ConfigMaps named
/// `rejected`, with a message. Serves until dropped.
struct Webhook {
    port: u16,
    ca: Vec<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const REFUSAL: &str = "the test's policy refuses objects named `rejected`";

impl Webhook {
    async fn start(dir: &std::path::Path) -> anyhow::Result<Webhook> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=moor-test-webhook"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()?;
        anyhow::ensure!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        let chain = CertificateDer::pem_file_iter(&cert)?.collect::<Result<Vec<_>, _>>()?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, PrivateKeyDer::from_pem_file(&key)?)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let service = hyper::service::service_fn(review);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Webhook { port, ca: std::fs::read(&cert)?, task })
    }

    /// Its ValidatingWebhookConfiguration, for ConfigMaps in `namespace` only.
    fn configuration(&self, name: &str, namespace: &str) -> serde_json::Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "reject.moor.test",
                "clientConfig": {
                    "url": format!("https://127.0.0.1:{}/validate", self.port),
                    "caBundle": serde_json::to_value(k8s_openapi::ByteString(self.ca.clone())).unwrap(),
                },
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }],
        })
    }
}

/// One AdmissionReview: allowed unless the object is named `rejected`.
async fn review(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let review: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = review["request"]["object"]["metadata"]["name"].as_str().unwrap_or_default();
    let allowed = name != "rejected";
    let answer = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": allowed, "status": {"code": 403, "message": REFUSAL}},
    });
    Ok(hyper::Response::new(http_body_util::Full::new(answer.to_string().into())))
}

/// An admission webhook that rejects one object: its pipeline fails naming the object and
/// the webhook's message, and is retried; what it had applied stays; another pipeline
/// (whose objects the webhook allows) runs on. Once the webhook is gone, the retry applies.
#[tokio::test(flavor = "multi_thread")]
async fn an_admission_webhook_rejecting_one_object_fails_only_its_pipeline() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "fault-webhook").await?;
    let webhook = Webhook::start(p.dir.path()).await?;
    let name = format!("moor-test-{}", p.ns);
    let configurations: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::discovery::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: "ValidatingWebhookConfiguration".into(),
            plural: "validatingwebhookconfigurations".into(),
        },
    );
    configurations
        .patch(&name, &PatchParams::apply("moor-test"), &Patch::Apply(webhook.configuration(&name, &p.ns)))
        .await?;
    struct Unregister(Api<kube::api::DynamicObject>, String);
    impl Drop for Unregister {
        fn drop(&mut self) {
            let (api, name) = (self.0.clone(), self.1.clone());
            let _ = std::thread::spawn(move || {
                tokio::runtime::Runtime::new().unwrap().block_on(api.delete(&name, &Default::default())).ok()
            })
            .join();
        }
    }
    let _unregister = Unregister(configurations.clone(), name.clone());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &p.ns);
    // The webhook answers before the pipelines start: a ConfigMap of the test is refused.
    eventually(30, "the webhook to be called", || async {
        let refused = cms
            .patch(
                "rejected",
                &PatchParams::apply("probe").dry_run(),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rejected"}})),
            )
            .await;
        Ok(refused.err().filter(|e| e.to_string().contains("refuses")).map(|_| ()))
    })
    .await?;

    p.file("guarded/fine.yaml", &cm("fine", "one"));
    p.file("guarded/rejected.yaml", &cm("rejected", "one"));
    p.file("calm/mine.yaml", &cm("mine", "one"));
    let config = p.config(
        "[[pipeline]]\nname = \"guarded\"\nsource = \"local\"\npath = \"guarded\"\ninterval = \"1h\"\nretry_interval = \"4s\"\n\n\
         [[pipeline]]\nname = \"calm\"\nsource = \"local\"\npath = \"calm\"\ninterval = \"1h\"\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[]).await?;
    let guarded = moor.runs("guarded", 2, 60).await?;
    let run = &guarded["last_run"];
    assert_eq!(run["ok"], false, "{guarded}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("ConfigMap") && error.contains("rejected"), "the error names the object: {error}");
    assert!(error.contains(REFUSAL), "the error gives the webhook's message: {error}");
    assert_eq!(run["trigger"], "retry", "{guarded}");
    assert_eq!(moor.pipeline("calm").await?["last_run"]["ok"], true);
    assert_eq!(moor.get_text("/healthz").await?.0, 200);
    assert!(cms.get_opt("fine").await?.is_some(), "the object the webhook allowed is gone");

    drop(_unregister);
    eventually(30, "the retry once the webhook is gone", || async {
        Ok((moor.pipeline("guarded").await?["last_run"]["ok"] == true).then_some(()))
    })
    .await?;
    assert!(cms.get_opt("rejected").await?.is_some());
    drop(webhook);
    Ok(())
}
