//! Paths of the test-only plugins under `tests/plugins/`, built for the tests by this
//! crate's build script.

include!(concat!(env!("OUT_DIR"), "/test_plugins.rs"));

/// The path of the test plugin in `tests/plugins/<name>`.
pub fn path(name: &str) -> &'static str {
    TEST_PLUGINS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).unwrap_or_else(|| panic!("no test plugin `{name}`"))
}

/// A plugin cache for one test binary: a temporary directory whose compiled code and Go
/// plugins are shared with the machine's cache (`$MOOR_CACHE`, default `~/.cache/moor`), so
/// that the standard Go plugins `scripts/go-plugins` built are found and large modules
/// compile once per machine rather than once per test run. Entries are keyed by content
/// digest and engine, so sharing them is safe.
pub fn plugin_cache() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let shared = std::env::var_os("MOOR_CACHE")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/moor")))
            .expect("MOOR_CACHE or HOME");
        for entry in ["compiled", "go-plugins"] {
            std::fs::create_dir_all(shared.join(entry)).expect("the shared cache");
            std::os::unix::fs::symlink(shared.join(entry), dir.path().join(entry)).expect("a symlink");
        }
        dir
    })
    .path()
}
