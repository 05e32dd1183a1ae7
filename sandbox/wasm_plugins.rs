//! Building plugin crates to wasm32-wasip2 components from a build script: shared by
//! `sandbox/build.rs` (the built-in plugins) and `tests/artifacts/build.rs` (test plugins).
//!
//! Each crate is built by its own `cargo build` so that the SDK's per-kind feature is not
//! unified across plugins (a component must carry exactly one world). The nested builds
//! use their own target directory, next to the outer one, and the `plugin` profile.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target directory of the nested builds: `wasm-plugins` in the outer one.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-plugins")
}

/// Builds each crate directly under `dir`; returns (directory name, component path).
pub fn build_all(dir: &Path, target_dir: &Path, skip: &[&str]) -> Vec<(String, PathBuf)> {
    let mut crates: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .filter(|p| !skip.iter().any(|s| p.file_name().unwrap() == *s))
        .collect();
    crates.sort();
    crates
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let package = package_name(&path.join("Cargo.toml"));
            (name, build(&package, target_dir))
        })
        .collect()
}

fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    let value: toml::Table = text.parse().unwrap();
    value["package"]["name"].as_str().unwrap().to_owned()
}

fn build(package: &str, target_dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--profile", "plugin", "--target", "wasm32-wasip2", "-p", package])
        .arg("--target-dir")
        .arg(target_dir);
    // Do not let the outer build's wrappers and flags (clippy, coverage) leak in.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build plugins");
    if !status.success() {
        panic!(
            "building plugin `{package}` for wasm32-wasip2 failed; is the target installed? \
             (`rustup target add wasm32-wasip2`)"
        );
    }
    let artifact = target_dir.join("wasm32-wasip2/plugin").join(format!("{}.wasm", package.replace('-', "_")));
    assert!(artifact.exists(), "plugin `{package}` built but {} is missing", artifact.display());
    artifact
}
