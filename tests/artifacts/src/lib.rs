//! Paths of the test-only plugins under `tests/plugins/`, built for the tests by this
//! crate's build script.

include!(concat!(env!("OUT_DIR"), "/test_plugins.rs"));

/// The path of the test plugin in `tests/plugins/<name>`.
pub fn path(name: &str) -> &'static str {
    TEST_PLUGINS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).unwrap_or_else(|| panic!("no test plugin `{name}`"))
}
