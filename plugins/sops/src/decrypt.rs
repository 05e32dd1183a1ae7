//! SOPS's decryption of a document tree, as `getsops/sops/v3` does it (pure):
//!
//! - the data key: 32 bytes in an armored age file per recipient (`sops.age[].enc`);
//! - each value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, AES-256-GCM with a 32-byte
//!   nonce, the additional data being the path of keys to it joined by `:` plus `:` (list
//!   items add nothing to the path);
//! - which values are encrypted: `unencrypted_suffix`, `encrypted_suffix`,
//!   `unencrypted_regex`, `encrypted_regex` on any key of the path;
//! - the MAC: SHA-512 over every value (decrypted, as SOPS turns values into bytes: `True`,
//!   `False`, integers, floats in shortest form; nulls skipped), of every document of the
//!   file in order (only the encrypted ones with `mac_only_encrypted`, after a fixed
//!   prefix), upper-case hex, stored in `sops.mac` encrypted with the data key and
//!   `lastmodified` as additional data.

use std::io::Read;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

/// AES-256-GCM with SOPS's 32-byte nonces.
type Cipher = AesGcm<Aes256, U32>;

/// `MACOnlyEncryptedInitialization` of sops.go.
const MAC_ONLY_ENCRYPTED_PREFIX: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b, 0x97, 0x5b,
    0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The `sops` section of a document, as far as decryption needs it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Metadata {
    pub age: Vec<AgeKey>,
    pub lastmodified: String,
    pub mac: String,
    pub unencrypted_suffix: String,
    pub encrypted_suffix: String,
    pub unencrypted_regex: String,
    pub encrypted_regex: String,
    pub unencrypted_comment_regex: String,
    pub encrypted_comment_regex: String,
    pub mac_only_encrypted: bool,
    pub key_groups: Vec<Value>,
    pub pgp: Vec<Value>,
    pub kms: Vec<Value>,
    pub gcp_kms: Vec<Value>,
    pub azure_kv: Vec<Value>,
    pub hc_vault: Vec<Value>,
    pub hckms: Vec<Value>,
    pub version: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AgeKey {
    pub recipient: String,
    pub enc: String,
}

/// Why a document cannot be decrypted; never holds a decrypted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Metadata(String),
    /// No identity given opens the data key.
    NoKey {
        recipients: Vec<String>,
    },
    Value {
        path: String,
        why: String,
    },
    Mac,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Metadata(why) => write!(f, "sops metadata: {why}"),
            Error::NoKey { recipients } if recipients.is_empty() => {
                f.write_str("the file has no age recipient (only age keys are supported)")
            }
            Error::NoKey { recipients } => {
                write!(f, "no age identity given opens the data key (recipients: {})", recipients.join(", "))
            }
            Error::Value { path, why } => write!(f, "value at `{path}`: {why}"),
            Error::Mac => f.write_str("the MAC does not match: the file was changed after it was encrypted"),
        }
    }
}

impl Metadata {
    /// The metadata of a document's `sops` section.
    pub fn of(sops: &Value) -> Result<Metadata, Error> {
        let meta: Metadata = serde_json::from_value(sops.clone()).map_err(|e| Error::Metadata(e.to_string()))?;
        if meta.mac.is_empty() || meta.lastmodified.is_empty() {
            return Err(Error::Metadata("it has no `mac` or no `lastmodified`".into()));
        }
        if !meta.key_groups.is_empty() {
            return Err(Error::Metadata("key groups (Shamir secret sharing) are not supported".into()));
        }
        if !meta.unencrypted_comment_regex.is_empty() || !meta.encrypted_comment_regex.is_empty() {
            return Err(Error::Metadata(
                "`encrypted_comment_regex` and `unencrypted_comment_regex` need the YAML comments, which objects do not keep"
                    .into(),
            ));
        }
        Ok(meta)
    }

    /// The 32-byte data key, opened with one of `identities`.
    pub fn data_key(&self, identities: &[Box<dyn age::Identity + Send + Sync>]) -> Result<[u8; 32], Error> {
        for key in &self.age {
            let reader = age::armor::ArmoredReader::new(key.enc.as_bytes());
            let Ok(decryptor) = age::Decryptor::new(reader) else { continue };
            let Ok(mut plain) = decryptor.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity)) else {
                continue;
            };
            let mut bytes = Vec::new();
            if plain.read_to_end(&mut bytes).is_ok()
                && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
            {
                return Ok(key);
            }
        }
        Err(Error::NoKey { recipients: self.age.iter().map(|k| k.recipient.clone()).collect() })
    }

    fn encrypted(&self, path: &[String], suffixes: &Rules) -> bool {
        let any = |f: &dyn Fn(&str) -> bool| path.iter().any(|p| f(p));
        let mut encrypted = true;
        if !self.unencrypted_suffix.is_empty() && any(&|p| p.ends_with(&self.unencrypted_suffix)) {
            encrypted = false;
        }
        if !self.encrypted_suffix.is_empty() {
            encrypted = any(&|p| p.ends_with(&self.encrypted_suffix));
        }
        if let Some(re) = &suffixes.unencrypted
            && any(&|p| re.is_match(p))
        {
            encrypted = false;
        }
        if let Some(re) = &suffixes.encrypted {
            encrypted = any(&|p| re.is_match(p));
        }
        encrypted
    }
}

/// The compiled regexes of the metadata.
struct Rules {
    unencrypted: Option<regex::Regex>,
    encrypted: Option<regex::Regex>,
}

impl Rules {
    fn of(meta: &Metadata) -> Result<Rules, Error> {
        let compile = |text: &str, key: &str| {
            (!text.is_empty())
                .then(|| regex::Regex::new(text).map_err(|e| Error::Metadata(format!("`{key}`: {e}"))))
                .transpose()
        };
        Ok(Rules {
            unencrypted: compile(&meta.unencrypted_regex, "unencrypted_regex")?,
            encrypted: compile(&meta.encrypted_regex, "encrypted_regex")?,
        })
    }
}

/// Decrypts the documents of one file, which share `meta`, in place (their `sops` keys
/// already removed), and checks the MAC over all of them. Returns the plaintext of each
/// value it decrypted, for the host to hide.
pub fn decrypt(documents: &mut [&mut Value], meta: &Metadata, key: &[u8; 32]) -> Result<Vec<String>, Error> {
    let rules = Rules::of(meta)?;
    let mut walk = Walk { meta, rules: &rules, key, hash: Sha512::new(), revealed: Vec::new() };
    if meta.mac_only_encrypted {
        walk.hash.update(MAC_ONLY_ENCRYPTED_PREFIX);
    }
    for doc in documents.iter_mut() {
        walk.value(doc, &mut Vec::new())?;
    }
    let computed = hex::encode_upper(walk.hash.finalize());
    let stored = open(&meta.mac, key, meta.lastmodified.as_bytes()).map_err(|_| Error::Mac)?;
    if stored.1 != computed.as_bytes() {
        return Err(Error::Mac);
    }
    Ok(walk.revealed)
}

struct Walk<'a> {
    meta: &'a Metadata,
    rules: &'a Rules,
    key: &'a [u8; 32],
    hash: Sha512,
    revealed: Vec<String>,
}

impl Walk<'_> {
    /// Keys add to the path; list items do not (as in sops.go's walk).
    fn value(&mut self, value: &mut Value, path: &mut Vec<String>) -> Result<(), Error> {
        match value {
            Value::Object(map) => self.map(map, path),
            Value::Array(items) => items.iter_mut().try_for_each(|item| self.value(item, path)),
            Value::Null => Ok(()),
            leaf => self.leaf(leaf, path),
        }
    }

    fn map(&mut self, map: &mut Map<String, Value>, path: &mut Vec<String>) -> Result<(), Error> {
        for (key, value) in map.iter_mut() {
            path.push(key.clone());
            self.value(value, path)?;
            path.pop();
        }
        Ok(())
    }

    fn leaf(&mut self, leaf: &mut Value, path: &[String]) -> Result<(), Error> {
        let encrypted = self.meta.encrypted(path, self.rules);
        if encrypted {
            let fail = |why: String| Error::Value { path: path.join("."), why };
            let Value::String(text) = leaf else {
                return Err(fail("it should be encrypted, but is not a string".into()));
            };
            if !text.is_empty() {
                let aad = format!("{}:", path.join(":"));
                let (kind, plain) = open(text, self.key, aad.as_bytes()).map_err(fail)?;
                *leaf = typed(&kind, plain).map_err(fail)?;
                self.revealed.push(match &*leaf {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        if encrypted || !self.meta.mac_only_encrypted {
            self.hash.update(to_bytes(leaf));
        }
        Ok(())
    }
}

/// One `ENC[AES256_GCM,…]` value opened: its type and plaintext.
fn open(text: &str, key: &[u8; 32], aad: &[u8]) -> Result<(String, Vec<u8>), String> {
    let inner = text
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|t| t.strip_suffix(']'))
        .ok_or("it is not a SOPS-encrypted value (`ENC[AES256_GCM,…]`)")?;
    let mut parts = std::collections::HashMap::new();
    for part in inner.split(',') {
        let (k, v) = part.split_once(':').ok_or("its `ENC[…]` is malformed")?;
        parts.insert(k, v);
    }
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let part = parts.get(name).ok_or_else(|| format!("its `ENC[…]` has no `{name}`"))?;
        base64::engine::general_purpose::STANDARD.decode(part).map_err(|e| format!("`{name}` is not base64: {e}"))
    };
    let (mut data, iv, tag) = (b64("data")?, b64("iv")?, b64("tag")?);
    let kind = parts.get("type").ok_or("its `ENC[…]` has no `type`")?.to_string();
    if iv.len() != 32 || tag.len() != 16 {
        return Err("its iv or tag has the wrong length".into());
    }
    data.extend_from_slice(&tag);
    let cipher = Cipher::new_from_slice(key).map_err(|_| "a data key of the wrong length")?;
    let nonce = Nonce::<U32>::try_from(iv.as_slice()).map_err(|_| "an iv of the wrong length")?;
    let plain = cipher
        .decrypt(&nonce, Payload { msg: &data, aad })
        .map_err(|_| "it does not decrypt with the data key (wrong key, or a changed value or path)")?;
    Ok((kind, plain))
}

/// A decrypted value as the type it was encrypted as.
fn typed(kind: &str, plain: Vec<u8>) -> Result<Value, String> {
    let text = String::from_utf8(plain).map_err(|_| "it is not UTF-8")?;
    let bad = |t: &str| format!("it does not parse as its type `{t}`");
    Ok(match kind {
        "str" | "bytes" => Value::String(text),
        "int" | "int64" => Value::from(text.parse::<i64>().map_err(|_| bad(kind))?),
        "float" => Value::from(text.parse::<f64>().map_err(|_| bad(kind))?),
        "bool" => Value::Bool(match text.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err(bad(kind)),
        }),
        other => return Err(format!("its type `{other}` is not supported")),
    })
}

/// A value as SOPS hashes it (`ToBytes` of sops.go).
fn to_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string().into_bytes(),
            (None, Some(f)) => format!("{f}").into_bytes(),
            _ => n.to_string().into_bytes(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_hash_as_sops_turns_them_into_bytes() {
        assert_eq!(to_bytes(&Value::Bool(true)), b"True");
        assert_eq!(to_bytes(&serde_json::json!(3)), b"3");
        assert_eq!(to_bytes(&serde_json::json!(1.5)), b"1.5");
        assert_eq!(to_bytes(&serde_json::json!(1e21)), b"1000000000000000000000");
    }

    #[test]
    fn decrypted_values_take_their_type() {
        assert_eq!(typed("int", b"42".to_vec()), Ok(serde_json::json!(42)));
        assert_eq!(typed("bool", b"True".to_vec()), Ok(Value::Bool(true)));
        assert_eq!(typed("float", b"0.5".to_vec()), Ok(serde_json::json!(0.5)));
        assert!(typed("comment", b"x".to_vec()).is_err());
    }

    #[test]
    fn which_values_are_encrypted_follows_the_metadata() {
        let meta = |f: &dyn Fn(&mut Metadata)| {
            let mut m = Metadata { unencrypted_suffix: "_unencrypted".into(), ..Metadata::default() };
            f(&mut m);
            m
        };
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let plain = meta(&|_| {});
        let rules = Rules::of(&plain).unwrap();
        assert!(plain.encrypted(&path(&["data", "password"]), &rules));
        assert!(!plain.encrypted(&path(&["data_unencrypted", "x"]), &rules));
        let by_regex = meta(&|m| m.encrypted_regex = "^(data|stringData)$".into());
        let rules = Rules::of(&by_regex).unwrap();
        assert!(by_regex.encrypted(&path(&["stringData", "token"]), &rules));
        assert!(!by_regex.encrypted(&path(&["metadata", "name"]), &rules));
    }

    #[test]
    fn a_malformed_value_is_refused_without_a_panic() {
        let key = [7u8; 32];
        assert!(open("plain", &key, b"a:").is_err());
        assert!(open("ENC[AES256_GCM,data:!!,iv:x,tag:y,type:str]", &key, b"a:").is_err());
        assert!(open("ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]", &key, b"a:").is_err());
    }
}
