//! Configs read from sources: the platform config a bootstrap config points at
//! (`[config]`) and the tenants' configs (`[[tenant]]`), each the file read from the newest
//! revision of its source, or why it could not be. A config that does not load is never
//! installed: the caller keeps what runs.

use super::{Moor, Prepared, StageError, blocking};
use crate::config::{Config, ConfigError, ConfigRevision, Platform, SourceSpec};
use crate::interrupt::Interrupt;
use crate::secrets::{SecretError, SecretValues};
use crate::source::Snapshot;

/// Why a config read from a source (the platform's, a tenant's) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourcedConfigError {
    #[error("cannot read the credentials of source `{source_name}`: {error}")]
    Secrets { source_name: String, error: SecretError },
    #[error(transparent)]
    Fetch(StageError),
    #[error("{origin}: {path}: {message}")]
    Read { origin: ConfigRevision, path: String, message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Moor {
    /// The newest snapshot of the source `platform` names in `bootstrap`, read with the
    /// source's credentials (through `client`).
    pub async fn platform_snapshot(
        &self,
        bootstrap: &Prepared,
        platform: &Platform,
        client: Option<&kube::Client>,
        interrupt: &Interrupt,
    ) -> Result<Snapshot, SourcedConfigError> {
        self.config_snapshot(bootstrap, bootstrap.config.platform_source(platform), client, interrupt).await
    }

    /// The newest snapshot of `spec`, a source of `prepared`'s config (or one it declares,
    /// such as a tenant's), read with the source's credentials (through `client`).
    pub(super) async fn config_snapshot(
        &self,
        prepared: &Prepared,
        spec: &SourceSpec,
        client: Option<&kube::Client>,
        interrupt: &Interrupt,
    ) -> Result<Snapshot, SourcedConfigError> {
        let secrets = SecretValues::for_source(client, &prepared.config, spec)
            .await
            .map_err(|error| SourcedConfigError::Secrets { source_name: spec.name.clone(), error })?;
        blocking(|| self.fetch(prepared, spec, &secrets, interrupt)).map_err(SourcedConfigError::Fetch)
    }

    /// The platform config `bootstrap` points at, in `snapshot` (of its source).
    pub fn platform_config(
        bootstrap: &Config,
        platform: &Platform,
        snapshot: &Snapshot,
        builtin: &[&str],
    ) -> Result<Config, SourcedConfigError> {
        let text = read_file(snapshot, &bootstrap.platform_source(platform).name, &platform.path)?;
        Ok(bootstrap.parse_platform(platform, &snapshot.root, &snapshot.revision, text, builtin)?)
    }

    /// `config` itself, or, for a bootstrap config, the platform config it points at, read
    /// now from its source's newest revision: what a one-shot command (`plan`, `apply`, …)
    /// runs. `client` reads the source's credentials.
    pub async fn resolve_config(
        &self,
        config: Config,
        client: Option<&kube::Client>,
    ) -> Result<Config, SourcedConfigError> {
        let Some(platform) = config.platform.clone() else { return Ok(config) };
        let bootstrap = self.prepare(std::sync::Arc::new(config));
        let interrupt = Interrupt::after(FETCH_TIMEOUT);
        let snapshot = self.platform_snapshot(&bootstrap, &platform, client, &interrupt).await?;
        let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
        Moor::platform_config(&bootstrap.config, &platform, &snapshot, &builtin)
    }
}

/// The file at `path` of `snapshot`, a snapshot of source `source`.
pub(super) fn read_file(snapshot: &Snapshot, source: &str, path: &str) -> Result<String, SourcedConfigError> {
    std::fs::read_to_string(snapshot.root.join(path)).map_err(|e| SourcedConfigError::Read {
        origin: ConfigRevision { source: source.to_owned(), revision: snapshot.revision.clone() },
        path: path.to_owned(),
        message: match e.kind() {
            std::io::ErrorKind::NotFound => "no such file in the source".into(),
            _ => format!("cannot read: {e}"),
        },
    })
}

/// How long reading a config's source may take.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
