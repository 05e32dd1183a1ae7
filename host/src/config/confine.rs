//! The rules a tenant's config is held to before it is admitted ([`confine`]): pure checks
//! of the config as loaded against the tenant's [`Tenant`] rules, each failing with the key
//! of the first thing the config may not do and the rule, which `Config::parse_tenant`
//! turns into the tenant's file and line.

use std::path::Path;

use super::platform::lexically_inside;
use super::{Config, PipelineSpec, PluginOrigin, Problem, SecretRef, SourceKind, SourceSpec, Step, Tenant, VarsFrom};
use crate::wait::Dependency;
use crate::wait::spec::Jobs;

/// What a tenant's config may not do, found before it is admitted: the key of the first
/// thing it may not do, and the rule.
pub(super) fn confine(config: &Config, rules: &Tenant, root: &Path) -> Result<(), Problem> {
    if let Some(max) = rules.limits.max_pipelines
        && config.pipelines.len() > max
    {
        let message = format!(
            "tenant `{}` may have at most {max} pipelines; this config has {}",
            rules.name,
            config.pipelines.len()
        );
        return Err((format!("pipeline[{max}]"), message));
    }
    let inside = |path: &Path| lexically_inside(&config.base.join(path), root);
    for (i, source) in config.sources.iter().enumerate() {
        confine_source(source, rules, &inside).map_err(|(field, m)| (format!("source[{i}]{field}"), m))?;
    }
    for (i, plugin) in config.plugins.iter().enumerate() {
        let key = format!("plugin[{i}]");
        if !rules.own_plugins {
            return Err((key, format!("tenant `{}` may not bring plugins of its own", rules.name)));
        }
        match &plugin.origin {
            PluginOrigin::Builtin => {
                let message = format!("`{}` is a platform plugin: its limits are the platform's", plugin.name);
                return Err((format!("{key}.name"), message));
            }
            PluginOrigin::File { path, .. } if !inside(path) => {
                return Err((format!("{key}.path"), "a tenant's plugin file is in its own source".into()));
            }
            _ => {}
        }
    }
    for (i, pipeline) in config.pipelines.iter().enumerate() {
        confine_pipeline(pipeline, rules).map_err(|(field, m)| (format!("pipeline[{i}]{field}"), m))?;
        let label_length = rules.name.len() + 1 + pipeline.name.len();
        if label_length > 63 {
            let message =
                format!("`{}` is {label_length} characters long; its label can have 63", rules.scoped(&pipeline.name));
            return Err((format!("pipeline[{i}].name"), message));
        }
    }
    let own: Vec<String> = config.plugins.iter().map(|p| p.name.clone()).collect();
    for (_, step) in config.pipelines.iter().flat_map(|p| p.chains()) {
        confine_step(step, rules, &own)?;
    }
    for source in &config.sources {
        if let Some(step) = source.plugin() {
            confine_step(step, rules, &own)?;
        }
    }
    Ok(())
}

/// A source reads only what the tenant may: a URL the platform allows, no file or variable
/// of the host, a Secret of its own namespaces.
fn confine_source(source: &SourceSpec, rules: &Tenant, inside: &dyn Fn(&Path) -> bool) -> Result<(), Problem> {
    let allowed = |url: &str| rules.sources.written.is_empty() || rules.sources.is_match(url);
    let not_allowed =
        |url: &str| format!("`{url}` is not a source tenant `{}` may read ({})", rules.name, rules.sources);
    match &source.kind {
        SourceKind::Path(path) if !inside(path) => {
            Err((".path".into(), "a tenant's `path` source is a directory of its own source".into()))
        }
        SourceKind::Path(_) | SourceKind::Plugin(_) => Ok(()),
        SourceKind::Git(git) => {
            if !allowed(&git.url) {
                return Err((".git.url".into(), not_allowed(&git.url)));
            }
            for (field, file) in [("ca_file", &git.ca_file), ("known_hosts_file", &git.known_hosts_file)] {
                if file.as_deref().is_some_and(|f| !inside(f)) {
                    return Err((format!(".git.{field}"), "a tenant's file is in its own source".into()));
                }
            }
            let Some(credentials) = &git.credentials else { return Ok(()) };
            let host = [
                ("username_env", credentials.username_env.is_some()),
                ("password_env", credentials.password_env.is_some()),
                ("password_file", credentials.password_file.is_some()),
                ("ssh_key_file", credentials.ssh_key_file.is_some()),
            ];
            if let Some((field, _)) = host.iter().find(|(_, set)| *set) {
                let message = "a tenant's credentials come from a Secret of its own namespaces (`secret`), not from \
                               moor's host";
                return Err((format!(".git.credentials.{field}"), message.into()));
            }
            match &credentials.secret {
                Some(secret) => secret_in(secret, rules).map_err(|m| (".git.credentials.secret".into(), m)),
                None => Ok(()),
            }
        }
        SourceKind::Helm(helm) => {
            if helm.repo.starts_with("oci://") {
                let message = "a tenant's chart comes from an https:// repository: oci:// ones are read with the \
                               platform's registry credentials";
                return Err((".helm.repo".into(), message.into()));
            }
            if !allowed(&helm.repo) { Err((".helm.repo".into(), not_allowed(&helm.repo))) } else { Ok(()) }
        }
    }
}

/// A pipeline applies only where the tenant may: its namespaces, its clusters, its service
/// account; its gates look only into its namespaces.
fn confine_pipeline(pipeline: &PipelineSpec, rules: &Tenant) -> Result<(), Problem> {
    match &pipeline.target_namespace {
        Some(ns) => {
            if let Some(why) = rules.refuses_namespace(ns) {
                return Err((".target_namespace".into(), why));
            }
        }
        None if rules.default_namespace().is_none() => {
            let message = format!(
                "tenant `{}`'s namespaces are all patterns ({}): name the pipeline's `target_namespace`",
                rules.name, rules.namespaces
            );
            return Err((".target_namespace".into(), message));
        }
        None => {}
    }
    for (k, ns) in pipeline.namespaces.iter().flatten().enumerate() {
        if let Some(why) = rules.refuses_namespace(ns) {
            return Err((format!(".namespaces[{k}]"), why));
        }
    }
    if let Some(account) = &pipeline.service_account
        && *account != rules.service_account
    {
        let message = format!("tenant `{}`'s pipelines apply as `{}`", rules.name, rules.service_account);
        return Err((".service_account".into(), message));
    }
    if let Some(cluster) = &pipeline.cluster
        && !rules.clusters.contains(cluster)
    {
        return Err((".cluster".into(), format!("tenant `{}` is not granted cluster `{cluster}`", rules.name)));
    }
    if let Some(secret) = &pipeline.webhook_secret {
        secret_ref(secret, rules).map_err(|m| (".webhook_secret".into(), m))?;
    }
    for (j, gate) in pipeline.gates.iter().enumerate() {
        let namespace = match gate {
            Dependency::Service(named) | Dependency::DaemonSet(named) | Dependency::Job(Jobs::Named(named)) => {
                Some(named.namespace.as_str())
            }
            Dependency::Job(Jobs::Labelled { namespace, .. }) | Dependency::Pod { namespace, .. } => {
                Some(namespace.as_str())
            }
            Dependency::CustomResource(resource) => Some(resource.namespace.as_str()),
            Dependency::Container(_) | Dependency::Socket(_) => None,
        };
        let refused = match namespace {
            Some(ns) => rules.refuses_namespace(ns),
            None => Some("a tenant's gates look at objects of its namespaces, not at moor's host".into()),
        };
        if let Some(why) = refused {
            return Err((format!(".wait_for[{j}]"), why));
        }
    }
    Ok(())
}

/// A step uses only a plugin the tenant has, and reads only Secrets and ConfigMaps of its
/// namespaces, never moor's environment.
fn confine_step(step: &Step, rules: &Tenant, own: &[String]) -> Result<(), Problem> {
    let at = &step.at;
    if !rules.plugins.contains(&step.uses) && !own.contains(&step.uses) {
        let message = format!(
            "tenant `{}` may not use plugin `{}`; it may use the platform's {}",
            rules.name,
            step.uses,
            if rules.plugins.is_empty() { "(none)".to_owned() } else { rules.plugins.join(", ") }
        );
        return Err((format!("{at}.use"), message));
    }
    for (name, secret) in &step.secrets {
        secret_ref(secret, rules).map_err(|m| (format!("{at}.secrets.{name}"), m))?;
    }
    for (k, from) in step.vars_from.iter().enumerate() {
        let VarsFrom { configmap, secret, .. } = from;
        if let Some(name) = configmap.as_ref().or(secret.as_ref()) {
            secret_in(name, rules).map_err(|m| (format!("{at}.vars_from[{k}]"), m))?;
        }
    }
    Ok(())
}

/// A secret reference of the tenant: a Secret of its namespaces, not an environment variable.
fn secret_ref(secret: &SecretRef, rules: &Tenant) -> Result<(), String> {
    match secret {
        SecretRef::Secret { secret, .. } => secret_in(secret, rules),
        SecretRef::Env(_) => Err("a tenant's secrets are Secrets of its own namespaces, not moor's environment".into()),
    }
}

/// `name` or `namespace/name` of a Secret or ConfigMap the tenant may read: `namespace/name`
/// in one of its namespaces (a bare name is in `[moor] namespace`, the platform's).
fn secret_in(name: &str, rules: &Tenant) -> Result<(), String> {
    match name.split_once('/') {
        Some((ns, _)) => match rules.refuses_namespace(ns) {
            None => Ok(()),
            Some(why) => Err(why),
        },
        None => Err(format!(
            "a tenant names its Secrets and ConfigMaps as `namespace/name`, in its namespaces ({})",
            rules.namespaces
        )),
    }
}
