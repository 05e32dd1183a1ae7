//! The git source against a repository made in the test: branch, tag, commit pin,
//! sub-path, and an unchanged ref that does no clone.

use std::path::Path;
use std::process::Command;

use moor::config::{GitSpec, TreeLimits};
use moor::source::git::{FetchReport, snapshot};

use crate::support::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn commit(repo: &Path, file: &str, contents: &str, message: &str) -> String {
    let at = repo.join(file);
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::write(at, contents).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: std::path::PathBuf,
    cache: std::path::PathBuf,
    first: String,
    tagged: String,
    head: String,
}

/// main: c1 (apps/web v1) → c2 (tag v1, apps/web v2) → c3 (apps/web v3); branch `other`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let first = commit(&repo, "apps/web/cm.yaml", "version: 1\n", "one");
    let tagged = commit(&repo, "apps/web/cm.yaml", "version: 2\n", "two");
    git(&repo, &["tag", "-a", "v1", "-m", "v1"]);
    let head = commit(&repo, "apps/web/cm.yaml", "version: 3\n", "three");
    git(&repo, &["branch", "other", &first]);
    let cache = dir.path().join("cache");
    Fixture { _dir: dir, repo, cache, first, tagged, head }
}

fn spec(f: &Fixture, reference: Option<&str>) -> GitSpec {
    GitSpec {
        url: format!("file://{}", f.repo.display()),
        reference: reference.map(str::to_owned),
        depth: 1,
        credentials: None,
        ca_file: None,
        known_hosts_file: None,
    }
}

fn fetch(f: &Fixture, reference: Option<&str>) -> (moor::source::Snapshot, FetchReport) {
    let interrupt = moor::interrupt::Interrupt::new();
    snapshot("apps", &spec(f, reference), Path::new("/"), &f.cache, TreeLimits::default(), None, &interrupt).unwrap()
}

fn read(s: &moor::source::Snapshot, path: &str) -> String {
    std::fs::read_to_string(s.root.join(path)).unwrap()
}

#[test]
fn a_branch_resolves_to_its_head_commit() {
    let f = fixture();
    let (s, report) = fetch(&f, Some("main"));
    assert_eq!(s.revision, f.head);
    assert_eq!(read(&s, "apps/web/cm.yaml"), "version: 3\n");
    assert!(report.cloned && report.received);
    let (s, _) = fetch(&f, Some("other"));
    assert_eq!(s.revision, f.first);
    let (s, _) = fetch(&f, None);
    assert_eq!(s.revision, f.head, "no ref means the remote's HEAD");
}

#[test]
fn a_tag_resolves_to_the_tagged_commit() {
    let f = fixture();
    let (s, _) = fetch(&f, Some("v1"));
    assert_eq!(s.revision, f.tagged);
    assert_eq!(read(&s, "apps/web/cm.yaml"), "version: 2\n");
}

#[test]
fn a_pinned_commit_is_fetched_then_served_offline() {
    let f = fixture();
    let (s, _) = fetch(&f, Some(&f.first));
    assert_eq!(s.revision, f.first);
    assert_eq!(read(&s, "apps/web/cm.yaml"), "version: 1\n");
    // Once the commit is in the mirror, the remote is not needed at all.
    std::fs::rename(&f.repo, f.repo.with_extension("gone")).unwrap();
    let (s, report) = fetch(&f, Some(&f.first));
    assert_eq!(s.revision, f.first);
    assert!(!report.contacted, "{report:?}");
}

#[test]
fn an_unchanged_ref_does_no_clone_and_writes_nothing() {
    let f = fixture();
    let (first, report) = fetch(&f, Some("main"));
    assert!(report.cloned && report.received && report.written, "{report:?}");
    let (second, report) = fetch(&f, Some("main"));
    assert_eq!(report, FetchReport { cloned: false, contacted: true, received: false, written: false });
    assert_eq!(second.root, first.root);

    // A new commit is picked up by the next fetch, into the same mirror.
    let next = commit(&f.repo, "apps/web/cm.yaml", "version: 4\n", "four");
    let (third, report) = fetch(&f, Some("main"));
    assert_eq!(third.revision, next);
    assert!(!report.cloned && report.received);
}

#[test]
fn a_sub_path_of_a_git_source_renders_only_that_directory() {
    let f = fixture();
    commit(&f.repo, "apps/web/deploy.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n", "web");
    commit(&f.repo, "apps/db/deploy.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\n", "db");
    let text = format!(
        "[[source]]\nname = \"apps\"\ngit = {{ url = \"file://{}\", ref = \"main\" }}\n\n[[pipeline]]\nname = \"web\"\nsource = \"apps\"\npath = \"apps/web\"\n",
        f.repo.display()
    );
    let dir = tree(&[]);
    let cfg = config(dir.path(), &text).unwrap();
    let moor = moor::reconcile::Moor::new(&f.cache).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(cfg.clone()));
    let rendered =
        render_offline(&moor, &prepared, cfg.pipeline("web").unwrap(), Default::default(), Default::default()).unwrap();
    let names: Vec<_> = rendered.objects.iter().map(|o| (o.name().to_owned(), o.origin())).collect();
    assert_eq!(names, vec![("web".to_owned(), "apps/web/deploy.yaml:1".to_owned())]);
    assert_eq!(rendered.revision, git(&f.repo, &["rev-parse", "HEAD"]));
}
