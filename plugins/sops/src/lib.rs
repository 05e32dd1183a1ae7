//! `sops` renderer: decrypts the objects SOPS encrypted (FX-3), as Flux's
//! kustomize-controller does, with age identities.
//!
//! Objects with a top-level `sops` section are decrypted ([`decrypt`]) and leave without
//! it; the documents of one file that share one `sops` section are one SOPS tree, whose
//! MAC covers them all, so they are decrypted together. Any other object passes unchanged.
//! A wrong key, a changed value or a changed MAC fails the step, naming the object and its
//! `file:line`; no decrypted value is ever in a message.
//!
//! Config (`with`): `age_key`, the contents of an age identity file (`AGE-SECRET-KEY-1…`
//! lines, comments allowed). Give it through the step's `secrets`, from a Kubernetes Secret,
//! so that only this step sees it and the host redacts it.

pub mod decrypt;

use moor_plugin_sdk::{Diagnostic, Info, Input, Object, Outcome, Renderer, export_renderer};
use serde::Deserialize;

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
        let identities = age::IdentityFile::from_buffer(config.age_key.as_bytes())
            .ok()
            .and_then(|file| file.into_identities().ok())
            .filter(|ids| !ids.is_empty())
            .ok_or_else(|| vec![Diagnostic::error("`age_key` holds no age identity (`AGE-SECRET-KEY-1…` lines)")])?;
        let mut objects = input.objects()?;
        let mut errors = Vec::new();
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

export_renderer!(Sops);

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
