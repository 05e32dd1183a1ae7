//! A pipeline's own readiness rules, in CEL over `object`; they win over kstatus's for
//! their kind.

use serde_json::Value;

use super::Health;
use crate::config::{Cel, HealthRule};

/// A pipeline's readiness rule for one kind, compiled when its config loaded.
#[derive(Debug, Clone, Copy)]
pub struct Custom<'r>(pub &'r HealthRule);

impl Custom<'_> {
    pub fn applies_to(&self, group: &str, kind: &str) -> bool {
        self.0.kind == kind && self.0.group.as_deref().is_none_or(|g| g == group)
    }

    /// Evaluates the rule on `live`. An expression that cannot be evaluated yet (a field
    /// not there yet) means "not ready".
    pub fn check(&self, live: &Value) -> Health {
        let holds = |cel: &Cel| -> Result<bool, String> {
            let mut context = cel::Context::default();
            context.add_variable("object", live.clone()).map_err(|e| e.to_string())?;
            match cel.program.execute(&context) {
                Ok(cel::Value::Bool(b)) => Ok(b),
                Ok(other) => Err(format!("evaluates to {other:?}, not a boolean")),
                Err(e) => Err(e.to_string()),
            }
        };
        if let Some(failed) = &self.0.failed
            && holds(failed) == Ok(true)
        {
            return Health::Failed(format!("`{}` holds", failed.text));
        }
        match holds(&self.0.ready) {
            Ok(true) => Health::Ready,
            Ok(false) => Health::Progressing(format!("waiting for `{}`", self.0.ready.text)),
            Err(e) => Health::Progressing(format!("waiting for `{}` ({e})", self.0.ready.text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn custom_cel_checks_decide_readiness() {
        let text = "[[pipeline]]\nname = \"p\"\nsource = \"s\"\n\
                    health = [{ kind = \"example.com/Widget\", ready = \"object.status.phase == 'Ready'\", \
                    failed = \"object.status.phase == 'Failed'\" }]\n\n[[source]]\nname = \"s\"\npath = \".\"\n";
        let config = crate::config::Config::parse(std::path::Path::new("moor.toml"), text.into(), &["yaml"]).unwrap();
        let check = Custom(&config.pipelines[0].health_rules[0]);
        assert!(check.applies_to("example.com", "Widget") && !check.applies_to("other.com", "Widget"));
        assert_eq!(check.check(&json!({"status": {"phase": "Ready"}})), Health::Ready);
        assert!(matches!(check.check(&json!({"status": {"phase": "Failed"}})), Health::Failed(_)));
        assert!(matches!(check.check(&json!({"spec": {}})), Health::Progressing(_)));
    }
}
