//! Compiles the plugin crates `plugins/*` (except the SDK and the object model) to
//! wasm32-wasip2 components before the host is built: the built-in plugins, embedded in
//! the `moor` binary (`$OUT_DIR/builtin.rs`). Test-only plugins are built by the
//! `moor-test-artifacts` crate, not here.

mod wasm_plugins;

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());

    // The workspace manifest holds the `plugin` profile.
    for dir in ["plugins", "Cargo.toml", "sandbox/wasm_plugins.rs"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    // `sdk` and `object` are libraries for plugins, not plugins.
    let builtin = wasm_plugins::build_all(&root.join("plugins"), &wasm_plugins::target_dir(&root), &["sdk", "object"]);
    let mut src =
        String::from("/// Built-in plugins: (name, component bytes).\npub static BUILTIN: &[(&str, &[u8])] = &[\n");
    for (name, path) in &builtin {
        src.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    src.push_str("];\n");
    std::fs::write(out.join("builtin.rs"), src).unwrap();

    // The contract version, defined once: by the package line of wit/plugin.wit. (The
    // `bindgen!` inline world names it too; it does not compile when the two differ.)
    let wit = std::fs::read_to_string(root.join("plugins/sdk/wit/plugin.wit")).unwrap();
    let version = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package moor:plugin@")?.strip_suffix(';'))
        .expect("wit/plugin.wit declares `package moor:plugin@VERSION;`");
    std::fs::write(
        out.join("contract.rs"),
        format!("/// Version of the contract in `wit/` that this host speaks.\npub const CONTRACT_VERSION: &str = {version:?};\n"),
    )
    .unwrap();
}
