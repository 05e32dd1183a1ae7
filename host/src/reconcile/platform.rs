//! The platform config a bootstrap config points at (`[config]`): the file read from the
//! newest revision of the bootstrap's source, or why it could not be. A platform config
//! that does not load is never installed: the caller keeps what runs.

use super::{Moor, Prepared, StageError, blocking};
use crate::config::{Config, ConfigError, ConfigRevision, Platform};
use crate::interrupt::Interrupt;
use crate::secrets::{SecretError, SecretValues};
use crate::source::Snapshot;

/// Why the platform config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
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
    ) -> Result<Snapshot, PlatformError> {
        let spec = bootstrap.config.platform_source(platform);
        let secrets = SecretValues::for_source(client, &bootstrap.config, spec)
            .await
            .map_err(|error| PlatformError::Secrets { source_name: spec.name.clone(), error })?;
        blocking(|| self.fetch(bootstrap, spec, &secrets, interrupt)).map_err(PlatformError::Fetch)
    }

    /// The platform config `bootstrap` points at, in `snapshot` (of its source).
    pub fn platform_config(
        bootstrap: &Config,
        platform: &Platform,
        snapshot: &Snapshot,
        builtin: &[&str],
    ) -> Result<Config, PlatformError> {
        let file = snapshot.root.join(&platform.path);
        let text = std::fs::read_to_string(&file).map_err(|e| PlatformError::Read {
            origin: ConfigRevision {
                source: bootstrap.platform_source(platform).name.clone(),
                revision: snapshot.revision.clone(),
            },
            path: platform.path.clone(),
            message: match e.kind() {
                std::io::ErrorKind::NotFound => "no such file in the source".into(),
                _ => format!("cannot read: {e}"),
            },
        })?;
        Ok(bootstrap.parse_platform(platform, &snapshot.root, &snapshot.revision, text, builtin)?)
    }

    /// `config` itself, or, for a bootstrap config, the platform config it points at, read
    /// now from its source's newest revision: what a one-shot command (`plan`, `apply`, …)
    /// runs. `client` reads the source's credentials.
    pub async fn resolve_config(&self, config: Config, client: Option<&kube::Client>) -> Result<Config, PlatformError> {
        let Some(platform) = config.platform.clone() else { return Ok(config) };
        let bootstrap = self.prepare(std::sync::Arc::new(config));
        let interrupt = Interrupt::after(FETCH_TIMEOUT);
        let snapshot = self.platform_snapshot(&bootstrap, &platform, client, &interrupt).await?;
        let builtin: Vec<&str> = crate::plugins::builtin_names().collect();
        Moor::platform_config(&bootstrap.config, &platform, &snapshot, &builtin)
    }
}

/// How long reading the platform config's source may take.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
