//! `moor plugin new`: a plugin crate from a template, ready to build.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::Kind;

/// Where the SDK comes from when no local checkout is given.
const SDK_GIT: &str = "https://github.com/moor-dev/moor";

pub fn new(name: &str, kind: Kind, dir: &Path, sdk_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        bail!("plugin name `{name}`: use lowercase letters, digits and `-`, starting with a letter");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let (kind_name, source) = match kind {
        Kind::Renderer => ("renderer", include_str!("templates/renderer.rs.tmpl")),
        Kind::Validator => ("validator", include_str!("templates/validator.rs.tmpl")),
        Kind::Notifier => ("notifier", include_str!("templates/notifier.rs.tmpl")),
        Kind::Source => ("source", include_str!("templates/source.rs.tmpl")),
    };
    let sdk = match sdk_path {
        Some(path) => {
            let path = path.canonicalize().with_context(|| format!("SDK path {}", path.display()))?;
            format!("path = {:?}", path.display().to_string())
        }
        None => format!("git = {SDK_GIT:?}"),
    };
    let fill =
        |template: &str| template.replace("{{name}}", name).replace("{{kind}}", kind_name).replace("{{sdk}}", &sdk);
    std::fs::create_dir_all(root.join("src")).with_context(|| format!("cannot create {}", root.display()))?;
    std::fs::write(root.join("Cargo.toml"), fill(include_str!("templates/Cargo.toml.tmpl")))?;
    std::fs::write(root.join("src/lib.rs"), fill(source))?;
    let wasm = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
    println!("created {kind_name} plugin `{name}` in {}", root.display());
    println!("next:");
    println!("  cd {} && cargo build --release --target wasm32-wasip2", root.display());
    println!("  moor plugin inspect {wasm}");
    println!("  moor plugin test {wasm} --input DIR");
    Ok(ExitCode::SUCCESS)
}
