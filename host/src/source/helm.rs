//! Helm chart repositories: `[[source]] helm = { repo, chart, version }`, over HTTP
//! (`https://…`, an `index.yaml`) or in an OCI registry (`oci://…`, as `helm push` stores
//! charts).
//!
//! Each fetch lists the chart's versions (the index's entries, or the repository's tags,
//! where Helm writes `+` as `_`), picks the newest one that the version range allows
//! (stable versions only, unless the range names a prerelease), and downloads its archive
//! unless the cache holds it. The archive's sha256 must equal the index's `digest`, or the
//! OCI layer's digest. The snapshot holds the one archive, `<chart>-<version>.tgz`, which the
//! `helm` renderer reads (the sandboxed Helm unpacks it, not the host). The revision is
//! `<version>@sha256:<digest>`: the archive's digest (HTTP), or the manifest's (OCI, the
//! digest `helm push` prints and registries show).
//!
//! ```text
//! helm/<sha256>.tgz    downloaded archives, by digest (verified before they are kept)
//! ```

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::tree::TreeBuilder;
use super::{Snapshot, SourceError};
use crate::config::{HelmSpec, TreeLimits};

/// The part of a repository's `index.yaml` Moor reads.
#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    entries: std::collections::BTreeMap<String, Vec<Entry>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Entry {
    version: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    urls: Vec<String>,
}

/// A chart version chosen and its archive, verified.
struct Chart {
    version: String,
    archive: Vec<u8>,
    /// `sha256:<hex>` of what the revision names.
    digest: String,
}

/// The media types of a chart in an OCI registry (Helm's `registry` package).
const OCI_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const OCI_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// What charts pushed before Helm 3.8 carry as their layer.
const OCI_CHART_LEGACY: &str = "application/tar+gzip";

/// The chart version `spec` asks for, fetched (or from the cache) into a snapshot.
pub fn snapshot(
    source: &str,
    spec: &HelmSpec,
    cache: &Path,
    store: &Path,
    limits: TreeLimits,
) -> Result<Snapshot, SourceError> {
    let range = spec.version.as_deref().unwrap_or("*");
    let chart = match spec.repo.strip_prefix("oci://") {
        Some(repository) => from_registry(repository, spec, range, cache, limits),
        None => from_index(spec, range, cache),
    }
    .map_err(|message| SourceError::Helm { source_name: source.into(), message })?;
    let mut builder = TreeBuilder::new(source, store, limits)?;
    builder.add_file(&format!("{}-{}.tgz", spec.chart, chart.version), false, &chart.archive)?;
    let key = builder.digest();
    builder.finish_keyed(&key, &format!("{}@{}", chart.version, chart.digest))
}

/// A chart of an HTTP repository: its `index.yaml` names the versions, their digests and URLs.
fn from_index(spec: &HelmSpec, range: &str, cache: &Path) -> Result<Chart, String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let base = spec.repo.trim_end_matches('/');
    let index_url = format!("{base}/index.yaml");
    let text = get(&client, &index_url)?;
    let index: Index = serde_yaml_ng::from_slice(&text).map_err(|e| format!("{index_url}: {e}"))?;
    let entries =
        index.entries.get(&spec.chart).ok_or_else(|| format!("the repository has no chart `{}`", spec.chart))?;
    let entry = newest(entries.iter().map(|e| (e.version.as_str(), e)), &spec.chart, range)?;
    let digest = entry.digest.to_ascii_lowercase();
    if !crate::config::is_sha256(&digest) {
        return Err(format!("{} {} has no sha256 `digest` in {index_url}", spec.chart, entry.version));
    }
    let archive = cached(cache, &digest, || {
        let url = entry.urls.first().ok_or_else(|| format!("{} {} has no URL", spec.chart, entry.version))?;
        let url = absolute(base, url);
        let bytes = get(&client, &url)?;
        let got = sha256(&bytes);
        if got != digest {
            return Err(format!(
                "{url}: sha256 {got} is not the digest {digest} that {index_url} gives: refusing the chart"
            ));
        }
        Ok(bytes)
    })?;
    Ok(Chart { version: entry.version.clone(), archive, digest: format!("sha256:{digest}") })
}

/// A chart in an OCI registry, `<repository>/<chart>:<version>`, as `helm push` stores it.
fn from_registry(
    repository: &str,
    spec: &HelmSpec,
    range: &str,
    cache: &Path,
    limits: TreeLimits,
) -> Result<Chart, String> {
    let name = format!("{}/{}", repository.trim_end_matches('/'), spec.chart);
    let registry = crate::oci::Repository::new(&name, spec.insecure)?;
    let tags = registry.tags()?;
    // Helm writes a version's `+` (build metadata) as `_`: tags cannot hold `+`.
    let versions: Vec<(String, &str)> = tags.iter().map(|tag| (tag.replace('_', "+"), tag.as_str())).collect();
    let tag = newest(versions.iter().map(|(version, tag)| (version.as_str(), *tag)), &spec.chart, range)?;
    let (manifest, manifest_digest) = registry.manifest(tag)?;
    let config = &manifest.config.media_type;
    if config != OCI_CONFIG {
        return Err(format!("oci://{name}:{tag} is not a Helm chart: its config is `{config}`, not `{OCI_CONFIG}`"));
    }
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == OCI_CHART || l.media_type == OCI_CHART_LEGACY)
        .ok_or_else(|| format!("oci://{name}:{tag} has no layer of type `{OCI_CHART}`"))?;
    if usize::try_from(layer.size).unwrap_or(usize::MAX) > limits.max_file_size.0 {
        return Err(format!(
            "oci://{name}:{tag}: the chart is {} bytes, over the source's max_file_size ({} bytes)",
            layer.size, limits.max_file_size.0
        ));
    }
    let digest = layer
        .digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("oci://{name}:{tag}: the chart's digest `{}` is not sha256", layer.digest))?;
    // The client checks the blob against the layer's digest as it arrives; the cache checks
    // it again on every read.
    let archive = cached(cache, digest, || registry.blob(layer))?;
    Ok(Chart { version: tag.replace('_', "+"), archive, digest: manifest_digest })
}

/// The archive of sha256 `digest` from the cache, or else from `download` and then kept.
fn cached(cache: &Path, digest: &str, download: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    let path = cache.join("helm").join(format!("{digest}.tgz"));
    if let Ok(bytes) = std::fs::read(&path)
        && sha256(&bytes) == digest
    {
        return Ok(bytes);
    }
    let bytes = download()?;
    if sha256(&bytes) != digest {
        return Err(format!("the chart's sha256 is not {digest}: refusing it"));
    }
    crate::plugins::cache::write_atomically(&path, &bytes).map_err(|e| format!("caching {}: {e}", path.display()))?;
    Ok(bytes)
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client.get(url).send().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}"));
    }
    Ok(response.bytes().map_err(|e| format!("{url}: {e}"))?.to_vec())
}

/// The newest of `versions` (version, item) that `range` allows.
fn newest<'a, T: Copy>(versions: impl Iterator<Item = (&'a str, T)>, chart: &str, range: &str) -> Result<T, String> {
    let req = version_req(range)?;
    let mut versions: Vec<(semver::Version, T)> = versions
        .filter_map(|(v, item)| Some((semver::Version::parse(v.trim_start_matches('v')).ok()?, item)))
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    match versions.iter().find(|(v, _)| req.matches(v)) {
        Some((_, item)) => Ok(*item),
        None if versions.is_empty() => Err(format!("`{chart}` has no versions")),
        None => {
            let known: Vec<String> = versions.iter().take(10).map(|(v, _)| v.to_string()).collect();
            Err(format!("no version of `{chart}` matches `{range}` (newest: {})", known.join(", ")))
        }
    }
}

/// A Helm version range (`1.2.3`, `1.2.x`, `^1.2`, `~1.2.0`, `>=1.0 <2.0`, `*`) as a
/// semver requirement. An exact version means that version, as in Helm.
fn version_req(range: &str) -> Result<semver::VersionReq, String> {
    let range = range.trim();
    let exact = semver::Version::parse(range.trim_start_matches('v')).is_ok();
    let text = if exact {
        format!("={}", range.trim_start_matches('v'))
    } else {
        // Helm (Masterminds semver) separates comparators with spaces or commas, and
        // writes wildcards as `x`.
        range.replace(['x', 'X'], "*").split([' ', ',']).filter(|part| !part.is_empty()).collect::<Vec<_>>().join(", ")
    };
    semver::VersionReq::parse(&text).map_err(|e| format!("version `{range}` is not a version range: {e}"))
}

/// `url` as an absolute URL: index URLs may be relative to the repository.
fn absolute(base: &str, url: &str) -> String {
    if url.contains("://") { url.to_owned() } else { format!("{base}/{}", url.trim_start_matches('/')) }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        serde_yaml_ng::from_str(
            "entries:\n  web:\n  - {version: 1.2.3, digest: a, urls: [web-1.2.3.tgz]}\n  \
             - {version: 1.10.0, digest: b, urls: [web-1.10.0.tgz]}\n  - {version: 2.0.0-rc.1, digest: c}\n  \
             - {version: 0.9.0, digest: d}\n",
        )
        .unwrap()
    }

    fn pick(range: &str) -> Result<String, String> {
        let index = index();
        let entries = index.entries["web"].iter().map(|e| (e.version.as_str(), e));
        newest(entries, "web", range).map(|e| e.version.clone())
    }

    #[test]
    fn the_newest_version_in_the_range_wins_and_prereleases_need_asking() {
        assert_eq!(pick("*").unwrap(), "1.10.0");
        assert_eq!(pick("1.2.x").unwrap(), "1.2.3");
        assert_eq!(pick("1.x").unwrap(), "1.10.0");
        assert_eq!(pick("~1.2.0").unwrap(), "1.2.3");
        assert_eq!(pick(">=0.1 <1.0").unwrap(), "0.9.0");
        assert_eq!(pick("1.2.3").unwrap(), "1.2.3");
        assert_eq!(pick("2.0.0-rc.1").unwrap(), "2.0.0-rc.1");
        let none = pick("3.x").unwrap_err();
        assert!(none.contains("no version of `web` matches `3.x`") && none.contains("1.10.0"), "{none}");
        assert_eq!(newest(std::iter::empty::<(&str, ())>(), "api", "*").unwrap_err(), "`api` has no versions");
        assert!(version_req("not a range").is_err());
    }

    #[test]
    fn relative_urls_are_under_the_repository() {
        assert_eq!(absolute("http://h/charts", "web-1.0.0.tgz"), "http://h/charts/web-1.0.0.tgz");
        assert_eq!(absolute("http://h/charts", "https://cdn/web.tgz"), "https://cdn/web.tgz");
    }
}
