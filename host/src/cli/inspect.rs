//! `moor plugin inspect`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::Output;
use crate::plugins::{self, Limits, PluginSource, Runtime};

pub fn inspect(cache: &Path, what: &str, output: Output) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(cache)?;
    let path = PathBuf::from(what);
    let (name, source) = match plugins::builtin_bytes(what) {
        Some(bytes) if !path.exists() => (what.to_owned(), PluginSource::Builtin(bytes)),
        _ => {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| what.to_owned());
            (stem, PluginSource::Inspect(path))
        }
    };
    let plugin = runtime.load(&name, source, Limits::default())?;
    let info = &plugin.info;
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(info)?)?,
        Output::Text => {
            writeln!(out, "name:         {}", info.name)?;
            writeln!(out, "version:      {}", info.version)?;
            writeln!(out, "kind:         {}", info.kind)?;
            writeln!(out, "contract:     moor:plugin@{}", info.contract)?;
            writeln!(out, "sha256:       {}", info.sha256)?;
            if !info.description.is_empty() {
                writeln!(out, "description:  {}", info.description)?;
            }
            writeln!(out, "capabilities:")?;
            for cap in &info.capabilities {
                writeln!(out, "  - {cap}")?;
            }
            writeln!(out, "config schema:\n{}", serde_json::to_string_pretty(&info.config_schema)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
