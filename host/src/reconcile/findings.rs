//! Findings: plugin diagnostics as the host reports them, attributed to their plugin.

use std::fmt;

use serde::Serialize;

use crate::plugins::{Diagnostic, Severity};

/// How bad a finding is; shown and serialized lowercase (`error`, `warning`, `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// One diagnostic, with the plugin that reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Level,
    pub message: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// `Kind/namespace/name` of the object concerned.
    pub object: Option<String>,
    pub plugin: String,
}

impl Finding {
    pub fn from_diagnostic(d: Diagnostic, plugin: &str) -> Finding {
        Finding {
            severity: match d.severity {
                Severity::Error => Level::Error,
                Severity::Warning => Level::Warning,
                Severity::Info => Level::Info,
            },
            message: d.message,
            file: d.file,
            line: d.line,
            object: d.object.map(|o| match o.namespace {
                Some(ns) => format!("{}/{}/{}", o.kind, ns, o.name),
                None => format!("{}/{}", o.kind, o.name),
            }),
            plugin: plugin.to_owned(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Level::Error
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => {}
        }
        write!(f, "{}: {}", self.severity, self.message)?;
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        write!(f, " [{}]", self.plugin)
    }
}
