//! A source plugin that returns exactly the files its config lists, at the revision the
//! config names, so tests can hand the host any tree, hostile ones included.

use moor_plugin_sdk::{File, Info, Snapshot, Source, export_source};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Config {
    pub revision: String,
    pub files: Vec<Entry>,
}

#[derive(Deserialize)]
pub struct Entry {
    pub path: String,
    pub contents: String,
    #[serde(default = "regular")]
    pub mode: u32,
}

fn regular() -> u32 {
    0o644
}

pub struct Files;

impl Source for Files {
    type Config = Config;

    fn info() -> Info {
        Info::new("files-source", env!("CARGO_PKG_VERSION")).schema(serde_json::json!({
            "type": "object",
            "required": ["revision", "files"],
            "properties": {
                "revision": {"type": "string"},
                "files": {"type": "array", "items": {
                    "type": "object",
                    "required": ["path", "contents"],
                    "properties": {"path": {"type": "string"}, "contents": {"type": "string"}, "mode": {"type": "integer"}}
                }}
            }
        }))
    }

    fn fetch(config: Config, known: Option<String>) -> Result<Option<Snapshot>, String> {
        if known.as_deref() == Some(config.revision.as_str()) {
            return Ok(None);
        }
        let files = config
            .files
            .into_iter()
            .map(|e| File { path: e.path, mode: e.mode, contents: e.contents.into_bytes() })
            .collect();
        Ok(Some(Snapshot { revision: config.revision, files }))
    }
}

export_source!(Files);
