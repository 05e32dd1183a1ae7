//! Reading OCI registries (the OCI Distribution API, through `oci-client`): tags, a
//! manifest, and blobs whose digest is checked as they arrive. Used by the `oci://` chart
//! sources; the callers decide what the artifact must be (its media types).
//!
//! The calls block: sources are fetched on blocking threads (`reconcile::blocking`), so a
//! call runs on the current runtime when there is one and on a runtime of its own when not.

use std::future::Future;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// A repository in a registry: `registry[:port]/path`, without tag or digest.
pub struct Repository {
    client: Client,
    name: String,
    auth: RegistryAuth,
}

/// How many tags one request asks for; the rest are paged with `last`.
const TAGS_PER_PAGE: usize = 1000;

impl Repository {
    /// `name` is `registry[:port]/path`. `plain_http` talks HTTP instead of HTTPS (a
    /// registry on loopback or in a lab, as Helm's `--plain-http` and Flux's `insecure`).
    pub fn new(name: &str, plain_http: bool) -> Result<Repository, String> {
        let name = name.trim_end_matches('/');
        // Parsed once here so that a bad name fails before any request.
        reference(name, "latest")?;
        let config = ClientConfig {
            protocol: if plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            // Moor pulls artifacts, never images for a platform: an index is an error.
            platform_resolver: None,
            ..Default::default()
        };
        Ok(Repository { client: Client::new(config), name: name.to_owned(), auth: RegistryAuth::Anonymous })
    }

    /// Every tag of the repository.
    pub fn tags(&self) -> Result<Vec<String>, String> {
        let image = reference(&self.name, "latest")?;
        let mut tags = Vec::new();
        loop {
            let last = tags.last().cloned();
            let page = block_on(self.client.list_tags(&image, &self.auth, Some(TAGS_PER_PAGE), last.as_deref()))
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
        let image = reference(&self.name, tag)?;
        block_on(self.client.pull_image_manifest(&image, &self.auth))
            .map_err(|e| format!("reading the manifest of {}:{tag}: {e}", self.name))
    }

    /// The blob `layer` describes, refused unless its sha256 is the descriptor's digest.
    pub fn blob(&self, layer: &OciDescriptor) -> Result<Vec<u8>, String> {
        let image = reference(&self.name, "latest")?;
        let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        block_on(self.client.pull_blob(&image, layer, &mut bytes))
            .map_err(|e| format!("pulling {}@{}: {e}", self.name, layer.digest))?;
        Ok(bytes)
    }
}

fn reference(name: &str, tag: &str) -> Result<Reference, String> {
    format!("{name}:{tag}").parse().map_err(|e| format!("`{name}` is not an OCI repository name: {e}"))
}

/// Runs `future` to completion from blocking code.
fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(future),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for an OCI request")
            .block_on(future),
    }
}
