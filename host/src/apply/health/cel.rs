//! A pipeline's own readiness rules, in CEL over `object`; they win over kstatus's for
//! their kind.

use serde_json::Value;

use super::Health;

/// A pipeline's custom readiness rule for one kind, compiled.
pub struct Custom {
    group: Option<String>,
    kind: String,
    ready: (cel::Program, String),
    failed: Option<(cel::Program, String)>,
}

impl std::fmt::Debug for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custom").field("kind", &self.kind).field("ready", &self.ready.1).finish_non_exhaustive()
    }
}

impl Custom {
    /// Compiles a pipeline's checks (their syntax was checked when the config loaded).
    pub fn compile(checks: &[crate::config::HealthCheck]) -> Vec<Custom> {
        let program = |text: &str| cel::Program::compile(text).ok().map(|p| (p, text.to_owned()));
        checks
            .iter()
            .filter_map(|c| {
                let (group, kind) = match c.kind.split_once('/') {
                    Some((g, k)) => (Some(g.to_owned()), k.to_owned()),
                    None => (None, c.kind.clone()),
                };
                Some(Custom {
                    group,
                    kind,
                    ready: program(&c.ready)?,
                    failed: c.failed.as_ref().and_then(|f| program(f)),
                })
            })
            .collect()
    }

    pub fn applies_to(&self, group: &str, kind: &str) -> bool {
        self.kind == kind && self.group.as_deref().is_none_or(|g| g == group)
    }

    /// Evaluates the rule on `live`. An expression that cannot be evaluated yet (a field
    /// not there yet) means "not ready".
    pub fn check(&self, live: &Value) -> Health {
        let holds = |(program, _): &(cel::Program, String)| -> Result<bool, String> {
            let mut context = cel::Context::default();
            context.add_variable("object", live.clone()).map_err(|e| e.to_string())?;
            match program.execute(&context) {
                Ok(cel::Value::Bool(b)) => Ok(b),
                Ok(other) => Err(format!("evaluates to {other:?}, not a boolean")),
                Err(e) => Err(e.to_string()),
            }
        };
        if let Some(failed) = &self.failed
            && holds(failed) == Ok(true)
        {
            return Health::Failed(format!("`{}` holds", failed.1));
        }
        match holds(&self.ready) {
            Ok(true) => Health::Ready,
            Ok(false) => Health::Progressing(format!("waiting for `{}`", self.ready.1)),
            Err(e) => Health::Progressing(format!("waiting for `{}` ({e})", self.ready.1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn custom_cel_checks_decide_readiness() {
        let checks = Custom::compile(&[crate::config::HealthCheck {
            kind: "example.com/Widget".into(),
            ready: "object.status.phase == 'Ready'".into(),
            failed: Some("object.status.phase == 'Failed'".into()),
        }]);
        let check = &checks[0];
        assert!(check.applies_to("example.com", "Widget") && !check.applies_to("other.com", "Widget"));
        assert_eq!(check.check(&json!({"status": {"phase": "Ready"}})), Health::Ready);
        assert!(matches!(check.check(&json!({"status": {"phase": "Failed"}})), Health::Failed(_)));
        assert!(matches!(check.check(&json!({"spec": {}})), Health::Progressing(_)));
    }
}
