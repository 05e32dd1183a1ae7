//! Where a key path (`pipeline[3].render[1].with`) is written in a config file. The typed
//! config holds no spans: an error found after serde names its key path, and only then is
//! the text parsed again and the path walked to the place the error points at.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The keys that identify a table: an error about the whole table points at its value (a
/// pipeline's `name`, a step's `use`) rather than at the table's start.
const IDENTIFYING: [&str; 2] = ["name", "use"];

/// The span `key` names in `text`. A path that is not all written (a missing field, a
/// default) falls back to its deepest prefix that is; a table found points at its
/// identifying key. Text that does not parse, or nothing of the path, gives `0..0`.
pub(super) fn locate(text: &str, key: &str) -> Range<usize> {
    let Ok(root) = DeTable::parse(text) else { return 0..0 };
    let span = root.span();
    let root = Spanned::new(span, DeValue::Table(root.into_inner()));
    let mut node = &root;
    for segment in segments(key) {
        let next = match segment {
            Segment::Key(name) => node.get_ref().get(name),
            Segment::Index(index) => node.get_ref().get(index),
        };
        match next {
            Some(next) => node = next,
            None => break,
        }
    }
    let identified = IDENTIFYING.iter().find_map(|k| node.get_ref().get(*k));
    if std::ptr::eq(node, &root) && identified.is_none() {
        return 0..0;
    }
    identified.unwrap_or(node).span()
}

/// One step of a key path: a key of a table, or an index of an array.
#[derive(Debug, PartialEq)]
enum Segment<'k> {
    Key(&'k str),
    Index(usize),
}

/// `a.b[2].c` as `a`, `b`, `[2]`, `c`. An index that is not a number matches nothing.
fn segments(key: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let mut pieces = part.split('[');
        if let Some(name) = pieces.next().filter(|name| !name.is_empty()) {
            out.push(Segment::Key(name));
        }
        for index in pieces {
            out.push(Segment::Index(index.trim_end_matches(']').parse().unwrap_or(usize::MAX)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[moor]\nworkers = 0\n\n\
                        [[pipeline]]\nname = \"a\"\nsource = \"s\"\n\n\
                        [[pipeline]]\nname = \"b\"\nsource = \"s\"\n\
                        render = [{ use = \"yaml\" }, { use = \"policy\", with = { x = 1 } }]\n";

    fn at(key: &str) -> &str {
        &TEXT[locate(TEXT, key)]
    }

    #[test]
    fn a_key_path_is_split_into_keys_and_indices() {
        use Segment::*;
        assert_eq!(
            segments("pipeline[3].render[1].with"),
            [Key("pipeline"), Index(3), Key("render"), Index(1), Key("with")]
        );
        assert_eq!(segments("moor.instance"), [Key("moor"), Key("instance")]);
        assert_eq!(segments("x[y]"), [Key("x"), Index(usize::MAX)]);
    }

    #[test]
    fn a_written_path_is_found() {
        assert_eq!(at("moor.workers"), "0");
        assert_eq!(at("pipeline[1].source"), "\"s\"");
        assert_eq!(at("pipeline[1].render[1].with"), "{ x = 1 }");
    }

    #[test]
    fn a_missing_path_falls_back_to_its_deepest_written_prefix() {
        assert_eq!(at("moor.instance"), "[moor]");
        assert_eq!(at("pipeline[0].render[0].use"), "\"a\"");
        assert_eq!(at("pipeline[1].render[0].with"), "\"yaml\"");
        assert_eq!(locate(TEXT, "cluster[0].name"), 0..0);
        assert_eq!(locate("not = [toml", "not"), 0..0);
    }

    #[test]
    fn a_table_points_at_its_name_or_a_step_at_its_plugin() {
        assert_eq!(at("pipeline[1]"), "\"b\"");
        assert_eq!(at("pipeline[1].render[1]"), "\"policy\"");
    }
}
