//! `sops` renderer: decrypts the objects SOPS encrypted (FX-3), as Flux's
//! kustomize-controller does, with age identities.
//!
//! Later in a chain, it decrypts objects:
//! - objects with a top-level `sops` section are decrypted ([`decrypt`]) and leave without
//!   it; the documents of one file that share one `sops` section are one SOPS tree, whose
//!   MAC covers them all, so they are decrypted together;
//! - a Secret's `data` value that is a whole SOPS file (as a kustomize `secretGenerator`
//!   makes from an encrypted file) is decrypted and written in the format its key names
//!   (`config.yaml`, `.env`, anything else as the raw bytes), as Flux does.
//!
//! Any other object passes unchanged.
//!
//! First in a chain, it decrypts files instead: those the kustomization files of the
//! pipeline's directory read through generators and patches ([`sources`]). It is of the
//! `tree-renderer` world: it returns the decrypted files, and the host gives the next
//! renderer (`kustomize`) the tree with those files replaced.
//!
//! A wrong key, a changed value or a changed MAC fails the step, naming the object and its
//! `file:line`, or the file; no decrypted value is ever in a message.
//!
//! Config (`with`): `age_key`, the contents of an age identity file (`AGE-SECRET-KEY-1…`
//! lines, comments allowed). Give it through the step's `secrets`, from a Kubernetes Secret,
//! so that only this step sees it and the host redacts it.

pub mod decrypt;
pub mod files;
pub mod sources;

use base64::Engine as _;
use moor_plugin_sdk::{
    Diagnostic, Info, Input, Object, Outcome, Renderer, Rewritten, RewrittenFile, TreeRenderer, export_tree_renderer,
};
use serde::Deserialize;

use files::Format;

type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub age_key: String,
}

pub struct Sops;

impl Renderer for Sops {
    type Config = Config;

    fn info() -> Info {
        Info::new("sops", env!("CARGO_PKG_VERSION"))
            .description("decrypts objects that SOPS encrypted with age keys")
            .schema(serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["age_key"],
                "properties": {
                    "age_key": {"type": "string", "description": "an age identity file (give it as a secret)"}
                }
            }))
    }

    fn render(config: Config, input: Input) -> Outcome<Vec<Object>> {
        let identities = identities(&config)?;
        let mut objects = match input {
            Input::Objects(objects) => objects,
            // The host rewrites the tree through `rewrite` instead (a `tree-renderer`).
            Input::Tree { .. } => {
                return Err(vec![Diagnostic::error(
                    "given the tree, `sops` decrypts the files a renderer after it reads: this host called \
                     `render` instead of `rewrite`",
                )]);
            }
        };
        let mut errors = Vec::new();
        for object in objects.iter_mut().filter(|o| o.value.get("sops").is_none()) {
            errors.extend(decrypt_secret_files(object, &identities));
        }
        for group in groups(&objects) {
            if let Err(e) = decrypt_group(&mut objects, &group, &identities) {
                let first = &objects[group[0]];
                let what = if group.len() > 1 {
                    format!(" (and {} more of its file)", group.len() - 1)
                } else {
                    String::new()
                };
                errors.push(Diagnostic::error(format!("cannot decrypt {}{what}: {e}", first.display_name())).on(first));
            }
        }
        if errors.is_empty() { Ok(objects) } else { Err(errors) }
    }
}

impl TreeRenderer for Sops {
    /// The decrypted sources of the kustomization in `root/path`.
    fn rewrite(config: Config, root: std::path::PathBuf, path: String) -> Outcome<Rewritten> {
        let identities = identities(&config)?;
        let decrypted = sources::decrypt_sources(&root, &path, &identities)
            .map_err(|f| vec![Diagnostic::error(format!("cannot decrypt {}: {}", f.file, f.error)).at(&f.file, 0)])?;
        let mut revealed = Vec::new();
        let files = decrypted
            .into_iter()
            .map(|d| {
                revealed.extend(d.plain.revealed);
                RewrittenFile { path: d.path, contents: d.plain.bytes }
            })
            .collect();
        Ok(Rewritten { files, revealed })
    }
}

export_tree_renderer!(Sops);

/// The age identities of the step's `age_key`.
fn identities(config: &Config) -> Outcome<Identities> {
    age::IdentityFile::from_buffer(config.age_key.as_bytes())
        .ok()
        .and_then(|file| file.into_identities().ok())
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| vec![Diagnostic::error("`age_key` holds no age identity (`AGE-SECRET-KEY-1…` lines)")])
}

/// Decrypts the `data` values of a Secret that are whole SOPS files, in place.
fn decrypt_secret_files(object: &mut Object, identities: &Identities) -> Vec<Diagnostic> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if object.kind() != "Secret" {
        return Vec::new();
    }
    let mut errors = Vec::new();
    let name = object.display_name();
    let mut decrypted = Vec::new();
    if let Some(data) = object.value.get("data").and_then(serde_json::Value::as_object) {
        for (key, value) in data {
            let Some(bytes) = value.as_str().and_then(moor_object::decode_secret_data) else { continue };
            let Some(input) = Format::detect(&bytes) else { continue };
            match files::decrypt_file(&bytes, input, Format::for_path(key), identities) {
                Ok(plain) => decrypted.push((key.clone(), b64.encode(plain.bytes))),
                Err(e) => errors.push(Diagnostic::error(format!("cannot decrypt {name} `data.{key}`: {e}"))),
            }
        }
    }
    for (key, value) in decrypted {
        object.value["data"][key] = serde_json::Value::String(value);
    }
    errors.into_iter().map(|d| d.on(object)).collect()
}

/// Indexes of encrypted objects, grouped by file and equal `sops` section, in order.
fn groups(objects: &[Object]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let Some(sops) = object.value.get("sops") else { continue };
        let same = |g: &Vec<usize>| {
            let first = &objects[g[0]];
            first.file == object.file && !object.file.is_empty() && first.value.get("sops") == Some(sops)
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(group) => group.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

fn decrypt_group(
    objects: &mut [Object],
    group: &[usize],
    identities: &[Box<dyn age::Identity + Send + Sync>],
) -> Result<(), decrypt::Error> {
    let meta = decrypt::Metadata::of(&objects[group[0]].value["sops"])?;
    let key = meta.data_key(identities)?;
    let mut trees: Vec<serde_json::Value> = group
        .iter()
        .map(|&i| {
            let mut value = objects[i].value.clone();
            if let Some(map) = value.as_object_mut() {
                map.shift_remove("sops");
            }
            value
        })
        .collect();
    let mut refs: Vec<&mut serde_json::Value> = trees.iter_mut().collect();
    decrypt::decrypt(&mut refs, &meta, &key)?;
    for (&i, tree) in group.iter().zip(trees) {
        objects[i].value = tree;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
