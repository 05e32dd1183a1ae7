//! How a git fetch proves who it is and knows whom it talks to: HTTP accounts, SSH
//! identities, the host keys an SSH server may show and the certificates an HTTPS server
//! may chain to, from the config's files or a Secret's keys (Flux's names: `username`,
//! `password`, `identity`, `known_hosts`, `ca.crt`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{GitCredentials, GitSpec};
use crate::interrupt::Interrupt;

/// What a fetch of one URL presents and trusts. Values from the Secret live in private
/// files for the length of the fetch.
pub(super) struct Access {
    /// For `ssh` URLs: the identity, the known host keys, and where ssh writes what it says.
    ssh: Option<Ssh>,
    certificates: Option<Vec<reqwest::Certificate>>,
    account: Option<gix::sec::identity::Account>,
    /// Deleted when the fetch ends.
    _files: Vec<tempfile::TempPath>,
}

struct Ssh {
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    /// ssh's own messages (`-E`): "Host key verification failed" goes nowhere else.
    log: PathBuf,
}

impl Access {
    pub(super) fn new(
        spec: &GitSpec,
        url: &str,
        base: &Path,
        secret: Option<&BTreeMap<String, String>>,
    ) -> Result<Access, String> {
        let mut files = Vec::new();
        let mut private_file = |what: &str, value: &[u8]| -> Result<PathBuf, String> {
            let mut file = tempfile::NamedTempFile::new().map_err(|e| format!("cannot write {what}: {e}"))?;
            std::io::Write::write_all(&mut file, value).map_err(|e| format!("cannot write {what}: {e}"))?;
            let path = file.into_temp_path();
            let at = path.to_path_buf();
            files.push(path);
            Ok(at)
        };
        let from_secret = |key: &str| secret.and_then(|s| s.get(key)).map(|v| (format!("the Secret's `{key}`"), v));
        let ssh = match is_ssh(url) {
            true => Some(Ssh {
                identity: match from_secret("identity") {
                    Some((what, key)) => Some(private_file(&what, key.as_bytes())?),
                    None => spec.credentials.as_ref().and_then(|c| c.ssh_key_file.clone()),
                },
                known_hosts: match from_secret("known_hosts") {
                    Some((what, hosts)) => Some(private_file(&what, hosts.as_bytes())?),
                    None => spec.known_hosts_file.as_ref().map(|f| base.join(f)),
                },
                log: private_file("the ssh log", b"")?,
            }),
            false => None,
        };
        let pem = match (from_secret("ca.crt"), &spec.ca_file) {
            (Some((what, pem)), _) => Some((what, pem.as_bytes().to_vec())),
            (None, Some(file)) => {
                let file = base.join(file);
                let pem = std::fs::read(&file).map_err(|e| format!("cannot read `ca_file` {}: {e}", file.display()))?;
                Some((format!("`ca_file` {}", file.display()), pem))
            }
            (None, None) => None,
        };
        let certificates = match pem {
            Some((what, pem)) => match reqwest::Certificate::from_pem_bundle(&pem) {
                Ok(certificates) if !certificates.is_empty() => Some(certificates),
                Ok(_) => return Err(format!("{what} holds no PEM certificate")),
                Err(e) => return Err(format!("{what} is not a PEM certificate bundle: {e}")),
            },
            None => None,
        };
        let account = credentials(spec.credentials.as_ref(), secret)?;
        Ok(Access { ssh, certificates, account, _files: files })
    }

    /// Points `repo`'s ssh at this access's files.
    pub(super) fn configure(&self, repo: &mut gix::Repository) -> Result<(), String> {
        let Some(ssh) = &self.ssh else { return Ok(()) };
        let mut config = repo.config_snapshot_mut();
        config.set_value(&gix::config::tree::Core::SSH_COMMAND, ssh.command().as_str()).map_err(|e| e.to_string())?;
        config.commit().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// `connection` trusting this access's certificates and answering a login with its account.
    pub(super) fn connect<'remote, 'auth, 'repo, T>(
        &self,
        repo: &gix::Repository,
        url: &str,
        mut connection: gix::remote::Connection<'remote, 'auth, 'repo, T>,
        interrupt: &Interrupt,
    ) -> Result<gix::remote::Connection<'remote, 'static, 'repo, T>, String>
    where
        T: gix::protocol::transport::client::blocking_io::Transport,
    {
        if url.starts_with("https://") || url.starts_with("http://") {
            let certificates = self.certificates.clone().filter(|_| url.starts_with("https://")).unwrap_or_default();
            connection = connection.with_transport_options(http_options(repo, url, certificates, interrupt.clone())?);
        }
        let account = self.account.clone();
        Ok(connection.with_credentials(move |action| match (&action, &account) {
            (gix::credentials::helper::Action::Get(ctx), Some(account)) => {
                Ok(Some(gix::credentials::protocol::Outcome { identity: account.clone(), next: ctx.clone().into() }))
            }
            (gix::credentials::helper::Action::Get(_), None) => Err(gix::error::ErrorExt::raise(gix::error::message(
                "the server asks for a login and the source has no `credentials`",
            ))),
            _ => Ok(None),
        }))
    }

    /// `message` with what ssh said, if it said anything (its last lines, at most 1 KiB).
    pub(super) fn explain(&self, message: String) -> String {
        let said = self.ssh.as_ref().and_then(|ssh| std::fs::read(&ssh.log).ok()).unwrap_or_default();
        let said = String::from_utf8_lossy(&said);
        // The first is ssh's note on gix's probe of which ssh this is.
        let noise = |line: &str| line.is_empty() || line.starts_with("Pseudo-terminal will not be allocated");
        let lines: Vec<&str> = said.lines().map(str::trim).filter(|l| !noise(l)).collect();
        if lines.is_empty() {
            return message;
        }
        let mut told = lines.join("; ");
        if told.len() > 1024 {
            let cut = told.len() - 1024;
            let cut = (cut..told.len()).find(|&i| told.is_char_boundary(i)).unwrap_or(told.len());
            told = format!("…{}", &told[cut..]);
        }
        format!("{message} (ssh: {told})")
    }
}

impl Ssh {
    /// The `ssh` command line: never a prompt, and never a host key that is not known.
    fn command(&self) -> String {
        let quote = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
        let mut command = format!("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -E {}", quote(&self.log));
        if let Some(key) = &self.identity {
            command.push_str(&format!(" -i {} -o IdentitiesOnly=yes", quote(key)));
        }
        if let Some(file) = &self.known_hosts {
            command.push_str(&format!(" -o UserKnownHostsFile={}", quote(file)));
        }
        command
    }
}

fn is_ssh(url: &str) -> bool {
    gix::url::parse(gix::bstr::BStr::new(url)).is_ok_and(|u| u.scheme == gix::url::Scheme::Ssh)
}

/// Transport options for an HTTP(S) `url`: trusting `certificates` too, and each request
/// given at most the time the run has left, so that a server that accepts and never
/// answers holds the fetch no longer than the run's timeout.
fn http_options(
    repo: &gix::Repository,
    url: &str,
    certificates: Vec<reqwest::Certificate>,
    interrupt: Interrupt,
) -> Result<Box<dyn std::any::Any>, String> {
    use gix::protocol::transport::client::blocking_io::http;
    let mut options = repo
        .transport_options(url, None)
        .map_err(|e| format!("invalid transport configuration: {e}"))?
        .and_then(|options| options.downcast::<http::Options>().ok())
        .map(|options| *options)
        .unwrap_or_default();
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |client| Ok(client.tls_certs_merge(certificates.clone())))),
        configure_request: Some(Box::new(move |request| {
            if let Some(left) = interrupt.left() {
                *request.timeout_mut() = Some(left.max(std::time::Duration::from_millis(1)));
            }
            Ok(())
        })),
    };
    options.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(backend)));
    Ok(Box::new(options))
}

fn credentials(
    spec: Option<&GitCredentials>,
    secret: Option<&BTreeMap<String, String>>,
) -> Result<Option<gix::sec::identity::Account>, String> {
    let Some(c) = spec else { return Ok(None) };
    if let Some(secret) = secret
        && let Some(password) = secret.get("password")
    {
        return Ok(Some(gix::sec::identity::Account {
            username: secret.get("username").cloned().unwrap_or_else(|| "git".into()),
            password: password.clone(),
            oauth_refresh_token: None,
        }));
    }
    let env = |name: &String| {
        std::env::var(name).map_err(|_| format!("credentials: environment variable `{name}` is not set"))
    };
    let username = match (&c.username, &c.username_env) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(var)) => Some(env(var)?),
        (None, None) => None,
    };
    let password = match (&c.password_file, &c.password_env) {
        (Some(file), _) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| format!("credentials: cannot read password file {}: {e}", file.display()))?
                .trim_end()
                .to_owned(),
        ),
        (None, Some(var)) => Some(env(var)?),
        (None, None) => None,
    };
    Ok(match (username, password) {
        (None, None) => None,
        (username, password) => Some(gix::sec::identity::Account {
            username: username.unwrap_or_else(|| "git".into()),
            password: password.unwrap_or_default(),
            oauth_refresh_token: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_gives_the_credentials() {
        let spec = GitCredentials { secret: Some("git-creds".into()), ..Default::default() };
        let secret =
            BTreeMap::from([("username".to_owned(), "bot".to_owned()), ("password".to_owned(), "pw".to_owned())]);
        let account = credentials(Some(&spec), Some(&secret)).unwrap().unwrap();
        assert_eq!((account.username.as_str(), account.password.as_str()), ("bot", "pw"));
        // Without a username, git's convention.
        let secret = BTreeMap::from([("password".to_owned(), "token".to_owned())]);
        assert_eq!(credentials(Some(&spec), Some(&secret)).unwrap().unwrap().username, "git");
        // An SSH identity is no HTTP account.
        let secret = BTreeMap::from([("identity".to_owned(), "-----BEGIN".to_owned())]);
        assert!(credentials(Some(&spec), Some(&secret)).unwrap().is_none());
    }

    #[test]
    fn ssh_never_prompts_nor_trusts_an_unknown_host() {
        let ssh = Ssh {
            identity: Some("/keys/it's".into()),
            known_hosts: Some("/etc/moor/known_hosts".into()),
            log: "/tmp/ssh.log".into(),
        };
        assert_eq!(
            ssh.command(),
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -E '/tmp/ssh.log' -i '/keys/it'\\''s' \
             -o IdentitiesOnly=yes -o UserKnownHostsFile='/etc/moor/known_hosts'"
        );
    }

    #[test]
    fn only_ssh_urls_get_an_ssh_set_up_and_its_words_explain_a_failure() {
        let spec = GitSpec {
            url: String::new(),
            reference: None,
            depth: 1,
            credentials: None,
            ca_file: None,
            known_hosts_file: Some("hosts".into()),
        };
        for url in ["https://example.com/x.git", "file:///srv/x.git"] {
            assert!(Access::new(&spec, url, Path::new("/"), None).unwrap().ssh.is_none(), "{url}");
        }
        for url in ["ssh://git@example.com/x.git", "git@example.com:x.git"] {
            let access = Access::new(&spec, url, Path::new("/etc/moor"), None).unwrap();
            let ssh = access.ssh.as_ref().unwrap_or_else(|| panic!("{url}"));
            assert_eq!(ssh.known_hosts.as_deref(), Some(Path::new("/etc/moor/hosts")));
            assert_eq!(access.explain("failed".into()), "failed", "ssh said nothing yet");
            std::fs::write(
                &ssh.log,
                "Pseudo-terminal will not be allocated because stdin is not a terminal.\r\n\
                 Host key verification failed.\r\n",
            )
            .unwrap();
            assert_eq!(access.explain("failed".into()), "failed (ssh: Host key verification failed.)");
        }
    }

    #[test]
    fn a_ca_that_is_no_pem_is_refused_by_name() {
        let spec = GitSpec {
            url: "https://example.com/x.git".into(),
            reference: None,
            depth: 1,
            credentials: None,
            ca_file: None,
            known_hosts_file: None,
        };
        let secret = BTreeMap::from([("ca.crt".to_owned(), "not a certificate".to_owned())]);
        let err = Access::new(&spec, &spec.url, Path::new("/"), Some(&secret)).err().unwrap();
        assert_eq!(err, "the Secret's `ca.crt` holds no PEM certificate");
        let spec = GitSpec { ca_file: Some("missing.pem".into()), ..spec };
        let err = Access::new(&spec, &spec.url, Path::new("/nowhere"), None).err().unwrap();
        assert!(err.starts_with("cannot read `ca_file` /nowhere/missing.pem"), "{err}");
    }
}
