//! `moor plugin new`: a plugin project from a template, in Rust, Python, JavaScript or Go,
//! ready to build on a machine that reaches only the package registries: what is not
//! published (the SDK, the contract) is written into the project from this binary.
//!
//! Every project has the same shape: its source, `build.sh` (which makes `NAME.wasm`),
//! `test.sh` (which runs `moor plugin test` on `testdata/` and checks the result), and a
//! README.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::{Kind, Language};
use crate::plugins::PluginKind;

/// The contract, as every SDK builds against it.
const WIT: &str = include_str!("../../../plugins/sdk/wit/plugin.wit");
/// The workspace manifest: the versions the vendored Rust SDK is built with here.
const WORKSPACE: &str = include_str!("../../../Cargo.toml");
/// Tools from the package registries, at the versions tested with (scripts/plugin-tools).
const COMPONENTIZE_PY: &str = "0.25.1";
const COMPONENTIZE_QJS: &str = "0.4.5";

/// One file of a project: its path and its text, `{{…}}` not yet filled.
type File = (&'static str, &'static str);

pub fn new(name: &str, kind: Kind, language: Language, dir: &Path) -> anyhow::Result<ExitCode> {
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
    let files = files(language, kind)?;
    let vars = vars(name, kind, language)?;
    for (path, template) in files {
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, fill(template, &vars)).with_context(|| format!("cannot write {}", target.display()))?;
        if path.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    println!("created {} {} plugin `{name}` in {}", language.title(), PluginKind::from(kind), root.display());
    println!("next:");
    println!("  cd {} && ./build.sh && ./test.sh", root.display());
    println!("  moor plugin inspect {name}.wasm");
    Ok(ExitCode::SUCCESS)
}

impl Language {
    fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
            Language::Go => "Go",
        }
    }
}

/// The files of a project in `language` for `kind`.
fn files(language: Language, kind: Kind) -> anyhow::Result<Vec<File>> {
    let mut files: Vec<File> = vec![
        ("README.md", include_str!("templates/common/README.md.tmpl")),
        ("testdata/testdata.yaml", include_str!("templates/common/testdata.yaml")),
        (
            "test.sh",
            match kind {
                Kind::Renderer => include_str!("templates/common/test-renderer.sh.tmpl"),
                Kind::Validator => include_str!("templates/common/test-validator.sh.tmpl"),
                Kind::Notifier => include_str!("templates/common/test-notifier.sh.tmpl"),
                Kind::Source => include_str!("templates/common/test-source.sh.tmpl"),
            },
        ),
        (".gitignore", "*.wasm\ntarget/\nnode_modules/\n.venv/\n__pycache__/\n"),
    ];
    let source = match (language, kind) {
        (Language::Rust, Kind::Renderer) => ("src/lib.rs", include_str!("templates/rust/renderer.rs.tmpl")),
        (Language::Rust, Kind::Validator) => ("src/lib.rs", include_str!("templates/rust/validator.rs.tmpl")),
        (Language::Rust, Kind::Notifier) => ("src/lib.rs", include_str!("templates/rust/notifier.rs.tmpl")),
        (Language::Rust, Kind::Source) => ("src/lib.rs", include_str!("templates/rust/source.rs.tmpl")),
        (Language::Python, Kind::Renderer) => ("app.py", include_str!("templates/python/renderer.py.tmpl")),
        (Language::Python, Kind::Validator) => ("app.py", include_str!("templates/python/validator.py.tmpl")),
        (Language::Js, Kind::Renderer) => ("app.js", include_str!("templates/js/renderer.js.tmpl")),
        (Language::Js, Kind::Validator) => ("app.js", include_str!("templates/js/validator.js.tmpl")),
        (Language::Go, Kind::Renderer) => ("main.go", include_str!("templates/go/renderer.go.tmpl")),
        (Language::Go, Kind::Validator) => ("main.go", include_str!("templates/go/validator.go.tmpl")),
        (_, Kind::Notifier | Kind::Source) => bail!(
            "{} plugins can be renderers or validators; write {}s in Rust (--lang rust)",
            language.title(),
            PluginKind::from(kind)
        ),
    };
    files.push(source);
    files.extend(match language {
        Language::Rust => vec![
            ("Cargo.toml", include_str!("templates/rust/Cargo.toml.tmpl")),
            ("build.sh", include_str!("templates/rust/build.sh.tmpl")),
            ("vendor/moor-plugin-sdk/Cargo.toml", include_str!("templates/rust/sdk.Cargo.toml.tmpl")),
            ("vendor/moor-plugin-sdk/README.md", include_str!("../../../plugins/sdk/README.md")),
            ("vendor/moor-plugin-sdk/src/lib.rs", include_str!("../../../plugins/sdk/src/lib.rs")),
            ("vendor/moor-plugin-sdk/src/object.rs", include_str!("../../../plugins/sdk/src/object.rs")),
            ("vendor/moor-plugin-sdk/src/events.rs", include_str!("../../../plugins/sdk/src/events.rs")),
            ("vendor/moor-plugin-sdk/src/http.rs", include_str!("../../../plugins/sdk/src/http.rs")),
            ("vendor/moor-plugin-sdk/src/status.rs", include_str!("../../../plugins/sdk/src/status.rs")),
            ("vendor/moor-plugin-sdk/wit/plugin.wit", WIT),
            ("vendor/moor-object/Cargo.toml", include_str!("templates/rust/object.Cargo.toml.tmpl")),
            ("vendor/moor-object/src/lib.rs", include_str!("../../../plugins/object/src/lib.rs")),
        ],
        Language::Python => vec![
            ("build.sh", include_str!("templates/python/build.sh.tmpl")),
            ("requirements.txt", include_str!("templates/python/requirements.txt.tmpl")),
            ("moor_plugin/__init__.py", include_str!("../../../plugins/sdk-python/moor_plugin/__init__.py")),
            ("wit/plugin.wit", WIT),
        ],
        Language::Js => vec![
            ("build.sh", include_str!("templates/js/build.sh.tmpl")),
            ("package.json", include_str!("templates/js/package.json.tmpl")),
            ("moor-plugin.js", include_str!("../../../plugins/sdk-js/moor-plugin.js")),
            ("wit/plugin.wit", WIT),
        ],
        Language::Go => vec![
            ("build.sh", include_str!("templates/go/build.sh.tmpl")),
            ("go.mod", include_str!("../../../examples/plugins/go/require-label/go.mod")),
            ("go.sum", include_str!("../../../examples/plugins/go/require-label/go.sum")),
        ],
    });
    Ok(files)
}

/// What `{{…}}` stands for in the templates.
fn vars(name: &str, kind: Kind, language: Language) -> anyhow::Result<Vec<(&'static str, String)>> {
    let workspace: toml::Table = toml::from_str(WORKSPACE).context("the workspace manifest")?;
    let wit_bindgen = workspace
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.get("wit-bindgen"))
        .and_then(|w| w.get("version"))
        .and_then(toml::Value::as_str)
        .context("the workspace manifest has no wit-bindgen version")?;
    let (files, needs) = match language {
        Language::Rust => (
            "| `src/lib.rs` | the plugin |\n| `vendor/` | Moor's Rust SDK and the contract (`wit/`) |\n",
            "cargo and `rustup target add wasm32-wasip2`",
        ),
        Language::Python => (
            "| `app.py` | the plugin |\n| `moor_plugin/` | Moor's Python SDK |\n| `wit/` | the contract |\n",
            "componentize-py (installed from PyPI into .venv when not on PATH)",
        ),
        Language::Js => (
            "| `app.js` | the plugin |\n| `moor-plugin.js` | Moor's JavaScript SDK |\n| `wit/` | the contract |\n",
            "componentize-qjs (installed from npm when not on PATH)",
        ),
        Language::Go => ("| `main.go` | the plugin, a KRM function (kyaml's `fn/framework`) |\n", "Go 1.26"),
    };
    let usage = match kind {
        Kind::Renderer => {
            format!("render = [{{ use = \"yaml\" }}, {{ use = \"{name}\", with = {{ label = \"reviewed\" }} }}]")
        }
        Kind::Validator => format!("validate = [{{ use = \"{name}\", with = {{ deny_kinds = [\"Service\"] }} }}]"),
        Kind::Notifier => format!("notify = [{{ use = \"{name}\", with = {{ prefix = \"> \" }} }}]"),
        Kind::Source => {
            format!("# a source: [[source]] name = \"app\", plugin = \"{name}\", with = {{ namespace = \"made\" }}")
        }
    };
    Ok(vec![
        ("name", name.to_owned()),
        ("crate", name.replace('-', "_")),
        ("kind", PluginKind::from(kind).to_string()),
        ("language", language.title().to_owned()),
        ("files", files.to_owned()),
        ("needs", needs.to_owned()),
        ("usage", usage),
        ("moor_version", env!("CARGO_PKG_VERSION").to_owned()),
        ("wit_bindgen", wit_bindgen.to_owned()),
        ("componentize_py", COMPONENTIZE_PY.to_owned()),
        ("componentize_qjs", COMPONENTIZE_QJS.to_owned()),
        ("go_min", "1.26".to_owned()),
    ])
}

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(template.to_owned(), |text, (key, value)| text.replace(&format!("{{{{{key}}}}}"), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        for language in [Language::Rust, Language::Python, Language::Js, Language::Go] {
            for kind in [Kind::Renderer, Kind::Validator, Kind::Notifier, Kind::Source] {
                let Ok(files) = files(language, kind) else {
                    assert!(language != Language::Rust && matches!(kind, Kind::Notifier | Kind::Source));
                    continue;
                };
                let vars = vars("my-plugin", kind, language).unwrap();
                for (path, template) in files {
                    let text = fill(template, &vars);
                    assert!(!text.contains("{{"), "{language:?} {kind:?} {path}: {text}");
                }
            }
        }
    }

    #[test]
    fn python_js_and_go_plugins_are_renderers_or_validators() {
        let err = files(Language::Python, Kind::Notifier).unwrap_err().to_string();
        assert_eq!(err, "Python plugins can be renderers or validators; write notifiers in Rust (--lang rust)");
    }
}
