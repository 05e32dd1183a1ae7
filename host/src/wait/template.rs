//! Config templating (KE-3), as kubernetes-entrypoint's `DEPENDENCY_CONFIG` does it:
//! `{{ .IP }}`, `{{ .HOSTNAME }}` and `{{ .IP_ERLANG }}` (the IP with commas) in a file are
//! replaced, and the result is written where the application reads it.

use std::path::{Path, PathBuf};

/// The values a template may use.
#[derive(Debug, Clone, Default)]
pub struct Values {
    /// This pod's IP: the first address of `INTERFACE_NAME`, else `POD_IP`.
    pub ip: Option<String>,
    pub hostname: String,
}

impl Values {
    /// The values of this process: the interface named by `interface` (else `pod_ip`) and
    /// the host name.
    pub fn of_this_host(interface: Option<&str>, pod_ip: Option<String>) -> Result<Values, Error> {
        let ip = match interface.filter(|i| !i.is_empty()) {
            Some(name) => {
                let addrs =
                    if_addrs::get_if_addrs().map_err(|e| Error::Host(format!("cannot list interfaces: {e}")))?;
                let found = addrs.into_iter().find(|a| a.name == name);
                Some(
                    found
                        .ok_or_else(|| Error::Host(format!("no interface `{name}` (INTERFACE_NAME)")))?
                        .ip()
                        .to_string(),
                )
            }
            None => pod_ip.filter(|ip| !ip.is_empty()),
        };
        let hostname = hostname::get().map_err(|e| Error::Host(format!("cannot read the host name: {e}")))?;
        Ok(Values { ip, hostname: hostname.to_string_lossy().into_owned() })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}:{line}: {message}")]
    Template { file: PathBuf, line: usize, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Host(String),
}

/// `text` with every `{{ .NAME }}` replaced; `file` names it in errors.
pub fn render(text: &str, values: &Values, file: &Path) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let line_at = |rest: &str| text[..text.len() - rest.len()].matches('\n').count() + 1;
    let fail = |rest: &str, message: String| Error::Template { file: file.to_owned(), line: line_at(rest), message };
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find("}}").ok_or_else(|| fail(tail, "`{{` is not closed by `}}`".into()))?;
        let ip = || values.ip.clone().ok_or_else(|| fail(tail, "{{ .IP }} needs INTERFACE_NAME (or POD_IP)".into()));
        out.push_str(&match tail[2..end].trim() {
            ".IP" => ip()?,
            ".IP_ERLANG" => ip()?.replace('.', ","),
            ".HOSTNAME" => values.hostname.clone(),
            other => {
                return Err(fail(tail, format!("unknown `{{{{ {other} }}}}`: only .IP, .HOSTNAME and .IP_ERLANG")));
            }
        });
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The template of `dest` as the original finds it: `<dir>/<file name>/<file name>`
/// (a ConfigMap mounted at `/configmaps/<file name>`).
pub fn source_of(dest: &Path, dir: &Path) -> PathBuf {
    let name = dest.file_name().unwrap_or_default();
    dir.join(name).join(name)
}

/// Renders `source` into `dest` (its directories created), replacing it atomically.
pub fn write(source: &Path, dest: &Path, values: &Values) -> Result<(), Error> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io { path: path.to_owned(), source }
    }
    let text = std::fs::read_to_string(source).map_err(io(source))?;
    let rendered = render(&text, values, source)?;
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    std::io::Write::write_all(&mut tmp, rendered.as_bytes()).map_err(io(dest))?;
    tmp.persist(dest).map_err(|e| Error::Io { path: dest.to_owned(), source: e.error })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values { ip: Some("10.1.2.3".into()), hostname: "nova-0".into() }
    }

    #[test]
    fn the_ip_and_host_name_are_replaced() {
        let text = "listen = {{ .IP }}:80\nname={{.HOSTNAME}}\nerl={{ .IP_ERLANG }}\n";
        let got = render(text, &values(), Path::new("nova.conf")).unwrap();
        assert_eq!(got, "listen = 10.1.2.3:80\nname=nova-0\nerl=10,1,2,3\n");
    }

    #[test]
    fn unknown_names_and_open_braces_say_file_and_line() {
        let e = render("a\nb {{ .PORT }}", &values(), Path::new("x.conf")).unwrap_err();
        assert_eq!(e.to_string(), "x.conf:2: unknown `{{ .PORT }}`: only .IP, .HOSTNAME and .IP_ERLANG");
        let e = render("{{ .IP", &values(), Path::new("x.conf")).unwrap_err();
        assert_eq!(e.to_string(), "x.conf:1: `{{` is not closed by `}}`");
        let e = render("{{ .IP }}", &Values { ip: None, hostname: "h".into() }, Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("INTERFACE_NAME"), "{e}");
    }

    #[test]
    fn the_source_is_where_the_original_looks_and_the_result_lands_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("etc/nova/nova.conf");
        let source = source_of(&dest, &dir.path().join("configmaps"));
        assert!(source.ends_with("configmaps/nova.conf/nova.conf"));
        std::fs::create_dir_all(source.parent().unwrap()).unwrap();
        std::fs::write(&source, "host={{ .HOSTNAME }}").unwrap();
        write(&source, &dest, &values()).unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "host=nova-0");
    }
}
