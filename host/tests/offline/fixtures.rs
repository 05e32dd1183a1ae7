//! Data-driven tests of the standard renderer and validator.
//!
//! Each directory under `tests/data/pipelines/` is one case: a `tree/` of files, a
//! `case.toml` holding the pipeline's `render` and `validate` chains, and `expected.txt`,
//! what `check` prints for it. Run with `MOOR_BLESS=1` to rewrite the expectations. A case
//! may use the test plugins (`tests/krm/*`, `tests/plugins/*`) by name, and the standard
//! Go plugins (`kustomize`, `helm`), which `scripts/go-plugins` builds into the cache.

use std::path::{Path, PathBuf};

use moor::plugins::RenderContext;
use moor::reconcile::Moor;

use crate::support::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/pipelines")
}

/// Renders and validates one case and prints the outcome, one line per object or finding.
fn run_case(case: &Path) -> String {
    let steps = std::fs::read_to_string(case.join("case.toml")).unwrap();
    // Test plugins (tests/krm, tests/plugins) a case uses are declared with their pin.
    let mut plugins = String::new();
    for (name, path) in moor_test_artifacts::TEST_PLUGINS {
        if steps.contains(&format!("use = \"{name}\"")) {
            let sha256 = sha256_of(Path::new(path));
            plugins.push_str(&format!("[[plugin]]\nname = \"{name}\"\npath = \"{path}\"\nsha256 = \"{sha256}\"\n\n"));
        }
    }
    let text = format!(
        "[[source]]\nname = \"tree\"\npath = \"tree\"\n\n{plugins}[[pipeline]]\nname = \"case\"\nsource = \"tree\"\n{steps}"
    );
    let cfg = config(case, &text).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
    let moor = Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(cfg.clone()));
    let mut out = String::new();
    // Renderers are told the pipeline and its namespace, as an offline `moor build` tells them.
    let context = RenderContext { pipeline: "case".into(), namespace: "apps".into(), cluster: None };
    match render_offline(&moor, &prepared, cfg.pipeline("case").unwrap(), Default::default(), context) {
        Ok(rendered) => {
            for o in &rendered.objects {
                out.push_str(&format!("{}  {}\n", o.origin(), o.display_name()));
            }
            for f in &rendered.findings {
                out.push_str(&format!("{f}\n"));
            }
        }
        Err(e) => {
            out.push_str(&format!("error: {e}\n"));
            for f in e.error.findings() {
                out.push_str(&format!("{f}\n"));
            }
        }
    }
    out
}

#[test]
fn pipeline_fixtures_match_their_expectations() {
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(data_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 10, "fixtures missing");
    let bless = std::env::var_os("MOOR_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let actual = run_case(case);
        let expected_file = case.join("expected.txt");
        if bless {
            std::fs::write(&expected_file, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if actual != expected {
            failures.push(format!("--- {}\nexpected:\n{expected}actual:\n{actual}", case.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
