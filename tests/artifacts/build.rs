//! Compiles the test-only plugins and hands their paths to the tests
//! (`$OUT_DIR/test_plugins.rs`), as wasmtime's `crates/test-programs/artifacts` does: the
//! Rust crates `tests/plugins/*` to wasm32-wasip2 components, the Go KRM functions
//! `tests/krm/*` and the Go examples `examples/plugins/go/*` to wasip1 modules (with the
//! machine's Go). The shipped `moor` crate knows
//! nothing of them.

#[path = "../../sandbox/wasm_plugins.rs"]
mod wasm_plugins;

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for dir in [
        "plugins/sdk",
        "plugins/object",
        "tests/plugins",
        "tests/krm",
        "examples/plugins/go",
        "Cargo.toml",
        "sandbox/wasm_plugins.rs",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target = wasm_plugins::target_dir(&root);
    let mut tests = wasm_plugins::build_all(&root.join("tests/plugins"), &target, &[]);
    tests.extend(build_go(&root.join("tests/krm"), &target.join("krm")));
    tests.extend(build_go(&root.join("examples/plugins/go"), &target.join("krm")));
    let mut src = String::from(
        "/// Test-only plugins: (name, path of the component).\npub static TEST_PLUGINS: &[(&str, &str)] = &[\n",
    );
    for (name, path) in &tests {
        src.push_str(&format!("    ({name:?}, {:?}),\n", path.display().to_string()));
    }
    src.push_str("];\n");
    std::fs::write(out.join("test_plugins.rs"), src).unwrap();
}

/// Builds each Go module directly under `dir` to `out/<name>.wasm` (GOOS=wasip1).
fn build_go(dir: &std::path::Path, out: &std::path::Path) -> Vec<(String, PathBuf)> {
    std::fs::create_dir_all(out).unwrap();
    let mut modules: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("go.mod").exists())
        .collect();
    modules.sort();
    modules
        .into_iter()
        .map(|module| {
            let name = module.file_name().unwrap().to_string_lossy().into_owned();
            let wasm = out.join(format!("{name}.wasm"));
            let status = std::process::Command::new("go")
                .args(["build", "-trimpath", "-buildvcs=false", "-o"])
                .arg(&wasm)
                .arg(".")
                .current_dir(&module)
                .env("GOOS", "wasip1")
                .env("GOARCH", "wasm")
                .env("CGO_ENABLED", "0")
                .env("GOTOOLCHAIN", "local")
                .env("GOFLAGS", "-mod=readonly")
                .status()
                .expect("cannot run `go` to build the KRM functions; is Go installed?");
            assert!(status.success(), "building {} with Go failed", module.display());
            (name, wasm)
        })
        .collect()
}
