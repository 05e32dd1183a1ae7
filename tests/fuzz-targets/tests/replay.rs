//! Replays every file of `fuzz/corpus/<target>` (the seeds) and `fuzz/regressions/<target>`
//! (inputs that once crashed a target, each named after what it broke) through the target's
//! body, on stable, in `cargo test`. A failure names the target and the file.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use moor_fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs each input of `kind` through its target; returns how many ran and what failed.
fn replay(kind: &str) -> (usize, Vec<String>) {
    let mut ran = 0;
    let mut failed = Vec::new();
    for (target, body) in TARGETS {
        for file in files(&fuzz_dir().join(kind).join(target)) {
            let input = std::fs::read(&file).unwrap();
            ran += 1;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&input))) {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                failed.push(format!("{target}: fuzz/{kind}/{target}/{}: {why}", file.file_name().unwrap().display()));
            }
        }
    }
    (ran, failed)
}

#[test]
fn every_seed_of_every_target_passes() {
    let (ran, failed) = replay("corpus");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // Every target has seeds: a renamed directory would otherwise replay nothing.
    for (target, _) in TARGETS {
        assert!(!files(&fuzz_dir().join("corpus").join(target)).is_empty(), "fuzz/corpus/{target} has no seeds");
    }
    assert!(ran >= TARGETS.len());
}

#[test]
fn every_kept_crash_is_fixed() {
    let (_, failed) = replay("regressions");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
