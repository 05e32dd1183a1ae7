//! Findings: plugin diagnostics as the host reports them, attributed to their plugin.

use std::fmt;

use serde::Serialize;

use crate::plugins::{Diagnostic, Severity};

/// One diagnostic, with the plugin that reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: &'static str,
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
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
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
        self.severity == "error"
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
