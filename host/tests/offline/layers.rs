//! The layers ARCHITECTURE.md draws, checked: the plugin sandbox crate builds without kube
//! (or anything of moor's above it), and the host's top-level modules depend on each other
//! without a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

#[test]
fn the_sandbox_crate_depends_on_no_kube_and_nothing_of_moor_above_it() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "--offline", "--locked", "-p", "moor-sandbox", "-e", "normal", "--prefix", "none"])
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: BTreeSet<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains("wasmtime"), "not the sandbox's tree: {tree}");
    let forbidden: Vec<&&str> = crates
        .iter()
        .filter(|c| c.starts_with("kube") || c.starts_with("k8s-") || **c == "moor" || **c == "gix")
        .collect();
    assert!(forbidden.is_empty(), "moor-sandbox depends on {forbidden:?}");
}

/// `crate::<module>` references between the top-level modules of `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let tops: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    let mut graph = BTreeMap::new();
    for entry in walkdir::WalkDir::new(src).into_iter().map(Result::unwrap).filter(|e| e.file_type().is_file()) {
        let rel = entry.path().strip_prefix(src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let edges: &mut BTreeSet<String> = graph.entry(top.clone()).or_default();
        // `crate::name` and each name of `crate::{a, b::c}`.
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(0)]
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or("").trim())
                    .collect(),
                None => vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("")],
            };
            edges.extend(names.into_iter().filter(|n| tops.contains(*n) && **n != top).map(str::to_owned));
        }
    }
    graph
}

/// A cycle of `graph`, if it has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            return Some(path[at..].iter().cloned().chain([node.to_owned()]).collect());
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_top_level_modules_have_no_cycle() {
    for krate in ["host/src", "sandbox/src"] {
        let graph = module_graph(&workspace().join(krate));
        assert!(graph.len() > 5, "{krate}: {graph:?}");
        assert_eq!(cycle(&graph), None, "{krate}");
    }
    // The check sees a cycle where there is one.
    let two = BTreeMap::from([("a".into(), BTreeSet::from(["b".into()])), ("b".into(), BTreeSet::from(["a".into()]))]);
    assert_eq!(cycle(&two), Some(vec!["a".into(), "b".into(), "a".into()]));
}
