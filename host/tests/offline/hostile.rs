//! Hostile trees get a clear error, and nothing outside the snapshot is read.

use moor::config::{ByteSize, TreeLimits};
use moor::source::SourceError;
use moor::source::tree::{TreeBuilder, snapshot_dir};

use crate::support::*;

fn snap(dir: &std::path::Path, limits: TreeLimits) -> Result<moor::source::Snapshot, SourceError> {
    let store = tempfile::tempdir().unwrap();
    snapshot_dir("hostile", dir, &store.keep(), limits)
}

#[test]
fn a_symlink_out_of_the_tree_is_refused() {
    let dir = tree(&[("app/cm.yaml", "a: 1\n")]);
    std::os::unix::fs::symlink("../../../../etc/passwd", dir.path().join("app/passwd.yaml")).unwrap();
    let err = snap(dir.path(), TreeLimits::default()).unwrap_err().to_string();
    assert!(err.contains("source `hostile`: symlink `app/passwd.yaml` points outside the tree"), "{err}");

    let dir = tree(&[("cm.yaml", "a: 1\n")]);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("abs.yaml")).unwrap();
    assert!(snap(dir.path(), TreeLimits::default()).unwrap_err().to_string().contains("points outside the tree"));
}

#[test]
fn a_symlink_inside_the_tree_is_kept() {
    let dir = tree(&[("base/cm.yaml", "a: 1\n")]);
    std::os::unix::fs::symlink("base/cm.yaml", dir.path().join("link.yaml")).unwrap();
    let s = snap(dir.path(), TreeLimits::default()).unwrap();
    assert_eq!(std::fs::read_to_string(s.root.join("link.yaml")).unwrap(), "a: 1\n");
}

#[test]
fn dot_dot_and_absolute_paths_are_refused() {
    let store = tempfile::tempdir().unwrap();
    let mut b = TreeBuilder::new("plugin-source", store.path(), TreeLimits::default()).unwrap();
    for bad in ["../escape.yaml", "a/../../b", "/etc/passwd", "", "a/./b"] {
        let err = b.add_file(bad, false, b"x").unwrap_err().to_string();
        assert!(err.contains("paths must be relative and stay inside the tree"), "{bad}: {err}");
    }
    assert!(!store.path().parent().unwrap().join("escape.yaml").exists());
}

#[test]
fn a_file_over_the_size_cap_is_refused() {
    let big = "x".repeat(2048);
    let dir = tree(&[("big.yaml", &big)]);
    let limits = TreeLimits { max_file_size: ByteSize(1024), ..TreeLimits::default() };
    let err = snap(dir.path(), limits).unwrap_err().to_string();
    assert!(err.contains("`big.yaml` is 2048 bytes, over the 1024 byte `max_file_size` limit"), "{err}");
}

#[test]
fn more_files_than_the_count_cap_are_refused() {
    let files: Vec<(String, &str)> = (0..11).map(|i| (format!("f{i}.yaml"), "a: 1\n")).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let dir = tree(&refs);
    let limits = TreeLimits { max_files: 10, ..TreeLimits::default() };
    let err = snap(dir.path(), limits).unwrap_err().to_string();
    assert!(err.contains("more than 10 files"), "{err}");
}

#[test]
fn a_yaml_alias_bomb_fails_its_pipeline_only() {
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        bomb.push_str(&format!("  {}: &{} [{}]\n", w[1], w[1], vec![format!("*{}", w[0]); 9].join(",")));
    }
    let dir = tree(&[
        ("bomb/laughs.yaml", &bomb),
        ("fine/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n"),
    ]);
    let text = "[[source]]\nname = \"s\"\npath = \".\"\n\n[[pipeline]]\nname = \"bomb\"\nsource = \"s\"\npath = \"bomb\"\n\n[[pipeline]]\nname = \"fine\"\nsource = \"s\"\npath = \"fine\"\n";
    let cfg = config(dir.path(), text).unwrap();
    let moor = moor::reconcile::Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(cfg.clone()));
    let err = render_offline(&moor, &prepared, cfg.pipeline("bomb").unwrap(), Default::default(), Default::default())
        .unwrap_err();
    let findings = err.error.findings();
    assert_eq!(findings.len(), 1, "{err}");
    assert!(findings[0].message.contains("repetition limit exceeded"), "{}", findings[0]);
    assert_eq!(findings[0].file.as_deref(), Some("bomb/laughs.yaml"));
    assert_eq!(
        render_offline(&moor, &prepared, cfg.pipeline("fine").unwrap(), Default::default(), Default::default())
            .unwrap()
            .objects
            .len(),
        1
    );
}

fn plugin_source_config(files: &str) -> String {
    let plugin = moor_test_artifacts::path("files-source");
    format!(
        "[[plugin]]\nname = \"files\"\npath = \"{plugin}\"\nsha256 = \"{}\"\n\n[[source]]\nname = \"gen\"\nplugin = {{ use = \"files\", with = {{ revision = \"r1\", files = [{files}] }} }}\n\n[[pipeline]]\nname = \"p\"\nsource = \"gen\"\n",
        sha256_of(std::path::Path::new(plugin))
    )
}

fn render_plugin_source(files: &str) -> Result<moor::reconcile::RunReport, moor::reconcile::RunFailure> {
    let dir = tree(&[]);
    let cfg = config(dir.path(), &plugin_source_config(files)).unwrap();
    let moor = moor::reconcile::Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(cfg.clone()));
    render_offline(&moor, &prepared, cfg.pipeline("p").unwrap(), Default::default(), Default::default())
}

#[test]
fn a_source_plugin_tree_is_snapshotted_and_rendered() {
    let rendered = render_plugin_source(
        r#"{ path = "app/cm.yaml", contents = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-plugin}\n" }"#,
    )
    .unwrap();
    assert_eq!(rendered.revision, "r1");
    assert_eq!(rendered.objects[0].origin(), "app/cm.yaml:1");
}

#[test]
fn a_source_plugin_cannot_write_outside_its_snapshot() {
    let err = render_plugin_source(r#"{ path = "../../escape.yaml", contents = "x" }"#).unwrap_err();
    assert_eq!(err.stage.as_str(), "source");
    assert!(err.to_string().contains("refusing path `../../escape.yaml`"), "{err}");
}
