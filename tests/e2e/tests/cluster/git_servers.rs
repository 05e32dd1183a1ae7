//! Git sources against real git servers (FA-1 end to end, issue #16): `git http-backend`
//! behind lighttpd with TLS from a test CA and basic auth, and a repository over
//! openssh-server with a deploy key. Credentials, the CA and the known host keys come
//! from Secrets; a wrong password, an untrusted CA, an unknown host key and a wrong key
//! each fail only their own pipeline, with an error that says why and leaks nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use moor_e2e::{Project, cluster, free_port, git};
use serde_json::json;

use super::helm_repo::{Served, start};

/// Bare repositories `dir/repos/<name>.git`, each holding `apps/cm.yaml`, a ConfigMap
/// named after the repository in `ns`.
fn repositories(dir: &Path, ns: &str, names: &[&str]) {
    for name in names {
        let work = dir.join("work").join(name);
        std::fs::create_dir_all(work.join("apps")).unwrap();
        std::fs::write(
            work.join("apps/cm.yaml"),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  from: git\n"
            ),
        )
        .unwrap();
        git(&work, &["init", "-q"]);
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "manifests"]);
        let bare = dir.join("repos").join(format!("{name}.git"));
        git(dir, &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    }
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA (`ca.crt`) and a certificate it signed for 127.0.0.1 (`server.pem`: the
/// certificate and its key).
fn test_ca(dir: &Path) {
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=moor-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    let pem = [std::fs::read(dir.join("server.crt")).unwrap(), std::fs::read(dir.join("server.key")).unwrap()].concat();
    std::fs::write(dir.join("server.pem"), pem).unwrap();
}

/// lighttpd on `port` with TLS (`server.pem`), running `git http-backend` for
/// `dir/repos` to `user` with `password` only.
fn git_over_https(dir: &Path, port: u16, user: &str, password: &str) -> Served {
    std::fs::write(dir.join("users"), format!("{user}:{password}\n")).unwrap();
    let d = dir.display();
    let config = format!(
        r#"server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi", "mod_openssl")
server.bind = "127.0.0.1"
server.port = {port}
server.document-root = "{d}/repos"
server.errorlog = "{d}/lighttpd.log"
ssl.engine = "enable"
ssl.pemfile = "{d}/server.pem"
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/")
cgi.assign = ("" => "")
setenv.set-environment = ("GIT_PROJECT_ROOT" => "{d}/repos", "GIT_HTTP_EXPORT_ALL" => "1")
auth.backend = "plain"
auth.backend.plain.userfile = "{d}/users"
auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
"#
    );
    std::fs::write(dir.join("lighttpd.conf"), config).unwrap();
    start(Command::new("lighttpd").arg("-D").arg("-f").arg(dir.join("lighttpd.conf")), dir, port)
}

async fn secret(client: &kube::Client, ns: &str, name: &str, data: serde_json::Value) -> anyhow::Result<()> {
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))?;
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await?;
    Ok(())
}

/// One source and pipeline per `(name, url, git keys)`: the pipeline applies `apps/`.
fn pipelines(cases: &[(&str, String, String)]) -> String {
    cases
        .iter()
        .map(|(name, url, keys)| {
            format!(
                "[[source]]\nname = \"{name}\"\ngit = {{ url = \"{url}\", ref = \"main\"{keys} }}\n\n\
                 [[pipeline]]\nname = \"{name}\"\nsource = \"{name}\"\npath = \"apps\"\n\n"
            )
        })
        .collect()
}

/// Applies `p`: only pipeline `ok` succeeds and applies its ConfigMap; every other one
/// fails, applies nothing and names none of `secrets` in its error. Their errors, by name.
async fn only_applied(p: &Project, ok: &str, secrets: &[&str]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut failed = BTreeMap::new();
    for result in p.apply().await? {
        match (result.ok, result.pipeline == ok) {
            (true, true) => {}
            (false, false) => drop(failed.insert(result.pipeline, result.error.unwrap_or_default())),
            (ok, _) => panic!("pipeline {} ok = {ok}: {:?}", result.pipeline, result.error),
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(cluster().client().await?, &p.ns);
    assert_eq!(cms.get(ok).await?.data.unwrap_or_default()["from"], "git");
    for (name, error) in &failed {
        for secret in secrets {
            assert!(!error.contains(secret), "{name}'s error leaks `{secret}`: {error}");
        }
        assert!(cms.get_opt(name).await?.is_none(), "{name} was applied");
    }
    Ok(failed)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_basic_auth_and_a_test_ca_from_a_secret() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "git-https").await?;
    let dir = p.dir.path().join("server");
    std::fs::create_dir_all(&dir)?;
    repositories(&dir, &p.ns, &["trusted", "wrong-password", "untrusted-ca", "no-login"]);
    test_ca(&dir);
    let port = free_port();
    let _server = git_over_https(&dir, port, "deploy-bot", "correct-horse");
    let ca = std::fs::read_to_string(dir.join("ca.crt"))?;
    let ns = &p.ns;
    secret(&client, ns, "git-login", json!({"username": "deploy-bot", "password": "correct-horse", "ca.crt": ca}))
        .await?;
    secret(&client, ns, "git-bad-login", json!({"username": "deploy-bot", "password": "battery-staple", "ca.crt": ca}))
        .await?;
    secret(&client, ns, "git-login-no-ca", json!({"username": "deploy-bot", "password": "correct-horse"})).await?;
    std::fs::write(p.dir.path().join("ca.crt"), &ca)?;
    let url = |repo: &str| format!("https://127.0.0.1:{port}/git/{repo}.git");
    let login = |name: &str| format!(", credentials = {{ secret = \"{ns}/{name}\" }}");
    p.config(&pipelines(&[
        ("trusted", url("trusted"), login("git-login")),
        ("wrong-password", url("wrong-password"), login("git-bad-login")),
        ("untrusted-ca", url("untrusted-ca"), login("git-login-no-ca")),
        // The CA from the config's directory, and no login.
        ("no-login", url("no-login"), ", ca_file = \"ca.crt\"".into()),
    ]));

    let failed = only_applied(&p, "trusted", &["correct-horse", "battery-staple", "BEGIN CERTIFICATE"]).await?;
    let error = &failed["wrong-password"];
    assert!(error.contains("source `wrong-password`") && error.contains("not accepted"), "{error}");
    let error = &failed["untrusted-ca"];
    assert!(error.contains("UnknownIssuer"), "{error}");
    let error = &failed["no-login"];
    assert!(error.contains("asks for a login") && error.contains("no `credentials`"), "{error}");
    Ok(())
}

/// openssh-server on `port`, serving this user's shell (so `git-upload-pack`) to the
/// holders of the keys in `dir/authorized_keys`, with the host key `dir/host_key`.
fn git_over_ssh(dir: &Path, port: u16) -> Served {
    let d = dir.display();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\n"
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    // sshd's privilege separation directory, which Debian's service would create.
    std::fs::create_dir_all("/run/sshd").unwrap();
    start(Command::new("/usr/sbin/sshd").args(["-D", "-e", "-f"]).arg(dir.join("sshd_config")), dir, port)
}

fn keygen(dir: &Path, name: &str) -> (String, String) {
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(dir.join(name)));
    let read = |file: String| std::fs::read_to_string(dir.join(file)).unwrap();
    (read(name.to_owned()), read(format!("{name}.pub")))
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_with_a_deploy_key_and_known_hosts_from_a_secret() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "git-ssh").await?;
    let dir = p.dir.path().join("server");
    std::fs::create_dir_all(&dir)?;
    repositories(&dir, &p.ns, &["deploy-key", "unknown-host", "wrong-key"]);
    let (_, host_key) = keygen(&dir, "host_key");
    let (_, impostor_host_key) = keygen(&dir, "impostor_host_key");
    let (deploy_key, deploy_pub) = keygen(&dir, "deploy_key");
    let (other_key, _) = keygen(&dir, "other_key");
    std::fs::write(dir.join("authorized_keys"), deploy_pub)?;
    let port = free_port();
    let _server = git_over_ssh(&dir, port);
    let known =
        |key: &str| format!("[127.0.0.1]:{port} {}\n", key.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
    let ns = &p.ns;
    let pair = |identity: &str, host: &str| json!({"identity": identity, "known_hosts": known(host)});
    secret(&client, ns, "git-deploy-key", pair(&deploy_key, &host_key)).await?;
    secret(&client, ns, "git-impostor", pair(&deploy_key, &impostor_host_key)).await?;
    secret(&client, ns, "git-other-key", pair(&other_key, &host_key)).await?;
    let user = String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?.trim().to_owned();
    let url = |repo: &str| format!("ssh://{user}@127.0.0.1:{port}{}/repos/{repo}.git", dir.display());
    let login = |name: &str| format!(", credentials = {{ secret = \"{ns}/{name}\" }}");
    p.config(&pipelines(&[
        ("deploy-key", url("deploy-key"), login("git-deploy-key")),
        ("unknown-host", url("unknown-host"), login("git-impostor")),
        ("wrong-key", url("wrong-key"), login("git-other-key")),
    ]));

    let key_line = deploy_key.lines().nth(1).unwrap();
    let failed = only_applied(&p, "deploy-key", &["PRIVATE KEY", key_line]).await?;
    let error = &failed["unknown-host"];
    assert!(error.contains("source `unknown-host`") && error.contains("Host key verification failed"), "{error}");
    let error = &failed["wrong-key"];
    assert!(error.contains("Permission denied (publickey)"), "{error}");
    Ok(())
}
