//! Helm chart repositories over HTTP: `[[source]] helm = { repo, chart, version }`.
//!
//! Each fetch reads the repository's `index.yaml`, picks the newest version of the chart
//! that the version range allows (stable versions only, unless the range names a
//! prerelease), and downloads its archive unless the cache holds it; the archive's sha256
//! must equal the index's `digest`. The snapshot holds the one archive,
//! `<chart>-<version>.tgz`, which the `helm` renderer reads (the sandboxed Helm unpacks it,
//! not the host). The revision is `<version>@sha256:<digest>`.
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

/// The chart version `spec` asks for, fetched (or from the cache) into a snapshot.
pub fn snapshot(
    source: &str,
    spec: &HelmSpec,
    cache: &Path,
    store: &Path,
    limits: TreeLimits,
) -> Result<Snapshot, SourceError> {
    let failed = |message: String| SourceError::Helm { source_name: source.into(), message };
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| failed(format!("HTTP client: {e}")))?;
    let base = spec.repo.trim_end_matches('/');
    let index_url = format!("{base}/index.yaml");
    let text = get(&client, &index_url).map_err(failed)?;
    let index: Index = serde_yaml_ng::from_slice(&text).map_err(|e| failed(format!("{index_url}: {e}")))?;
    let entry = choose(&index, &spec.chart, spec.version.as_deref().unwrap_or("*")).map_err(failed)?;
    let digest = entry.digest.to_ascii_lowercase();
    if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(failed(format!("{} {} has no sha256 `digest` in {index_url}", spec.chart, entry.version)));
    }
    let archive = cache.join("helm").join(format!("{digest}.tgz"));
    let bytes = match std::fs::read(&archive) {
        Ok(bytes) if sha256(&bytes) == digest => bytes,
        _ => {
            let url =
                entry.urls.first().ok_or_else(|| failed(format!("{} {} has no URL", spec.chart, entry.version)))?;
            let url = absolute(base, url);
            let bytes = get(&client, &url).map_err(failed)?;
            let got = sha256(&bytes);
            if got != digest {
                return Err(failed(format!(
                    "{url}: sha256 {got} is not the digest {digest} that {index_url} gives: refusing the chart"
                )));
            }
            keep(&archive, &bytes).map_err(|e| failed(format!("caching {}: {e}", archive.display())))?;
            bytes
        }
    };
    let mut builder = TreeBuilder::new(source, store, limits)?;
    builder.add_file(&format!("{}-{}.tgz", spec.chart, entry.version), false, &bytes)?;
    let key = builder.digest();
    builder.finish_keyed(&key, &format!("{}@sha256:{digest}", entry.version))
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client.get(url).send().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}"));
    }
    Ok(response.bytes().map_err(|e| format!("{url}: {e}"))?.to_vec())
}

/// The newest version of `chart` that `range` allows.
fn choose(index: &Index, chart: &str, range: &str) -> Result<Entry, String> {
    let entries = index.entries.get(chart).ok_or_else(|| format!("the repository has no chart `{chart}`"))?;
    let req = version_req(range)?;
    let mut versions: Vec<(semver::Version, &Entry)> = entries
        .iter()
        .filter_map(|e| Some((semver::Version::parse(e.version.trim_start_matches('v')).ok()?, e)))
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    match versions.iter().find(|(v, _)| req.matches(v)) {
        Some((_, entry)) => Ok((*entry).clone()),
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

/// Writes a verified archive into the cache (a temporary file renamed into place).
fn keep(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
        choose(&index(), "web", range).map(|e| e.version)
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
        assert!(choose(&index(), "api", "*").unwrap_err().contains("no chart `api`"));
        assert!(version_req("not a range").is_err());
    }

    #[test]
    fn relative_urls_are_under_the_repository() {
        assert_eq!(absolute("http://h/charts", "web-1.0.0.tgz"), "http://h/charts/web-1.0.0.tgz");
        assert_eq!(absolute("http://h/charts", "https://cdn/web.tgz"), "https://cdn/web.tgz");
    }
}
