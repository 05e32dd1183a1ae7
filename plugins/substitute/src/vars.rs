//! The substitution language of Flux's `postBuild.substitute`: `${var}`,
//! `${var:=default}` / `${var:-default}` (when unset or empty), `${var=default}` /
//! `${var-default}` (when unset), `${var:offset}`, `${var:offset:length}`,
//! `${var/from/to}` (the first match) and `$${var}` for a literal `${var}`. A `$` not
//! followed by `{` is left alone, as Flux leaves `$var`.

use std::collections::BTreeMap;

/// Why a text could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// `${` without its `}`.
    Unclosed(String),
    /// What is inside `${…}` does not start with a variable name.
    BadName(String),
    /// Strict mode: a variable without a value or a default.
    Unset(String),
    /// `${var:…}` with an offset or length that is not a number.
    BadOperation(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unclosed(at) => write!(f, "`{at}` has no closing `}}`"),
            Error::BadName(expr) => {
                write!(f, "`${{{expr}}}`: a variable name is letters, digits and `_`, not starting with a digit")
            }
            Error::Unset(name) => write!(f, "variable `{name}` is not set and has no default (strict mode)"),
            Error::BadOperation(expr) => write!(f, "`${{{expr}}}`: the offset and length must be numbers"),
        }
    }
}

/// `text` with every `${…}` replaced from `vars`. Unset variables become empty, or an error
/// when `strict`.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>, strict: bool) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(escaped) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(open) = tail.strip_prefix("${") {
            let end = open.find('}').ok_or_else(|| Error::Unclosed(tail.chars().take(40).collect()))?;
            out.push_str(&expand(&open[..end], vars, strict)?);
            rest = &open[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One `${expr}`.
fn expand(expr: &str, vars: &BTreeMap<String, String>, strict: bool) -> Result<String, Error> {
    let name_len = expr
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(expr.len(), |(i, _)| i);
    if name_len == 0 {
        return Err(Error::BadName(expr.into()));
    }
    let (name, op) = expr.split_at(name_len);
    let value = vars.get(name);
    let unset = || if strict { Err(Error::Unset(name.into())) } else { Ok(String::new()) };
    let default = [":=", ":-", "=", "-"].iter().find_map(|p| op.strip_prefix(p).map(|d| (p.starts_with(':'), d)));
    if let Some((or_empty, default)) = default {
        return Ok(match value {
            Some(v) if !(or_empty && v.is_empty()) => v.clone(),
            _ => default.to_owned(),
        });
    }
    let Some(value) = value else { return unset() };
    if op.is_empty() {
        return Ok(value.clone());
    }
    if let Some(range) = op.strip_prefix(':') {
        let chars: Vec<char> = value.chars().collect();
        let number = |s: &str| s.trim().parse::<i64>().map_err(|_| Error::BadOperation(expr.into()));
        let (offset, length) = match range.split_once(':') {
            Some((o, l)) => (number(o)?, Some(number(l)?)),
            None => (number(range)?, None),
        };
        let len = chars.len() as i64;
        let start = if offset < 0 { (len + offset).max(0) } else { offset.min(len) } as usize;
        let end = match length {
            Some(l) if l < 0 => (len + l).max(start as i64) as usize,
            Some(l) => (start as i64 + l).min(len) as usize,
            None => len as usize,
        };
        return Ok(chars[start..end.max(start)].iter().collect());
    }
    if let Some(replace) = op.strip_prefix('/') {
        let (from, to) = replace.split_once('/').unwrap_or((replace, ""));
        return Ok(if from.is_empty() { value.clone() } else { value.replacen(from, to, 1) });
    }
    Err(Error::BadName(expr.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("cluster", "prod-eu"), ("empty", ""), ("replicas", "3")].map(|(k, v)| (k.to_owned(), v.to_owned())).into()
    }

    fn sub(text: &str) -> String {
        substitute(text, &vars(), false).unwrap()
    }

    #[test]
    fn variables_defaults_and_escapes() {
        assert_eq!(sub("name: web-${cluster}"), "name: web-prod-eu");
        assert_eq!(sub("replicas: ${replicas}"), "replicas: 3");
        assert_eq!(sub("${missing:=fallback} ${missing:-other} ${empty:=used} ${empty=kept}"), "fallback other used ");
        assert_eq!(sub("${cluster:=ignored}"), "prod-eu");
        assert_eq!(sub("$${cluster} stays"), "${cluster} stays");
        assert_eq!(sub("$cluster and $ and $$ alone"), "$cluster and $ and $$ alone");
        assert_eq!(sub("${missing}"), "");
        assert_eq!(sub("ünïcode ${cluster} ✓"), "ünïcode prod-eu ✓");
    }

    #[test]
    fn substrings_and_replacement() {
        assert_eq!(sub("${cluster:5}"), "eu");
        assert_eq!(sub("${cluster:0:4}"), "prod");
        assert_eq!(sub("${cluster:-2}"), "prod-eu", "`:-` is a default, as in bash");
        assert_eq!(sub("${cluster: -2}"), "eu");
        assert_eq!(sub("${cluster/prod/stage}"), "stage-eu");
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(substitute("${missing}", &vars(), true), Err(Error::Unset("missing".into())));
        assert!(substitute("${missing:=ok}", &vars(), true).is_ok());
        assert_eq!(substitute("a ${cluster", &vars(), false), Err(Error::Unclosed("${cluster".into())));
        assert_eq!(substitute("${1abc}", &vars(), false), Err(Error::BadName("1abc".into())));
        assert_eq!(substitute("${cluster:x}", &vars(), false), Err(Error::BadOperation("cluster:x".into())));
        assert!(Error::Unset("x".into()).to_string().contains("strict"));
    }
}
