//! Multi-document YAML text: where each document starts, and parser messages moved from
//! document lines to file lines. Pure; the renderer parses each document on its own.

/// One YAML document of a multi-document file.
#[derive(Debug, PartialEq)]
pub struct Doc<'a> {
    pub text: &'a str,
    /// 1-based line of the document's first line.
    pub start_line: u32,
    /// 1-based line of its first line that is neither blank nor a comment.
    pub first_content_line: u32,
}

/// Splits on `---` and `...` marker lines, as Kubernetes' own YAML reader does.
pub fn split_documents<'a>(text: &'a str) -> Vec<Doc<'a>> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    let mut offset = 0usize;
    let mut first_content: Option<u32> = None;
    let push = |docs: &mut Vec<Doc<'a>>, s: usize, e: usize, line: u32, content: Option<u32>| {
        if let Some(first_content_line) = content {
            docs.push(Doc { text: &text[s..e], start_line: line, first_content_line });
        }
    };
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index as u32 + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") || bare == "...";
        if is_marker {
            push(&mut docs, start, offset, start_line, first_content);
            start = offset + line.len();
            start_line = number + 1;
            first_content = None;
            // `--- value` carries content on the marker line itself.
            if let Some(rest) = bare.strip_prefix("---").map(str::trim)
                && !rest.is_empty()
                && !rest.starts_with('#')
            {
                start = offset + 3;
                start_line = number;
                first_content = Some(number);
            }
        } else if first_content.is_none() {
            let t = bare.trim_start();
            if !t.is_empty() && !t.starts_with('#') {
                first_content = Some(number);
            }
        }
        offset += line.len();
    }
    push(&mut docs, start, text.len(), start_line, first_content);
    docs
}

/// Rewrites every `line N` in a parser message, which counts from the start of the
/// document, to count from the start of the file.
pub(crate) fn shift_lines(message: &str, offset: u32) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("line ") {
        let (head, tail) = rest.split_at(i + 5);
        out.push_str(head);
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        match tail[..digits].parse::<u32>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&tail[..digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_keeps_their_lines() {
        let text = "# header\n---\na: 1\n---\n\n# c\nb: 2\n...\n---\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].start_line, docs[0].first_content_line), (3, 3));
        assert_eq!((docs[1].start_line, docs[1].first_content_line), (5, 7));
        assert_eq!(docs[1].text, "\n# c\nb: 2\n");
    }
}
