//! Whole files SOPS encrypted, in its formats (pure): what kustomize generators and
//! patches read, and what a Secret's `data` value may hold. A file is loaded as the
//! documents SOPS's store for its format makes of it, decrypted with [`decrypt`], and
//! written back in the output format, as Flux's kustomize-controller does.
//!
//! - `yaml`: one or more documents, the metadata under `sops` (of the first document);
//! - `json`: one object, the metadata under `sops`;
//! - `binary`: a JSON envelope `{"data": …, "sops": …}` around the file's bytes;
//! - `dotenv`: `KEY=value` lines (`\n` escapes a newline), the metadata flattened into
//!   `sops_…` keys (`sops_age__list_0__map_enc`); comment lines are not in the MAC and are
//!   left out of the plaintext.
//!
//! `ini` files are refused.

use serde_json::{Map, Value};

use crate::decrypt::{self, Error};

/// A SOPS store format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    Binary,
}

impl Format {
    /// SOPS's `FormatForPath`, with Flux's `.dockerconfigjson` as JSON.
    pub fn for_path(path: &str) -> Format {
        if path.ends_with(".yaml") || path.ends_with(".yml") {
            Format::Yaml
        } else if path.ends_with(".json") || path.ends_with(".dockerconfigjson") {
            Format::Json
        } else if path.ends_with(".env") {
            Format::Dotenv
        } else if path.ends_with(".ini") {
            Format::Ini
        } else {
            Format::Binary
        }
    }

    /// What an encrypted file of this format contains, as Flux looks for it.
    pub fn marker(self) -> &'static str {
        match self {
            Format::Yaml => "mac: ENC[",
            Format::Json | Format::Binary => "\"mac\": \"ENC[",
            Format::Dotenv => "sops_mac=ENC[",
            Format::Ini => "[sops]",
        }
    }

    /// Whether `data` is a SOPS file of this format.
    pub fn is_encrypted(self, data: &[u8]) -> bool {
        let marker = self.marker().as_bytes();
        data.windows(marker.len()).any(|w| w == marker)
    }

    /// The format whose marker `data` carries, if any.
    pub fn detect(data: &[u8]) -> Option<Format> {
        [Format::Yaml, Format::Json, Format::Dotenv, Format::Ini].into_iter().find(|f| f.is_encrypted(data))
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Ini => "ini",
            Format::Binary => "binary",
        }
    }
}

/// A decrypted file: its bytes in the output format, and each value it revealed.
#[derive(Debug)]
pub struct Plain {
    pub bytes: Vec<u8>,
    pub revealed: Vec<String>,
}

/// Decrypts a file SOPS wrote as `input` and writes it as `output`.
pub fn decrypt_file(
    data: &[u8],
    input: Format,
    output: Format,
    identities: &[Box<dyn age::Identity + Send + Sync>],
) -> Result<Plain, Error> {
    let text = std::str::from_utf8(data).map_err(|_| bad(input, "it is not UTF-8".into()))?;
    let (mut docs, sops) = load(text, input)?;
    let meta = decrypt::Metadata::of(&sops)?;
    let key = meta.data_key(identities)?;
    let mut refs: Vec<&mut Value> = docs.iter_mut().collect();
    let revealed = decrypt::decrypt(&mut refs, &meta, &key)?;
    Ok(Plain { bytes: emit(&docs, output)?, revealed })
}

fn bad(format: Format, why: String) -> Error {
    Error::Metadata(format!("not a SOPS-encrypted {} file: {why}", format.name()))
}

/// The documents of an encrypted file, without their metadata, and the metadata.
fn load(text: &str, format: Format) -> Result<(Vec<Value>, Value), Error> {
    let mut docs = match format {
        Format::Yaml => {
            let mut options = serde_saphyr::Options::default();
            // As sops's YAML library reads them: `yes` and `on` stay strings.
            options.strict_booleans = true;
            serde_saphyr::from_multiple_with_options::<Value>(text, options)
                .map_err(|e| bad(format, e.to_string()))?
                .into_iter()
                .filter(|d| !d.is_null())
                .collect()
        }
        Format::Json | Format::Binary => {
            vec![serde_json::from_str::<Value>(text).map_err(|e| bad(format, e.to_string()))?]
        }
        Format::Dotenv => return dotenv(text),
        Format::Ini => return Err(Error::Metadata("SOPS ini files are not supported".into())),
    };
    let mut sops = None;
    for doc in &mut docs {
        let Some(map) = doc.as_object_mut() else { return Err(bad(format, "a document is not a mapping".into())) };
        if let Some(found) = map.shift_remove("sops") {
            sops.get_or_insert(found);
        }
    }
    let sops = sops.ok_or_else(|| bad(format, "it has no `sops` metadata".into()))?;
    Ok((docs, sops))
}

/// A dotenv file as sops's dotenv store reads it: one document of string values.
fn dotenv(text: &str) -> Result<(Vec<Value>, Value), Error> {
    let mut values = Map::new();
    let mut meta = Value::Object(Map::new());
    for (number, line) in text.split('\n').enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) =
            line.split_once('=').ok_or_else(|| bad(Format::Dotenv, format!("line {} has no `=`", number + 1)))?;
        let value = value.replace("\\n", "\n");
        if let Some(path) = key.strip_prefix("sops_") {
            place(&mut meta, path, value).map_err(|why| bad(Format::Dotenv, format!("`{key}`: {why}")))?;
        } else if values.insert(key.to_owned(), Value::String(value)).is_some() {
            return Err(bad(Format::Dotenv, format!("`{key}` is set twice")));
        }
    }
    if let Some(flag) = meta.get_mut("mac_only_encrypted") {
        *flag = Value::Bool(flag.as_str() == Some("true"));
    }
    Ok((vec![Value::Object(values)], meta))
}

/// Puts `value` at a flattened metadata path (`age__list_0__map_enc`), as sops's
/// `Unflatten` does.
fn place(root: &mut Value, path: &str, value: String) -> Result<(), String> {
    let mut at = root;
    let mut rest = path;
    let mut token = take(&mut rest);
    loop {
        let next = (!rest.is_empty()).then(|| take(&mut rest));
        let empty = match next {
            Some(Token::Index(_)) => Value::Array(Vec::new()),
            Some(Token::Key(_)) => Value::Object(Map::new()),
            None => Value::String(value.clone()),
        };
        at = match token {
            Token::Key(key) => {
                let map = at.as_object_mut().ok_or("a key where a list is")?;
                map.entry(key.to_owned()).or_insert(empty)
            }
            Token::Index(index) => {
                let items = at.as_array_mut().ok_or("a list index where a map is")?;
                if index > items.len() || index > 1024 {
                    return Err("list indexes out of order".into());
                }
                if index == items.len() {
                    items.push(empty);
                }
                &mut items[index]
            }
        };
        match next {
            Some(t) => token = t,
            None => return Ok(()),
        }
    }
}

enum Token<'a> {
    Key(&'a str),
    Index(usize),
}

/// The first token of a flattened path: up to the next `__map_` or `__list_`.
fn take<'a>(rest: &mut &'a str) -> Token<'a> {
    let (text, is_index) = if let Some(r) = rest.strip_prefix("__list_") {
        (r, true)
    } else {
        (rest.strip_prefix("__map_").unwrap_or(rest), false)
    };
    let end = [text.find("__map_"), text.find("__list_")].into_iter().flatten().min().unwrap_or(text.len());
    *rest = &text[end..];
    let part = &text[..end];
    match (is_index, part.parse()) {
        (true, Ok(index)) => Token::Index(index),
        _ => Token::Key(part),
    }
}

/// Decrypted documents in `format`.
fn emit(docs: &[Value], format: Format) -> Result<Vec<u8>, Error> {
    let cannot = |why: &str| Error::Metadata(format!("cannot write the decrypted file as {}: {why}", format.name()));
    let single = || match docs {
        [doc] => Ok(doc),
        _ => Err(cannot("it has more than one document")),
    };
    Ok(match format {
        Format::Yaml => {
            let mut out = String::new();
            for (i, doc) in docs.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&serde_saphyr::to_string(doc).map_err(|e| cannot(&e.to_string()))?);
            }
            out.into_bytes()
        }
        Format::Json => {
            let mut out = serde_json::to_vec_pretty(single()?).map_err(|e| cannot(&e.to_string()))?;
            out.push(b'\n');
            out
        }
        Format::Binary => match single()?.get("data") {
            Some(Value::String(data)) => data.clone().into_bytes(),
            _ => return Err(cannot("it has no string `data`")),
        },
        Format::Dotenv => {
            let map = single()?.as_object().ok_or_else(|| cannot("it is not a mapping"))?;
            let mut out = String::new();
            for (key, value) in map {
                let value = match value {
                    Value::String(s) => s.replace('\n', "\\n"),
                    Value::Object(_) | Value::Array(_) => return Err(cannot(&format!("`{key}` is not a scalar"))),
                    other => other.to_string(),
                };
                out.push_str(&format!("{key}={value}\n"));
            }
            out.into_bytes()
        }
        Format::Ini => return Err(cannot("ini is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_follow_the_file_name_as_sops_and_flux_pick_them() {
        assert_eq!(Format::for_path("a/settings.yml"), Format::Yaml);
        assert_eq!(Format::for_path(".dockerconfigjson"), Format::Json);
        assert_eq!(Format::for_path("app.env"), Format::Dotenv);
        assert_eq!(Format::for_path("tls.key"), Format::Binary);
        assert_eq!(Format::detect(b"x\nsops_mac=ENC[AES"), Some(Format::Dotenv));
        assert_eq!(Format::detect(b"plain: yes"), None);
    }

    #[test]
    fn flattened_dotenv_metadata_unflattens_as_sops_does() {
        let (docs, meta) = dotenv(
            "A=1\nsops_age__list_0__map_enc=x\\ny\nsops_age__list_0__map_recipient=r\nsops_age__list_1__map_recipient=s\nsops_mac_only_encrypted=true\n",
        )
        .unwrap();
        assert_eq!(docs, [json!({"A": "1"})]);
        assert_eq!(
            meta,
            json!({"age": [{"enc": "x\ny", "recipient": "r"}, {"recipient": "s"}], "mac_only_encrypted": true})
        );
        assert!(dotenv("sops_age__list_5__map_enc=x\n").is_err(), "indexes out of order");
        assert!(dotenv("A=1\nA=2\n").is_err());
    }

    #[test]
    fn plain_documents_are_written_in_the_output_format() {
        let doc = json!({"A": "x\ny", "B": 2});
        assert_eq!(emit(std::slice::from_ref(&doc), Format::Dotenv).unwrap(), b"A=x\\ny\nB=2\n");
        assert_eq!(emit(&[json!({"data": "raw"})], Format::Binary).unwrap(), b"raw");
        assert!(emit(&[json!({"a": {"b": 1}})], Format::Dotenv).is_err());
        let yaml = String::from_utf8(emit(&[json!({"a": 1}), json!({"b": [true]})], Format::Yaml).unwrap()).unwrap();
        assert_eq!(serde_saphyr::from_multiple::<Value>(&yaml).unwrap(), [json!({"a": 1}), json!({"b": [true]})]);
    }
}
