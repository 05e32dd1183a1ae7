//! Plugins as OCI artifacts: `[[plugin]] oci = "registry/path:tag@sha256:…"` and
//! `moor plugin push FILE REF`.
//!
//! The artifact is Kubewarden's and wasm-to-oci's layout: one layer of type
//! `application/vnd.wasm.content.layer.v1+wasm` holding the `.wasm` file, and a config of
//! type `application/vnd.wasm.config.v1+json` (Moor writes the plugin's self-description
//! there). Pulls also take the CNCF layout's `application/wasm` layer, which `wkg` and
//! other tools push.
//!
//! A pull is pinned by the manifest's digest, which the client checks against the
//! manifest's bytes; the manifest names the layer's digest, which the client checks as the
//! layer arrives. The file is kept as `<dir>/<layer sha256>.wasm`, with
//! `<dir>/<manifest sha256>.layer` naming it (so a pinned plugin loads again without the
//! registry), and loaded like a plugin file pinned by that sha256, so a cache file that
//! changed is refused too.

use std::path::{Path, PathBuf};

use oci_client::client::{Config, ImageLayer};

use crate::oci::{Repository, split_reference};

/// The layer media type Moor pushes (Kubewarden's, wasm-to-oci's).
pub const LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// The CNCF Wasm OCI artifact layer, also accepted on pull.
const LAYER_CNCF: &str = "application/wasm";
pub const CONFIG: &str = "application/vnd.wasm.config.v1+json";

/// The largest plugin a pull takes.
const MAX_SIZE: i64 = 256 << 20;

/// The plugin `reference` (pinned by its manifest digest) in `dir`, pulled unless it is
/// there; (file, sha256 of the file).
pub fn pull(dir: &Path, reference: &str, plain_http: bool) -> Result<(PathBuf, String), String> {
    let (name, image) = split_reference(reference)?;
    // A manifest named by its digest never changes: once its layer is kept, the plugin
    // loads without the registry (which may be down when a controller restarts).
    let manifest_hex = image.digest().and_then(|d| d.strip_prefix("sha256:")).unwrap_or_default().to_owned();
    let index = dir.join(format!("{manifest_hex}.layer"));
    if let Ok(hex) = std::fs::read_to_string(&index)
        && dir.join(format!("{hex}.wasm")).exists()
    {
        return Ok((dir.join(format!("{hex}.wasm")), hex));
    }
    let repository = Repository::new(&name, plain_http)?;
    let (manifest, _) = repository.manifest_of(&image)?;
    let layers: Vec<_> =
        manifest.layers.iter().filter(|l| l.media_type == LAYER || l.media_type == LAYER_CNCF).collect();
    let [layer] = layers[..] else {
        let types: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
        return Err(format!(
            "{reference} is not a plugin: it needs exactly one layer of type `{LAYER}` or `{LAYER_CNCF}` (it has: {})",
            types.join(", ")
        ));
    };
    if layer.size > MAX_SIZE {
        return Err(format!("{reference}: the plugin is {} bytes, over {MAX_SIZE}", layer.size));
    }
    let hex = layer
        .digest
        .strip_prefix("sha256:")
        .filter(|h| crate::is_sha256(h))
        .ok_or_else(|| format!("{reference}: the layer's digest `{}` is not a sha256", layer.digest))?
        .to_owned();
    let file = dir.join(format!("{hex}.wasm"));
    if !file.exists() {
        let bytes = repository.blob(layer)?;
        crate::cache::write_atomically(&file, &bytes).map_err(|e| format!("caching {}: {e}", file.display()))?;
    }
    if !manifest_hex.is_empty() {
        crate::cache::write_atomically(&index, hex.as_bytes())
            .map_err(|e| format!("caching {}: {e}", index.display()))?;
    }
    Ok((file, hex))
}

/// Pushes the plugin file `bytes` (described by `info`, JSON) as `reference`
/// (`registry/path:tag`); the reference pinned by the manifest's digest.
pub fn push(bytes: Vec<u8>, info: serde_json::Value, reference: &str, plain_http: bool) -> Result<String, String> {
    let (name, image) = split_reference(reference)?;
    if image.digest().is_some() {
        return Err(format!("{reference}: push to a tag, not a digest (the digest is the result)"));
    }
    let tag = image.tag().unwrap_or("latest");
    let repository = Repository::new(&name, plain_http)?;
    let layer = ImageLayer::new(bytes, LAYER.to_owned(), None);
    let config = Config::new(serde_json::to_vec(&info).expect("JSON"), CONFIG.to_owned(), None);
    let digest = repository.push(tag, layer, config)?;
    Ok(format!("{name}:{tag}@{digest}"))
}
