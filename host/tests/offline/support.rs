//! Shared helpers: one plugin runtime per test binary, temporary trees and configs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use moor::config::{Config, PipelineSpec};
use moor::interrupt::Interrupt;
use moor::plugins::{self, Limits, Plugin, PluginSource, RenderContext, Runtime};
use moor::reconcile::{Mode, Moor, Prepared, RunContext, RunFailure, RunReport};
use moor::secrets::SecretValues;

/// A cache directory shared by the tests of this binary (compiled code and the Go plugins
/// shared with the machine's cache).
pub fn cache_dir() -> &'static Path {
    moor_test_artifacts::plugin_cache()
}

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(cache_dir()).unwrap())
}

pub fn probe_path() -> PathBuf {
    PathBuf::from(moor_test_artifacts::path("probe"))
}

/// The probe plugin with a short time limit.
pub fn probe(limits: Limits) -> Plugin {
    runtime().load("probe", PluginSource::Inspect(probe_path()), limits).unwrap()
}

pub fn quick() -> Limits {
    Limits { timeout: Duration::from_millis(500), memory: 64 << 20, ..Limits::default() }
}

pub fn builtin(name: &str) -> Plugin {
    runtime().load(name, PluginSource::Builtin(plugins::builtin_bytes(name).unwrap()), Limits::default()).unwrap()
}

/// Writes `files` (path, contents) under a new temporary directory.
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let at = dir.path().join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, contents).unwrap();
    }
    dir
}

/// Parses a config as if it were `dir/moor.toml`.
pub fn config(dir: &Path, text: &str) -> Result<Config, moor::config::ConfigError> {
    let builtin: Vec<&str> = plugins::builtin_names().collect();
    Config::parse(&dir.join("moor.toml"), text.to_owned(), &builtin)
}

pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Renders and validates `pipeline` as an offline `moor build` does: [`Moor::run`] in
/// [`Mode::Render`] without a cluster, with `secrets` already read and renderers told
/// `context`. The report (its `objects`, `revision` and `findings`), or the run's failure.
pub fn render_offline(
    moor: &Moor,
    prepared: &Prepared,
    pipeline: &PipelineSpec,
    secrets: SecretValues,
    context: RenderContext,
) -> Result<RunReport, RunFailure> {
    let ctx = RunContext { prepared, pipeline, secrets, place: None, render: context, interrupt: Interrupt::new() };
    let mut report = futures::executor::block_on(moor.run(&ctx, Mode::Render, None, &|_| {}));
    std::mem::replace(&mut report.outcome, Ok(())).map(|()| report)
}
