//! Reading the pipeline's directory: which files are manifests, and their text as
//! kubectl reads it.

use std::path::{Path, PathBuf};

use moor_plugin_sdk::log;

/// Reads a whole file. Natively, with std.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn read_file(path: &Path) -> std::io::Result<String> {
    decode(std::fs::read(path)?)
}

/// A file's text as kubectl reads it: UTF-8, or UTF-16 with a byte-order mark (as some
/// Windows tools write it).
fn decode(bytes: Vec<u8>) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let utf16 = |units: Vec<u16>| {
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| Error::new(ErrorKind::InvalidData, format!("not UTF-16 text after its byte-order mark: {e}")))
    };
    let pairs = |rest: &[u8], unit: fn([u8; 2]) -> u16| -> Vec<u16> {
        rest.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect()
    };
    if matches!(bytes.as_slice(), [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..]) && bytes.len() % 2 == 1 {
        return Err(Error::new(
            ErrorKind::InvalidData,
            "not UTF-16 text after its byte-order mark: an odd number of bytes",
        ));
    }
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(pairs(rest, u16::from_le_bytes)),
        [0xFE, 0xFF, rest @ ..] => utf16(pairs(rest, u16::from_be_bytes)),
        _ => String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            Error::new(ErrorKind::InvalidData, format!("not UTF-8 text: invalid byte sequence at offset {at}"))
        }),
    }
}

/// Reads a whole file. In the sandbox every file operation is a host call, and std makes
/// about seven per file (open, stat, a stream to create, read and drop, close); this makes
/// three: open, positioned reads until a short one (the end of a regular file), close.
#[cfg(target_arch = "wasm32")]
pub(crate) fn read_file(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    use wasip2::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};
    /// The host caps one read at 64 KiB and zero-fills a buffer of the size asked for, so
    /// ask for little first: most manifests fit in one small read.
    const FIRST: usize = 8 * 1024;
    const CHUNK: usize = 64 * 1024;
    thread_local! {
        static PREOPENS: Vec<(Descriptor, String)> = wasip2::filesystem::preopens::get_directories();
    }
    let io = |e: wasip2::filesystem::types::ErrorCode| Error::other(format!("{e:?}"));
    let path = path.to_str().ok_or_else(|| Error::new(ErrorKind::InvalidInput, "path is not UTF-8"))?;
    let bytes = PREOPENS.with(|dirs| {
        let (dir, rel) = dirs
            .iter()
            .find_map(|(d, name)| path.strip_prefix(name.as_str()).map(|rest| (d, rest.trim_start_matches('/'))))
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "not under a preopened directory"))?;
        let file =
            dir.open_at(PathFlags::SYMLINK_FOLLOW, rel, OpenFlags::empty(), DescriptorFlags::READ).map_err(io)?;
        let mut out = Vec::new();
        let mut ask = FIRST;
        loop {
            let (chunk, eof) = file.read(ask as u64, out.len() as u64).map_err(io)?;
            out.extend_from_slice(&chunk);
            if eof || chunk.len() < ask {
                break;
            }
            ask = CHUNK;
        }
        Ok::<_, Error>(out)
    })?;
    decode(bytes)
}

/// The manifests under `dir`, as kubectl finds them: a symlink to a file is read (the
/// source kept only symlinks that stay in the tree), a symlink to a directory is not
/// followed (with a warning). Symlinks that lead nowhere (dangling, a loop) go to `broken`.
pub(crate) fn collect(
    dir: &Path,
    recursive: bool,
    out: &mut Vec<PathBuf>,
    broken: &mut Vec<(PathBuf, std::io::Error)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let mut kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_symlink() {
            if !is_manifest_name(&path) {
                if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                    log::warn(&format!("{}: a symlink to a directory, not followed (as kubectl)", path.display()));
                }
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(target) => kind = target.file_type(),
                Err(e) => {
                    broken.push((path, e));
                    continue;
                }
            }
        }
        if kind.is_dir() {
            if recursive {
                collect(&path, recursive, out, broken)?;
            }
        } else if kind.is_file() && is_manifest_name(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_manifest_name(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
        || path.file_name().is_some_and(|n| n == "Kustomization")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_with_a_byte_order_mark_is_read_and_broken_text_is_refused_with_where() {
        let le: Vec<u8> = [0xFF, 0xFE].into_iter().chain("kind: A".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        let be: Vec<u8> = [0xFE, 0xFF].into_iter().chain("kind: A".encode_utf16().flat_map(u16::to_be_bytes)).collect();
        assert_eq!(decode(le).unwrap(), "kind: A");
        assert_eq!(decode(be).unwrap(), "kind: A");
        assert!(decode(vec![0xFF, 0xFE, b'a']).unwrap_err().to_string().contains("odd number of bytes"));
        let message = decode(b"ok\xC3\x28".to_vec()).unwrap_err().to_string();
        assert!(message.contains("offset 2"), "{message}");
    }

    #[test]
    fn manifests_are_yaml_json_and_kustomize_s_capitalised_file() {
        for name in ["a.yaml", "b.yml", "c.json", "d/Kustomization"] {
            assert!(is_manifest_name(Path::new(name)), "{name}");
        }
        for name in ["README.md", "values.yaml.tpl", "yaml"] {
            assert!(!is_manifest_name(Path::new(name)), "{name}");
        }
    }
}
