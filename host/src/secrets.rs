//! Secret values a pipeline needs: keys of Kubernetes Secrets and environment variables,
//! read by the host just before a run (FA-1).
//!
//! Values only go where the config sends them: git credentials to the git transport, a
//! step's `secrets` into that step's `with` table. They are never logged, and the type
//! that holds them prints no values.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use crate::config::{Config, PipelineSpec, SecretRef, SourceKind, SourceSpec, Step, VarsFrom, VarsKind};

/// The Secrets, ConfigMaps and variables one run needs, read.
#[derive(Default, Clone)]
pub struct SecretValues {
    /// `(namespace, name)` → data.
    secrets: HashMap<(String, String), BTreeMap<String, String>>,
    /// ConfigMaps that `vars_from` names; not secret.
    configmaps: HashMap<(String, String), BTreeMap<String, String>>,
    env: HashMap<String, String>,
}

/// What a step is given: its `with` table, and the secret values in it, to redact.
#[derive(Debug)]
pub struct StepConfig {
    pub with: serde_json::Value,
    pub secret_values: Vec<String>,
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.secrets.keys().map(|(ns, n)| format!("{ns}/{n}")).collect();
        f.debug_struct("SecretValues").field("secrets", &names).finish_non_exhaustive()
    }
}

/// `name` or `namespace/name` → `(namespace, name)`.
fn secret_key(name: &str, default_namespace: &str) -> (String, String) {
    match name.split_once('/') {
        Some((ns, n)) => (ns.to_owned(), n.to_owned()),
        None => (default_namespace.to_owned(), name.to_owned()),
    }
}

/// Why a secret value, a Secret or a ConfigMap could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{kind} `{namespace}/{name}` needs a cluster connection")]
    NoCluster { kind: &'static str, namespace: String, name: String },
    #[error("cannot read {kind} `{namespace}/{name}`: {}", crate::kube_api::kube_message(.source))]
    Read { kind: &'static str, namespace: String, name: String, source: Box<kube::Error> },
    #[error("{kind} `{namespace}/{name}` does not exist")]
    Missing { kind: &'static str, namespace: String, name: String },
    #[error("Secret `{secret}` was not read")]
    NotRead { secret: String },
    #[error("Secret `{secret}` has no key `{key}`")]
    NoKey { secret: String, key: String },
    #[error("environment variable `{0}` is not set")]
    Unset(String),
    /// A step's `secrets.<field>`.
    #[error("secrets.{field}: {source}")]
    Field { field: String, source: Box<SecretError> },
}

impl SecretValues {
    /// Reads every Secret and variable `pipeline` refers to (its source's and its steps').
    /// Without a cluster, only variables can be read.
    pub async fn for_pipeline(
        client: Option<&kube::Client>,
        config: &Config,
        pipeline: &PipelineSpec,
    ) -> Result<SecretValues, SecretError> {
        let source = config.source_of(pipeline);
        let steps = pipeline.render.iter().chain(&pipeline.validate).chain(&pipeline.notify);
        SecretValues::read(client, config, Some(source), steps).await
    }

    /// Reads what a source needs: git credentials, or its plugin step's secrets.
    pub async fn for_source(
        client: Option<&kube::Client>,
        config: &Config,
        source: &SourceSpec,
    ) -> Result<SecretValues, SecretError> {
        SecretValues::read(client, config, Some(source), std::iter::empty()).await
    }

    async fn read<'a>(
        client: Option<&kube::Client>,
        config: &Config,
        source: Option<&'a SourceSpec>,
        steps: impl Iterator<Item = &'a Step>,
    ) -> Result<SecretValues, SecretError> {
        let namespace = &config.settings.namespace;
        let mut values = SecretValues::default();
        let git_secret = match source.map(|s| &s.kind) {
            Some(SourceKind::Git(git)) => git.credentials.as_ref().and_then(|c| c.secret.as_ref()),
            _ => None,
        };
        if let Some(name) = git_secret {
            values.add_secret(client, name, namespace).await?;
        }
        for step in steps.chain(source.and_then(SourceSpec::plugin)) {
            for r in step.secrets.values() {
                values.add(client, r, namespace).await?;
            }
            for from in &step.vars_from {
                values.add_vars_from(client, from, namespace).await?;
            }
        }
        Ok(values)
    }

    /// Reads a `vars_from` ConfigMap or Secret; an optional one may be missing.
    async fn add_vars_from(
        &mut self,
        client: Option<&kube::Client>,
        from: &VarsFrom,
        namespace: &str,
    ) -> Result<(), SecretError> {
        let Some((kind, name)) = from.object() else { return Ok(()) };
        let key = secret_key(name, namespace);
        if self.data(kind, &key).is_some() {
            return Ok(());
        }
        let (ns, n) = (&key.0, &key.1);
        let data = match kind {
            VarsKind::Secret => read_secret(client, ns, n).await?,
            VarsKind::ConfigMap => read_configmap(client, ns, n).await?,
        };
        let data = match data {
            Some(data) => data,
            None if from.optional => BTreeMap::new(),
            None => return Err(SecretError::Missing { kind: kind.name(), namespace: ns.clone(), name: n.clone() }),
        };
        match kind {
            VarsKind::Secret => self.secrets.insert(key, data),
            VarsKind::ConfigMap => self.configmaps.insert(key, data),
        };
        Ok(())
    }

    /// The data read of a Secret or ConfigMap.
    fn data(&self, kind: VarsKind, key: &(String, String)) -> Option<&BTreeMap<String, String>> {
        match kind {
            VarsKind::Secret => self.secrets.get(key),
            VarsKind::ConfigMap => self.configmaps.get(key),
        }
    }

    /// Reads what `r` refers to (a whole Secret, or a variable) unless it was read already.
    async fn add(&mut self, client: Option<&kube::Client>, r: &SecretRef, namespace: &str) -> Result<(), SecretError> {
        match r {
            SecretRef::Secret { secret, .. } => self.add_secret(client, secret, namespace).await,
            SecretRef::Env(var) => {
                let value = std::env::var(var).map_err(|_| SecretError::Unset(var.clone()))?;
                self.env.insert(var.clone(), value);
                Ok(())
            }
        }
    }

    async fn add_secret(
        &mut self,
        client: Option<&kube::Client>,
        name: &str,
        namespace: &str,
    ) -> Result<(), SecretError> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.secrets.entry(secret_key(name, namespace)) {
            let (ns, n) = entry.key();
            let missing = || SecretError::Missing { kind: "Secret", namespace: ns.clone(), name: n.clone() };
            let data = read_secret(client, ns, n).await?.ok_or_else(missing)?;
            entry.insert(data);
        }
        Ok(())
    }

    /// The data of a whole Secret (`name` or `namespace/name`).
    pub fn secret(&self, name: &str, default_namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.secrets.get(&secret_key(name, default_namespace))
    }

    /// One value.
    pub fn get(&self, r: &SecretRef, default_namespace: &str) -> Result<&str, SecretError> {
        match r {
            SecretRef::Secret { secret: name, key } => {
                let data = self
                    .secret(name, default_namespace)
                    .ok_or_else(|| SecretError::NotRead { secret: name.clone() })?;
                data.get(key)
                    .map(String::as_str)
                    .ok_or_else(|| SecretError::NoKey { secret: name.clone(), key: key.clone() })
            }
            SecretRef::Env(var) => self.env.get(var).map(String::as_str).ok_or_else(|| SecretError::Unset(var.clone())),
        }
    }

    /// `text` with every secret value read for this run replaced by `***`: for messages a
    /// plugin wrote after it was given secrets.
    pub fn redact(&self, text: &str) -> String {
        redact(text, self.secrets.values().flat_map(|data| data.values()).chain(self.env.values()))
    }

    /// A step's `with` table with its `secrets` filled in and its `vars_from` added to
    /// `vars`, and the secret values it now holds.
    pub fn step_config(&self, step: &Step, default_namespace: &str) -> Result<StepConfig, SecretError> {
        let mut with = step.config_json();
        let mut secret_values = Vec::new();
        for (field, r) in &step.secrets {
            let value = self
                .get(r, default_namespace)
                .map_err(|e| SecretError::Field { field: field.clone(), source: Box::new(e) })?;
            // `headers.authorization` sets a key of a table.
            let mut at = &mut with;
            for part in field.split('.') {
                if !at.is_object() {
                    *at = serde_json::Value::Object(serde_json::Map::new());
                }
                at = &mut at[part];
            }
            *at = serde_json::Value::String(value.to_owned());
            secret_values.push(value.to_owned());
        }
        if !step.vars_from.is_empty() {
            let mut vars = serde_json::Map::new();
            for (kind, name) in step.vars_from.iter().filter_map(VarsFrom::object) {
                for (k, v) in self.data(kind, &secret_key(name, default_namespace)).into_iter().flatten() {
                    vars.insert(k.clone(), serde_json::Value::String(v.clone()));
                    if kind == VarsKind::Secret {
                        secret_values.push(v.clone());
                    }
                }
            }
            if let Some(inline) = with.get("vars").and_then(|v| v.as_object()) {
                vars.extend(inline.clone());
            }
            with["vars"] = serde_json::Value::Object(vars);
        }
        Ok(StepConfig { with, secret_values })
    }
}

pub use moor_object::redact_text as redact;

/// Reads one value outside a pipeline (the API token, a webhook secret).
pub async fn read_one(
    client: Option<&kube::Client>,
    r: &SecretRef,
    default_namespace: &str,
) -> Result<String, SecretError> {
    let mut values = SecretValues::default();
    values.add(client, r, default_namespace).await?;
    values.get(r, default_namespace).map(str::to_owned)
}

/// A Secret's data, `None` when it does not exist.
async fn read_secret(
    client: Option<&kube::Client>,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, SecretError> {
    let Some(secret) = read_object::<Secret>(client, "Secret", namespace, name).await? else { return Ok(None) };
    let mut data: BTreeMap<String, String> = secret.string_data.unwrap_or_default();
    for (k, v) in secret.data.unwrap_or_default() {
        data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
    }
    Ok(Some(data))
}

/// A ConfigMap's data, `None` when it does not exist.
async fn read_configmap(
    client: Option<&kube::Client>,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, SecretError> {
    let configmap = read_object::<ConfigMap>(client, "ConfigMap", namespace, name).await?;
    Ok(configmap.map(|c| c.data.unwrap_or_default()))
}

async fn read_object<K>(
    client: Option<&kube::Client>,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, SecretError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    let Some(client) = client else { return Err(SecretError::NoCluster { kind, namespace, name }) };
    let api: kube::Api<K> = kube::Api::namespaced(client.clone(), &namespace);
    api.get_opt(&name).await.map_err(|e| SecretError::Read { kind, namespace, name, source: Box::new(e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_redacted_from_messages() {
        let mut values = SecretValues::default();
        let data = BTreeMap::from([("url".to_owned(), "https://hooks.example.com/T0K3N".to_owned())]);
        values.secrets.insert(("ns".into(), "hook".into()), data);
        values.env.insert("TOKEN".into(), "abcdef".into());
        let text = "POST https://hooks.example.com/T0K3N failed; token abcdef";
        assert_eq!(values.redact(text), "POST *** failed; token ***");
        assert!(!format!("{values:?}").contains("T0K3N"));
    }

    #[test]
    fn a_dotted_secret_field_sets_a_key_of_a_table() {
        let mut values = SecretValues::default();
        values.env.insert("TOKEN".into(), "Bearer t0k3n".into());
        let step: Step = toml::from_str(
            "use = \"webhook\"\nwith = { url = \"http://x\", headers = { x-team = \"a\" } }\n\
             secrets = { \"headers.authorization\" = { env = \"TOKEN\" } }",
        )
        .unwrap();
        let with = values.step_config(&step, "ns").unwrap().with;
        assert_eq!(with["headers"], serde_json::json!({"x-team": "a", "authorization": "Bearer t0k3n"}));
    }

    #[test]
    fn vars_from_fill_vars_in_order_under_the_steps_own_and_secret_values_are_marked() {
        let mut values = SecretValues::default();
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        values.configmaps.insert(("ns".into(), "a".into()), map(&[("x", "from-a"), ("y", "from-a")]));
        values.secrets.insert(("ns".into(), "b".into()), map(&[("y", "from-b"), ("pw", "hunter22")]));
        let step: Step = toml::from_str(
            "use = \"substitute\"\nwith = { vars = { x = \"inline\" } }\n\
             vars_from = [{ configmap = \"a\" }, { secret = \"b\" }, { configmap = \"c\", optional = true }]",
        )
        .unwrap();
        let StepConfig { with, mut secret_values } = values.step_config(&step, "ns").unwrap();
        assert_eq!(with["vars"], serde_json::json!({"x": "inline", "y": "from-b", "pw": "hunter22"}));
        secret_values.sort();
        assert_eq!(secret_values, ["from-b", "hunter22"]);
    }
}
