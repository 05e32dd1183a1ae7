//! Config errors point at `file:line:column` and the key.

use crate::support::*;

const OK_SOURCE: &str = "[[source]]\nname = \"s\"\npath = \".\"\n";

fn error(text: &str) -> String {
    let dir = tree(&[]);
    let err = config(dir.path(), text).unwrap_err();
    // Print it the way the CLI does, without the temporary directory.
    format!(
        "{}:{}:{}: {}{}",
        "moor.toml",
        err.line,
        err.column,
        if err.key.is_empty() { String::new() } else { format!("{}: ", err.key) },
        err.message
    )
}

#[test]
fn an_unknown_key_is_located() {
    let text = format!("{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\nintervall = \"5m\"\n");
    let e = error(&text);
    assert!(
        e.starts_with("moor.toml:8:1: pipeline[0].intervall: unknown field `intervall`, expected one of `name`"),
        "{e}"
    );
}

#[test]
fn an_unknown_key_inside_a_spanned_table_names_only_the_users_keys() {
    let text = "[[source]]\nname = \"s\"\ngit = { url = \"https://example.com/x.git\", ca = \"ca.pem\" }\n";
    let e = error(text);
    assert!(e.starts_with("moor.toml:3:44: source[0].git.ca: unknown field `ca`, expected one of `url`"), "{e}");
}

#[test]
fn a_bad_duration_is_located() {
    let text = format!("{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\ninterval = \"5 parsecs\"\n");
    let e = error(&text);
    assert!(e.starts_with("moor.toml:8:12: pipeline[0].interval: invalid duration `5 parsecs`"), "{e}");
}

#[test]
fn a_dependency_cycle_is_located_and_named() {
    let text = format!(
        "{OK_SOURCE}\n[[pipeline]]\nname = \"a\"\nsource = \"s\"\ndepends_on = [\"b\"]\n\n[[pipeline]]\nname = \"b\"\nsource = \"s\"\ndepends_on = [\"a\"]\n"
    );
    let e = error(&text);
    assert_eq!(e, "moor.toml:13:15: pipeline[1].depends_on[0]: dependency cycle: a -> b -> a");
}

#[test]
fn a_missing_reference_is_located() {
    let text = format!("{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"nope\"\n");
    assert_eq!(error(&text), "moor.toml:7:10: pipeline[0].source: no source is named `nope`");
    let text =
        format!("{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\nrender = [{{ use = \"jsonnet\" }}]\n");
    assert_eq!(error(&text), "moor.toml:8:19: pipeline[0].render[0].use: no plugin is named `jsonnet`");
    let text = format!("{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\ndepends_on = [\"db\"]\n");
    assert_eq!(error(&text), "moor.toml:8:15: pipeline[0].depends_on[0]: no pipeline is named `db`");
}

#[test]
fn a_plugin_file_without_a_pin_is_refused() {
    let text = format!("{OK_SOURCE}\n[[plugin]]\nname = \"k\"\npath = \"k.wasm\"\n");
    assert_eq!(
        error(&text),
        "moor.toml:6:8: plugin[0]: a plugin file needs a `sha256` pin (see `moor plugin inspect FILE`)"
    );
}

#[test]
fn a_step_config_rejected_by_the_plugin_schema_is_located() {
    let dir = tree(&[]);
    let text = format!(
        "{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\nvalidate = [{{ use = \"policy\", with = {{ require_labels = \"team\" }} }}]\n"
    );
    let cfg = config(dir.path(), &text).unwrap();
    let moor = moor::reconcile::Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(cfg.clone()));
    let err = render_offline(&moor, &prepared, cfg.pipeline("web").unwrap(), Default::default(), Default::default())
        .unwrap_err();
    let moor::reconcile::StageError::Config(e) = *err.error else { panic!("{err:?}") };
    assert_eq!((e.line, e.column, e.key.as_str()), (8, 38, "pipeline[0].validate[0].with"), "{e}");
    assert!(e.message.contains("/require_labels") && e.message.contains("not of type \"array\""), "{e}");
}

#[test]
fn a_good_config_loads_with_defaults() {
    let dir = tree(&[]);
    let cfg = config(dir.path(), &format!("{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\n")).unwrap();
    let p = cfg.pipeline("web").unwrap();
    assert_eq!(p.render.len(), 1);
    assert!(p.prune && !p.dry_run);
}

#[test]
fn an_invalid_cel_health_check_is_located() {
    let text = format!(
        "{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\nhealth = [{{ kind = \"Widget\", ready = \"object.status.phase ==\" }}]\n"
    );
    let e = error(&text);
    assert!(e.starts_with("moor.toml:8:38: pipeline[0].health[0].ready: invalid CEL expression"), "{e}");
}

#[test]
fn a_helm_source_names_an_http_or_oci_repository_and_a_chart() {
    let source = |helm: &str| format!("[[source]]\nname = \"charts\"\nhelm = {helm}\n");
    let e = error(&source("{ repo = \"ftp://h/charts\", chart = \"web\" }"));
    assert_eq!(e, "moor.toml:3:8: source[0].helm: helm repository `ftp://h/charts` is not an http(s):// or oci:// URL");
    let e = error(&source("{ repo = \"https://h/charts\", chart = \"web\", insecure = true }"));
    assert!(e.ends_with("`insecure` is for oci:// repositories: an HTTP repository says http:// in its URL"), "{e}");
    let e = error(&source("{ repo = \"oci://h/charts\", chart = \"charts/web:1.0\" }"));
    assert!(e.ends_with("`chart` must be a chart's name, not `charts/web:1.0`"), "{e}");
    let dir = tree(&[]);
    config(dir.path(), &source("{ repo = \"oci://h:5000/charts\", chart = \"web\", insecure = true }"))
        .expect("an oci:// repository is a helm source");
}

#[test]
fn an_oci_plugin_is_pinned_by_its_manifest_digest() {
    let plugin = |keys: &str| format!("[[plugin]]\nname = \"policy-x\"\n{keys}\n");
    let e = error(&plugin("oci = \"ghcr.io/team/policy:1.0.0\""));
    assert!(e.starts_with("moor.toml:3:7: plugin[0].oci: an `oci` plugin needs its manifest digest"), "{e}");
    let e = error(&plugin(&format!(
        "oci = \"ghcr.io/team/policy:1.0.0@sha256:{}\"\nsha256 = \"{}\"",
        "a".repeat(64),
        "b".repeat(64)
    )));
    assert!(e.ends_with("plugin[0].sha256: an `oci` plugin is pinned by the digest in its reference"), "{e}");
    let e = error(&plugin(&format!("path = \"p.wasm\"\noci = \"ghcr.io/team/policy@sha256:{}\"", "a".repeat(64))));
    assert!(e.ends_with("plugin[0]: a plugin is a `path` or an `oci` reference, not both"), "{e}");
    let e = error(&plugin(&format!("path = \"p.wasm\"\nsha256 = \"{}\"\ninsecure = true", "a".repeat(64))));
    assert!(e.ends_with("plugin[0].insecure: `insecure` is for `oci` plugins"), "{e}");
    let dir = tree(&[]);
    let pinned =
        plugin(&format!("oci = \"localhost:5000/team/policy:1.0.0@sha256:{}\"\ninsecure = true", "a".repeat(64)));
    config(dir.path(), &pinned).expect("a pinned oci plugin");
}

#[test]
fn wait_for_gates_are_read_and_bad_ones_located() {
    let pipeline = |gates: &str| {
        format!(
            "{OK_SOURCE}\n[[pipeline]]\nname = \"web\"\nsource = \"s\"\ntarget_namespace = \"shop\"\nwait_for = {gates}\n"
        )
    };
    let dir = tree(&[]);
    let gates = "[{ service = \"db\" }, { job = \"infra:migrate\" }, { job = { labels = { step = \"seed\" } } }, \
                 { pod = { labels = { app = \"cache\" }, namespace = \"data\" } }, { daemonset = \"kube-system:agent\" }, \
                 { socket = \"/run/x.sock\" }, { custom_resource = { api_version = \"example.com/v1\", kind = \"Widget\", \
                 name = \"w\", fields = [{ key = \"status.phase\", value = \"Ready\" }] } }]";
    let cfg = config(dir.path(), &pipeline(gates)).unwrap();
    let shown: Vec<String> = cfg.pipeline("web").unwrap().gates.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        shown,
        [
            "service shop/db",
            "job infra/migrate",
            "jobs step=seed in shop",
            "pod app=cache in data",
            "daemonset kube-system/agent",
            "socket /run/x.sock",
            "Widget shop/w"
        ]
    );
    assert_eq!(
        error(&pipeline("[{ service = \"a:b:c\" }]")),
        "moor.toml:9:13: pipeline[0].wait_for[0]: `a:b:c` is not `namespace:name` or `name`"
    );
    let e = error(&pipeline("[{ container = \"sidecar\" }]"));
    assert!(e.starts_with("moor.toml:9:") && e.contains("unknown variant `container`"), "{e}");
    let e = error(&pipeline("[{ pod = { labels = {} } }]"));
    assert!(e.ends_with("pipeline[0].wait_for[0]: `labels` is empty: it would match every pod"), "{e}");
    let e = error(&pipeline("[{ job = 3 }]"));
    assert!(e.contains("`[namespace:]name`, or a table with `labels`"), "{e}");
}
