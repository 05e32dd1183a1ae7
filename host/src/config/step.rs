//! Steps of a chain (`render`, `validate`, `notify`, a source's `plugin`): which plugin,
//! with which config, the secrets and variables it is given, and a notify step's filters.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SecretRef;

/// One step of a chain: which plugin, with which config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(rename = "use")]
    pub uses: String,
    #[serde(default, rename = "with")]
    pub config: Option<BTreeMap<String, serde_json::Value>>,
    /// Secret values added to `with` at call time: `secrets = { token = { secret = "slack", key = "token" } }`.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretRef>,
    /// Notify steps: the hosts (`host` or `host:port`) the plugin may reach over wasi:http.
    /// Every other host is denied.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// ConfigMaps and Secrets whose keys the host adds to `with.vars`, in order (a later one
    /// wins; `with.vars` wins over all): Flux's `substituteFrom`.
    #[serde(default)]
    pub vars_from: Vec<VarsFrom>,
    /// Notify steps: only events of these reasons (`run-failed`, …; default: all).
    #[serde(default)]
    pub on: Vec<NotifyOn>,
    /// Notify steps: only events at least this severe.
    #[serde(default)]
    pub min_severity: Option<MinSeverity>,
    /// Top-level `[[notify]]` steps: the pipelines whose events they take, as globs
    /// (`prod-*`); all pipelines without.
    #[serde(default)]
    pub pipelines: Vec<String>,
    /// Where the step is written, as the key path errors about it name and point at:
    /// `pipeline[0].render[1]`, `source[2].plugin`, or `notify[0]` for a top-level
    /// `[[notify]]` step (in every pipeline it picks). Filled at load; the default render
    /// step's `pipeline[0].render[0]` is not in the file, so errors point at the pipeline.
    #[serde(skip)]
    pub at: String,
    /// The file it is written in when that is not the config's own: a tenant's.
    #[serde(skip)]
    pub text: Option<std::sync::Arc<super::ConfigText>>,
    /// Caps on its plugin calls tighter than the plugin's limits: a tenant's, on its steps.
    #[serde(skip)]
    pub cap: crate::plugins::Cap,
}

/// An event reason a notify step takes, as `on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyOn {
    /// A run of a new revision starts (notifiers of the `status-notifier` world only).
    RunStarted,
    RunSucceeded,
    RunFailed,
    DriftCorrected,
    HealthFailed,
    Pruned,
}

/// The least severity a notify step takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinSeverity {
    Info,
    Warning,
    Error,
}

/// `{ configmap = "name" }` or `{ secret = "name" }` (`namespace/name` outside `[moor]
/// namespace`), `optional = true` when it may be missing.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VarsFrom {
    pub configmap: Option<String>,
    pub secret: Option<String>,
    #[serde(default)]
    pub optional: bool,
}

/// What a `vars_from` entry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarsKind {
    ConfigMap,
    Secret,
}

impl VarsKind {
    /// The object's kind: `ConfigMap` or `Secret`.
    pub fn name(self) -> &'static str {
        match self {
            VarsKind::ConfigMap => "ConfigMap",
            VarsKind::Secret => "Secret",
        }
    }
}

impl std::fmt::Display for VarsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl VarsFrom {
    /// The object it names (`configmap` or `secret`, one of them, as `check` ensures).
    pub fn object(&self) -> Option<(VarsKind, &str)> {
        match (&self.configmap, &self.secret) {
            (Some(name), _) => Some((VarsKind::ConfigMap, name)),
            (None, Some(name)) => Some((VarsKind::Secret, name)),
            (None, None) => None,
        }
    }

    pub(super) fn check(&self) -> Result<(), String> {
        match (&self.configmap, &self.secret) {
            (Some(n), None) | (None, Some(n)) if !n.is_empty() => Ok(()),
            _ => Err("`vars_from` entries are `{ configmap = \"name\" }` or `{ secret = \"name\" }`".into()),
        }
    }
}

impl Step {
    /// The `with` table as JSON (an empty object when absent).
    pub fn config_json(&self) -> serde_json::Value {
        match &self.config {
            Some(table) => serde_json::Value::Object(table.clone().into_iter().collect()),
            None => serde_json::Value::Object(Default::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_reads_its_table_its_filters_and_what_it_takes_variables_from() {
        let step: Step = toml::from_str(
            "use = \"webhook\"\nwith = { url = \"https://x\" }\non = [\"run-started\", \"run-failed\"]\n\
             min_severity = \"warning\"\nvars_from = [{ configmap = \"vars\" }, { secret = \"creds\", optional = true }]\n",
        )
        .unwrap();
        assert_eq!(step.config_json(), serde_json::json!({"url": "https://x"}));
        assert_eq!(step.on, [NotifyOn::RunStarted, NotifyOn::RunFailed]);
        assert_eq!(step.min_severity, Some(MinSeverity::Warning));
        assert_eq!(step.vars_from[0].object(), Some((VarsKind::ConfigMap, "vars")));
        assert!(step.vars_from[1].optional && step.vars_from[1].check().is_ok());
        let bare: Step = toml::from_str("use = \"yaml\"").unwrap();
        assert_eq!(bare.config_json(), serde_json::json!({}));
        let both = VarsFrom { configmap: Some("a".into()), secret: Some("b".into()), optional: false };
        assert!(both.check().is_err());
    }
}
