//! Compiles the test-only plugin crates `tests/plugins/*` to wasm32-wasip2 components and
//! hands their paths to the tests (`$OUT_DIR/test_plugins.rs`), as wasmtime's
//! `crates/test-programs/artifacts` does. The shipped `moor` crate knows nothing of them.

#[path = "../../host/wasm_plugins.rs"]
mod wasm_plugins;

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for dir in ["wit", "plugins/sdk", "plugins/object", "tests/plugins", "Cargo.toml", "host/wasm_plugins.rs"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let tests = wasm_plugins::build_all(&root.join("tests/plugins"), &wasm_plugins::target_dir(&root), &[]);
    let mut src = String::from(
        "/// Test-only plugins: (name, path of the component).\npub static TEST_PLUGINS: &[(&str, &str)] = &[\n",
    );
    for (name, path) in &tests {
        src.push_str(&format!("    ({name:?}, {:?}),\n", path.display().to_string()));
    }
    src.push_str("];\n");
    std::fs::write(out.join("test_plugins.rs"), src).unwrap();
}
