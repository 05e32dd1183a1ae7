//! Hostile inputs made by a generator (#16): families of cases swept over their
//! parameters (encodings, sizes, nesting depth, duplicate keys, numbers, Unicode in names
//! and file names, anchors, symlinks). Each case is a tree of its own, behind a source and
//! a pipeline of its own, rendered through the real yaml renderer in its sandbox; each
//! must give the right objects or a clear error that names its file, and no other case is
//! disturbed.

use std::path::Path;

use crate::support::*;

/// What a case must give.
#[derive(Debug, Clone)]
enum Want {
    /// Objects with these names, in file order.
    Names(Vec<String>),
    /// As many objects as this.
    Count(usize),
    /// An error whose text has this, and names the case's file (`file`, or any when empty).
    Error { has: &'static str, file: String },
}

/// One case: files (path → bytes) and symlinks (path → target) under its directory.
struct Case {
    name: String,
    files: Vec<(String, Vec<u8>)>,
    links: Vec<(String, String)>,
    want: Want,
}

impl Case {
    fn new(name: impl Into<String>, file: &str, text: impl Into<Vec<u8>>, want: Want) -> Case {
        Case { name: name.into(), files: vec![(file.to_owned(), text.into())], links: vec![], want }
    }
}

fn names(names: &[&str]) -> Want {
    Want::Names(names.iter().map(|n| n.to_string()).collect())
}

fn error(has: &'static str, file: &str) -> Want {
    Want::Error { has, file: file.to_owned() }
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
}

fn encodings() -> Vec<Case> {
    let plain = cm("enc");
    let crlf = plain.replace('\n', "\r\n");
    let utf16 = |big: bool| {
        let mut out = if big { vec![0xFE, 0xFF] } else { vec![0xFF, 0xFE] };
        for unit in plain.encode_utf16() {
            out.extend(if big { unit.to_be_bytes() } else { unit.to_le_bytes() });
        }
        out
    };
    let with_bytes = |bytes: &[u8]| {
        let mut out = format!("{plain}data:\n  k: \"").into_bytes();
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\"\n");
        out
    };
    let mut cases = vec![
        Case::new("enc-plain", "a.yaml", plain.clone(), names(&["enc"])),
        Case::new("enc-bom", "a.yaml", format!("\u{feff}{plain}"), names(&["enc"])),
        Case::new("enc-crlf", "a.yaml", crlf.clone(), names(&["enc"])),
        Case::new("enc-bom-crlf", "a.yaml", format!("\u{feff}{crlf}"), names(&["enc"])),
        Case::new(
            "enc-json-bom",
            "a.json",
            "\u{feff}{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"enc\"}}",
            names(&["enc"]),
        ),
        // UTF-16 with a byte-order mark, as kubectl reads it.
        Case::new("enc-utf16le", "a.yaml", utf16(false), names(&["enc"])),
        Case::new("enc-utf16be", "a.yaml", utf16(true), names(&["enc"])),
        Case::new(
            "enc-utf16-odd",
            "a.yaml",
            {
                let mut b = utf16(false);
                b.push(0x41);
                b
            },
            error("odd number of bytes", "a.yaml"),
        ),
        Case::new(
            "enc-utf16-lone-surrogate",
            "a.yaml",
            {
                let mut b = utf16(false);
                b.extend([0x00, 0xD8]);
                b
            },
            error("not UTF-16 text", "a.yaml"),
        ),
    ];
    // Bytes that are not UTF-8: Latin-1, an overlong form, a surrogate, a truncated sequence.
    for (i, bytes) in
        [&[0xE9u8][..], &[0xC0, 0xAF], &[0xED, 0xA0, 0x80], &[0xE2, 0x82], &[0xFF, 0xFE]].iter().enumerate()
    {
        cases.push(Case::new(format!("enc-bad-{i}"), "a.yaml", with_bytes(bytes), error("UTF-8", "a.yaml")));
    }
    // Control characters YAML does not allow in a document.
    for (i, c) in ['\u{0}', '\u{1}', '\u{1b}', '\u{7f}'].iter().enumerate() {
        let text = format!("{plain}data:\n  k: a{c}b\n");
        cases.push(Case::new(format!("enc-control-{i}"), "a.yaml", text, error("control characters", "a.yaml")));
    }
    cases
}

fn sizes() -> Vec<Case> {
    let mut cases = Vec::new();
    for (label, bytes) in [("1k", 1 << 10), ("64k", 64 << 10), ("1m", 1 << 20), ("4m", 4 << 20)] {
        let text = format!("{}data:\n  k: {}\n", cm(&format!("size-{label}")), "x".repeat(bytes));
        cases.push(Case::new(
            format!("size-value-{label}"),
            "a.yaml",
            text,
            Want::Names(vec![format!("size-{label}")]),
        ));
    }
    // Over the tree's per-file limit (16 MiB): refused when the source is read.
    let huge = format!("{}data:\n  k: {}\n", cm("huge"), "x".repeat(17 << 20));
    cases.push(Case::new("size-over-file-limit", "a.yaml", huge, error("max_file_size", "a.yaml")));
    for documents in [1usize, 10, 100, 1_000, 5_000] {
        let text: String = (0..documents).map(|i| format!("---\n{}", cm(&format!("doc-{i}")))).collect();
        cases.push(Case::new(format!("size-docs-{documents}"), "a.yaml", text, Want::Count(documents)));
    }
    cases.push(Case::new("size-empty", "a.yaml", "", Want::Count(0)));
    cases.push(Case::new("size-comments-only", "a.yaml", "# nothing\n# here\n", Want::Count(0)));
    cases.push(Case::new("size-markers-only", "a.yaml", "---\n---\n...\n---\n", Want::Count(0)));
    // YAML caps an implicit key at 1,024 characters; an explicit one (`? key`) has no cap.
    let long_key = format!("{}data:\n  {}: v\n", cm("long-key"), "k".repeat(100_000));
    cases.push(Case::new("size-long-key", "a.yaml", long_key, error("invalid YAML", "a.yaml")));
    let explicit = format!("{}data:\n  ? {}\n  : v\n", cm("long-key"), "k".repeat(100_000));
    cases.push(Case::new("size-long-explicit-key", "a.yaml", explicit, names(&["long-key"])));
    let many_keys: String = (0..20_000).map(|i| format!("  k{i}: v\n")).collect();
    cases.push(Case::new(
        "size-many-keys",
        "a.yaml",
        format!("{}data:\n{many_keys}", cm("many-keys")),
        names(&["many-keys"]),
    ));
    cases
}

/// Nesting, in block and flow style and in JSON, below and above the limit.
fn depth() -> Vec<Case> {
    let mut cases = Vec::new();
    let want = |depth: usize, name: &str, file: &str| {
        if depth <= 56 { names(&[name]) } else { error("nested deeper than 64 levels", file) }
    };
    // Indented, a file grows with the square of its depth: 2,000 levels are 4 MB.
    for depth in [8usize, 32, 56, 70, 100, 1_000, 2_000] {
        let mut block = format!("{}data:\n  k: v\nspec:\n", cm("block"));
        for level in 0..depth {
            block.push_str(&" ".repeat(2 * (level + 1)));
            block.push_str("a:\n");
        }
        cases.push(Case::new(format!("depth-block-{depth}"), "a.yaml", block, want(depth, "block", "a.yaml")));
    }
    for depth in [8usize, 32, 56, 70, 100, 1_000, 10_000, 100_000] {
        let seq = format!("{}spec: {}{}\n", cm("flow-seq"), "[".repeat(depth), "]".repeat(depth));
        cases.push(Case::new(format!("depth-flow-seq-{depth}"), "a.yaml", seq, want(depth, "flow-seq", "a.yaml")));
        let map = format!("{}spec: {}{}\n", cm("flow-map"), "{a: ".repeat(depth), "}".repeat(depth));
        cases.push(Case::new(format!("depth-flow-map-{depth}"), "a.yaml", map, want(depth, "flow-map", "a.yaml")));
    }
    // The object is one level, its `spec` arrays the others: 63 arrays make 64 levels.
    for depth in [50usize, 63, 64, 100, 100_000] {
        let text = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"json\"}},\"spec\":{}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let want = if depth <= 63 { names(&["json"]) } else { error("nested deeper than 64 levels", "a.json") };
        cases.push(Case::new(format!("depth-json-{depth}"), "a.json", text, want));
    }
    cases
}

fn duplicate_keys() -> Vec<Case> {
    let dup = "duplicate mapping key";
    let base = cm("dup");
    vec![
        Case::new("dup-top", "a.yaml", format!("{base}kind: Secret\n"), error(dup, "a.yaml")),
        Case::new("dup-name", "a.yaml", format!("{base}  name: other\n"), error(dup, "a.yaml")),
        Case::new("dup-data", "a.yaml", format!("{base}data:\n  k: '1'\n  k: '2'\n"), error(dup, "a.yaml")),
        Case::new("dup-labels", "a.yaml", format!("{base}  labels: {{a: x, a: y}}\n"), error(dup, "a.yaml")),
        Case::new(
            "dup-second-doc",
            "a.yaml",
            format!("{}---\n{base}data: {{k: a, k: b}}\n", cm("first")),
            error(dup, "a.yaml"),
        ),
        Case::new("dup-quoted", "a.yaml", format!("{base}data:\n  \"k\": a\n  'k': b\n"), error(dup, "a.yaml")),
        Case::new(
            "dup-json",
            "a.json",
            "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"dup\"},\"data\":{\"k\":\"a\",\"k\":\"b\"}}",
            error(dup, "a.json"),
        ),
        // A merge key's fields are overridden by the mapping's own: not a duplicate.
        Case::new("dup-merge-override", "a.yaml", format!("{base}data:\n  <<: {{k: a}}\n  k: b\n"), names(&["dup"])),
    ]
}

/// Numbers as kubectl reads them, and the ones no JSON can carry.
fn numbers() -> Vec<Case> {
    let mut cases = Vec::new();
    let number = |name: &str, literal: &str| format!("{}spec:\n  n: {literal}\n", cm(name));
    for (i, literal) in [
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551616",
        "99999999999999999999999",
        "1e300",
        "-0",
        "0x1F",
        "0o17",
        "0755",
        "1_000",
        "3.14159265358979323846264338327950288",
    ]
    .iter()
    .enumerate()
    {
        cases.push(Case::new(format!("num-ok-{i}"), "a.yaml", number("num", literal), names(&["num"])));
    }
    for (i, literal) in ["1e400", "-1e400", ".nan", ".inf", "-.inf", ".NaN"].iter().enumerate() {
        cases.push(Case::new(
            format!("num-bad-{i}"),
            "a.yaml",
            number("num", literal),
            error("non-finite float", "a.yaml"),
        ));
    }
    let json = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"num\"},\"n\":1e400}";
    cases.push(Case::new("num-bad-json", "a.json", json, error("number out of range", "a.json")));
    cases
}

/// Unicode in object names (kept exactly: the server judges names) and in file names.
fn unicode() -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, name) in [
        "caf\u{e9}",        // NFC
        "cafe\u{301}",      // NFD: another name than the NFC one
        "\u{430}pp",        // Cyrillic a
        "a\u{202e}b",       // right-to-left override
        "a\u{200b}b",       // zero-width space
        "\u{1f600}",        // emoji
        "\u{ff41}\u{ff42}", // full-width
        "a\u{fe0f}",        // variation selector
    ]
    .iter()
    .enumerate()
    {
        let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"{name}\"\n");
        cases.push(Case::new(format!("uni-name-{i}"), "a.yaml", text, names(&[name])));
    }
    for (i, file) in [
        "spaced name.yaml",
        "\u{fc}n\u{ef}code.yaml",
        "emoji-\u{1f600}.yaml",
        "a\u{202e}lmay.yaml",
        "new\nline.yaml",
        "tab\t.yaml",
    ]
    .iter()
    .enumerate()
    {
        cases.push(Case::new(
            format!("uni-file-{i}"),
            file,
            cm(&format!("file-{i}")),
            Want::Names(vec![format!("file-{i}")]),
        ));
        let broken = format!("{}data: [\n", cm("broken"));
        cases.push(Case::new(format!("uni-file-broken-{i}"), file, broken, error("invalid YAML", file)));
    }
    cases
}

fn anchors() -> Vec<Case> {
    let mut cases = Vec::new();
    // Billion laughs, from small (fine) to large (refused): fan-out 9 at `levels` levels.
    for levels in [2usize, 3, 5, 7, 9] {
        let mut text = format!(
            "{}data:\n  l0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
            cm("laughs")
        );
        for level in 1..levels {
            let refs = vec![format!("*l{}", level - 1); 9].join(",");
            text.push_str(&format!("  l{level}: &l{level} [{refs}]\n"));
        }
        let want = if levels <= 5 { names(&["laughs"]) } else { error("limit", "a.yaml") };
        cases.push(Case::new(format!("anchor-laughs-{levels}"), "a.yaml", text, want));
    }
    let base = cm("anchors");
    cases.extend([
        Case::new(
            "anchor-reuse",
            "a.yaml",
            format!("{base}  labels: &l {{app: x}}\n  annotations: *l\n"),
            names(&["anchors"]),
        ),
        Case::new(
            "anchor-merge",
            "a.yaml",
            format!("{base}data:\n  <<: &d {{a: '1'}}\n  b: '2'\n"),
            names(&["anchors"]),
        ),
        Case::new("anchor-unknown", "a.yaml", format!("{base}data: *nope\n"), error("anchor", "a.yaml")),
        Case::new(
            "anchor-other-document",
            "a.yaml",
            format!("{}  labels: &l {{a: b}}\n---\n{base}  labels: *l\n", cm("first")),
            error("anchor", "a.yaml"),
        ),
        Case::new("anchor-self", "a.yaml", format!("{base}data: &a [*a]\n"), error("invalid YAML", "a.yaml")),
        Case::new("anchor-on-key", "a.yaml", format!("{base}data:\n  &k key: v\n  other: *k\n"), names(&["anchors"])),
    ]);
    cases
}

fn symlinks() -> Vec<Case> {
    let ok = cm("linked");
    let link = |name: &str, links: &[(&str, &str)], files: &[(&str, &str)], want: Want| Case {
        name: name.into(),
        files: files.iter().map(|(p, t)| (p.to_string(), t.as_bytes().to_vec())).collect(),
        links: links.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect(),
        want,
    };
    let outside = "points outside the tree";
    vec![
        // Hidden directories are not read: the object comes through the link alone.
        link("link-inside", &[("b.yaml", ".shared/a.yaml")], &[(".shared/a.yaml", &ok)], names(&["linked"])),
        link(
            "link-chain-inside",
            &[("c.yaml", ".s/b.yaml"), (".s/b.yaml", "../.t/a.yaml")],
            &[(".t/a.yaml", &ok)],
            names(&["linked"]),
        ),
        link("link-duplicate", &[("b.yaml", "a.yaml")], &[("a.yaml", &ok)], error("defined twice", "")),
        // A symlink to a directory is not followed, as kubectl does not (with a warning).
        link("link-dir-inside", &[("alias", "real")], &[("real/a.yaml", &ok)], Want::Count(1)),
        link(
            "link-relative-out",
            &[("x.yaml", "../../../../../etc/passwd")],
            &[("a.yaml", &ok)],
            error(outside, "x.yaml"),
        ),
        link("link-absolute-out", &[("x.yaml", "/etc/passwd")], &[("a.yaml", &ok)], error(outside, "x.yaml")),
        link("link-device", &[("x.yaml", "/dev/zero")], &[("a.yaml", &ok)], error(outside, "x.yaml")),
        link("link-proc", &[("x.yaml", "/proc/self/environ")], &[("a.yaml", &ok)], error(outside, "x.yaml")),
        link("link-dir-out", &[("etc", "/etc")], &[("a.yaml", &ok)], error(outside, "etc")),
        link(
            "link-climb-via-inside",
            &[("sub/x.yaml", "../../outside.yaml")],
            &[("a.yaml", &ok)],
            error(outside, "sub/x.yaml"),
        ),
        link(
            "link-loop",
            &[("x.yaml", "y.yaml"), ("y.yaml", "x.yaml")],
            &[("a.yaml", &ok)],
            error("symlink", "x.yaml"),
        ),
        link("link-self", &[("x.yaml", "x.yaml")], &[("a.yaml", &ok)], error("symlink", "x.yaml")),
        link("link-dangling", &[("x.yaml", "missing.yaml")], &[("a.yaml", &ok)], error("symlink", "x.yaml")),
        link("link-root-cycle", &[("again", ".")], &[("a.yaml", &ok)], Want::Count(1)),
    ]
}

fn all_cases() -> Vec<Case> {
    [encodings(), sizes(), depth(), duplicate_keys(), numbers(), unicode(), anchors(), symlinks()]
        .into_iter()
        .flatten()
        .collect()
}

fn write_case(root: &Path, case: &Case) {
    let dir = root.join(&case.name);
    std::fs::create_dir_all(&dir).unwrap();
    for (path, bytes) in &case.files {
        let at = dir.join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, bytes).unwrap();
    }
    for (path, target) in &case.links {
        let at = dir.join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, at).unwrap();
    }
}

/// What a case gave, against what it must give; `None` when they agree.
fn judge(case: &Case, outcome: Result<moor::reconcile::RunReport, moor::reconcile::RunFailure>) -> Option<String> {
    let name = &case.name;
    match (&case.want, outcome) {
        (Want::Names(want), Ok(rendered)) => {
            let got: Vec<&str> = rendered.objects.iter().map(|o| o.name()).collect();
            (got != *want).then(|| format!("{name}: objects {got:?}, not {want:?}"))
        }
        (Want::Count(want), Ok(rendered)) => {
            (rendered.objects.len() != *want).then(|| format!("{name}: {} objects, not {want}", rendered.objects.len()))
        }
        (Want::Error { has, file }, Err(e)) => {
            let findings = e.error.findings();
            let text = format!("{e} {}", findings.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "));
            let names_file = file.is_empty()
                || findings.iter().any(|f| f.file.as_deref() == Some(file.as_str()))
                || text.contains(&format!("`{file}`"));
            if !text.contains(has) || !names_file {
                Some(format!("{name}: wanted an error with {has:?} naming `{file}`, got: {text}"))
            } else if text.contains("timed out") || text.contains("deadline") {
                Some(format!("{name}: waited out the plugin's deadline: {text}"))
            } else {
                None
            }
        }
        (want, Ok(rendered)) => Some(format!("{name}: wanted {want:?}, rendered {} objects", rendered.objects.len())),
        (want, Err(e)) => Some(format!("{name}: wanted {want:?}, failed: {e} {:?}", e.error.findings())),
    }
}

#[test]
fn generated_hostile_inputs_give_the_right_objects_or_a_clear_error() {
    let cases = all_cases();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for case in &cases {
        write_case(dir.path(), case);
        text.push_str(&format!(
            "[[source]]\nname = \"{0}\"\npath = \"{0}\"\n\n[[pipeline]]\nname = \"{0}\"\nsource = \"{0}\"\n\n",
            case.name
        ));
    }
    let cfg = config(dir.path(), &text).unwrap();
    let moor = moor::reconcile::Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(std::sync::Arc::new(cfg.clone()));
    let mut wrong = Vec::new();
    for case in &cases {
        let pipeline = cfg.pipeline(&case.name).unwrap();
        let outcome = render_offline(&moor, &prepared, pipeline, Default::default(), Default::default());
        wrong.extend(judge(case, outcome));
    }
    assert!(wrong.is_empty(), "{} of {} cases went wrong:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}
