//! Application variables and `{{ name }}` templates.
//!
//! Resolution order for an application variable, highest first:
//! 1. the environment variable `SPIN_VARIABLE_<UPPERCASE_NAME>`;
//! 2. a value cove manages itself (embedded backend endpoints, credentials, ...);
//! 3. the manifest `default`.
//!
//! A `required` variable left without a value is a startup error.

use std::collections::{BTreeMap, HashMap};

use crate::manifest::VariableDef;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariableError {
    #[error("required variable {name:?} has no value (set SPIN_VARIABLE_{upper})")]
    RequiredMissing { name: String, upper: String },
    #[error("template {template:?} refers to undefined application variable {name:?}")]
    UndefinedInTemplate { template: String, name: String },
    #[error("template {template:?} has an unterminated `{{{{`")]
    Unterminated { template: String },
}

/// Resolved application variable values.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
}

impl AppVariables {
    /// Resolves every declared variable. `env` looks up process environment variables;
    /// `managed` holds the values cove injects.
    pub fn resolve(
        defs: &BTreeMap<String, VariableDef>,
        managed: &HashMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, VariableError> {
        let mut values = HashMap::new();
        for (name, def) in defs {
            let upper = name.to_uppercase();
            let value = env(&format!("SPIN_VARIABLE_{upper}"))
                .or_else(|| managed.get(name).cloned())
                .or_else(|| def.default.clone());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => {
                    return Err(VariableError::RequiredMissing {
                        name: name.clone(),
                        upper,
                    });
                }
            }
        }
        Ok(Self { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Expands `{{ name }}` references in `template`.
    pub fn expand(&self, template: &str) -> Result<String, VariableError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(VariableError::Unterminated {
                    template: template.to_owned(),
                });
            };
            let name = after[..end].trim();
            let value = self
                .get(name)
                .ok_or_else(|| VariableError::UndefinedInTemplate {
                    template: template.to_owned(),
                    name: name.to_owned(),
                })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Expands a component's `[component.x.variables]` into the values it may read.
    pub fn component_values(
        &self,
        templates: &BTreeMap<String, String>,
    ) -> Result<HashMap<String, String>, VariableError> {
        templates
            .iter()
            .map(|(name, t)| Ok((name.clone(), self.expand(t)?)))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn defs() -> BTreeMap<String, VariableDef> {
        let d = |default: Option<&str>, required| VariableDef {
            default: default.map(str::to_owned),
            required,
            secret: false,
        };
        BTreeMap::from([
            ("greeting".to_owned(), d(Some("hello"), false)),
            ("aws_region".to_owned(), d(Some("eu-west-1"), false)),
            ("endpoint".to_owned(), d(None, true)),
        ])
    }

    #[test]
    fn precedence_env_then_managed_then_default() {
        let managed = HashMap::from([
            ("endpoint".to_owned(), "http://127.0.0.1:1".to_owned()),
            ("aws_region".to_owned(), "us-east-1".to_owned()),
        ]);
        let env = |k: &str| (k == "SPIN_VARIABLE_AWS_REGION").then(|| "ap-south-1".to_owned());
        let v = AppVariables::resolve(&defs(), &managed, env).unwrap();
        assert_eq!(v.get("greeting"), Some("hello"));
        assert_eq!(v.get("endpoint"), Some("http://127.0.0.1:1"));
        assert_eq!(v.get("aws_region"), Some("ap-south-1"));
    }

    #[test]
    fn required_without_value_names_the_variable() {
        let e = AppVariables::resolve(&defs(), &HashMap::new(), |_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "required variable \"endpoint\" has no value (set SPIN_VARIABLE_ENDPOINT)"
        );
    }

    #[test]
    fn templates() {
        let managed = HashMap::from([("endpoint".to_owned(), "http://h:1".to_owned())]);
        let v = AppVariables::resolve(&defs(), &managed, |_| None).unwrap();
        assert_eq!(v.expand("{{ endpoint }}").unwrap(), "http://h:1");
        assert_eq!(
            v.expand("{{greeting}}, {{ aws_region }}!").unwrap(),
            "hello, eu-west-1!"
        );
        assert_eq!(v.expand("plain").unwrap(), "plain");
        assert!(matches!(
            v.expand("{{ nope }}"),
            Err(VariableError::UndefinedInTemplate { .. })
        ));
        assert!(matches!(
            v.expand("{{ greeting"),
            Err(VariableError::Unterminated { .. })
        ));
    }
}
