//! Reading and writing OCI registries (the OCI Distribution API, through `oci-client`):
//! tags, manifests, and blobs whose digests are checked as they arrive. Used by `oci://`
//! chart sources and by plugins pulled from (and pushed to) registries; the callers decide
//! what an artifact must be (its media types).
//!
//! Credentials come from the docker config file (see [`credentials`]).
//!
//! The calls block. Each `Repository` has a runtime of its own, driven from a scoped
//! thread, so a call works from any context: a blocking thread, a plain thread, or the
//! config loading of an async command.

use std::future::Future;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// A repository in a registry: `registry[:port]/path`, without tag or digest.
pub struct Repository {
    client: Client,
    name: String,
    auth: RegistryAuth,
    /// `Some` until dropped: a runtime must not be dropped where blocking is not allowed.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Repository {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// How many tags one request asks for; the rest are paged with `last`.
const TAGS_PER_PAGE: usize = 1000;

/// `registry[:port]/path[:tag][@sha256:…]` split into the repository and what names the
/// artifact in it.
pub fn split_reference(text: &str) -> Result<(String, Reference), String> {
    let reference: Reference =
        text.parse().map_err(|e| format!("`{text}` is not an OCI reference (registry/path:tag@sha256:…): {e}"))?;
    Ok((format!("{}/{}", reference.registry(), reference.repository()), reference))
}

impl Repository {
    /// `name` is `registry[:port]/path`. `plain_http` talks HTTP instead of HTTPS (a
    /// registry on loopback or in a lab, as Helm's `--plain-http` and Flux's `insecure`).
    pub fn new(name: &str, plain_http: bool) -> Result<Repository, String> {
        let name = name.trim_end_matches('/');
        // A bad name fails here, before any request.
        let auth = credentials(reference(name, "latest")?.resolve_registry())?;
        let config = ClientConfig {
            protocol: if plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            // Moor pulls artifacts, never images for a platform: an index is an error.
            platform_resolver: None,
            ..Default::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime for {name}: {e}"))?;
        Ok(Repository { client: Client::new(config), name: name.to_owned(), auth, runtime: Some(runtime) })
    }

    /// Every tag of the repository.
    pub fn tags(&self) -> Result<Vec<String>, String> {
        let image = reference(&self.name, "latest")?;
        let mut tags = Vec::new();
        loop {
            let last = tags.last().cloned();
            let page = self
                .block_on(self.client.list_tags(&image, &self.auth, Some(TAGS_PER_PAGE), last.as_deref()))
                .map_err(|e| format!("listing the tags of {}: {e}", self.name))?;
            let full = page.tags.len() >= TAGS_PER_PAGE;
            tags.extend(page.tags);
            if !full {
                return Ok(tags);
            }
        }
    }

    /// The image manifest that `tag` names, with its digest (`sha256:…`).
    pub fn manifest(&self, tag: &str) -> Result<(OciImageManifest, String), String> {
        self.manifest_of(&reference(&self.name, tag)?)
    }

    /// The image manifest that `image` names (by tag, or by digest, which is checked against
    /// the manifest's bytes), with its digest.
    pub fn manifest_of(&self, image: &Reference) -> Result<(OciImageManifest, String), String> {
        self.block_on(self.client.pull_image_manifest(image, &self.auth))
            .map_err(|e| format!("reading the manifest of {image}: {e}"))
    }

    /// The blob `layer` describes, refused unless its sha256 is the descriptor's digest.
    pub fn blob(&self, layer: &OciDescriptor) -> Result<Vec<u8>, String> {
        let image = reference(&self.name, "latest")?;
        let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        self.block_on(self.client.pull_blob(&image, layer, &mut bytes))
            .map_err(|e| format!("pulling {}@{}: {e}", self.name, layer.digest))?;
        Ok(bytes)
    }

    /// Pushes one layer and its config as `tag`; the manifest's digest (`sha256:…`).
    pub fn push(&self, tag: &str, layer: ImageLayer, config: Config) -> Result<String, String> {
        let image = reference(&self.name, tag)?;
        let pushed = self
            .block_on(self.client.push(&image, &[layer], config, &self.auth, None))
            .map_err(|e| format!("pushing {image}: {e}"))?;
        // The manifest's URL ends in its digest, as the registry computed it.
        let digest = pushed.manifest_url.rsplit('/').next().unwrap_or_default();
        match digest.starts_with("sha256:") {
            true => Ok(digest.to_owned()),
            false => self.manifest(tag).map(|(_, digest)| digest),
        }
    }

    /// Runs `future` on the repository's runtime, from a thread of its own.
    fn block_on<F: Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        let runtime = self.runtime.as_ref().expect("a runtime until dropped");
        std::thread::scope(|scope| match scope.spawn(|| runtime.block_on(future)).join() {
            Ok(output) => output,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}

/// The credentials for `registry` in the docker config file (`$DOCKER_CONFIG/config.json`,
/// else `~/.docker/config.json`, with its credential helpers), as docker, Helm and
/// Kubewarden read them; anonymous when the file or the entry is missing. In a cluster,
/// mount a `kubernetes.io/dockerconfigjson` Secret and point `DOCKER_CONFIG` at it.
fn credentials(registry: &str) -> Result<RegistryAuth, String> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    // The crate tells a missing file from an unreadable one by neither.
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".docker")));
    if !dir.is_some_and(|dir| dir.join("config.json").exists()) {
        return Ok(RegistryAuth::Anonymous);
    }
    match docker_credential::get_credential(registry) {
        Ok(DockerCredential::UsernamePassword(user, password)) => Ok(RegistryAuth::Basic(user, password)),
        Ok(DockerCredential::IdentityToken(token)) => Ok(RegistryAuth::Bearer(token)),
        Err(E::ConfigNotFound | E::NoCredentialConfigured) => Ok(RegistryAuth::Anonymous),
        // Not the helper's output: it could hold a credential.
        Err(E::HelperFailure { helper, .. }) => {
            Err(format!("credentials for {registry}: the docker credential helper `{helper}` failed"))
        }
        Err(e) => Err(format!("credentials for {registry} from the docker config: {e}")),
    }
}

fn reference(name: &str, tag: &str) -> Result<Reference, String> {
    format!("{name}:{tag}").parse().map_err(|e| format!("`{name}` is not an OCI repository name: {e}"))
}
