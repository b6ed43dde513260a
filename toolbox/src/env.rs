//! `POST /env`: the environment the processes the daemon starts from now on inherit.
//!
//! Daytona's daemon changes its own process environment. Changing it in a multi-threaded
//! program is unsound (`setenv` races every `getenv`, in libc too), so the daemon keeps the
//! changes here instead and applies them to each command it spawns ([`ProcessEnv::apply`]):
//! `process/execute`, `code-run`, git, new sessions and language servers. Running processes keep
//! their environment, as in Daytona. A request's own `envs` still win over these.
//!
//! Bound: the changed variables together stay under [`MAX_ENV_BYTES`] (a command's whole
//! environment must fit in the kernel's argument space, or every spawn fails with `E2BIG`), one
//! value under [`MAX_VALUE_BYTES`] (the kernel's limit for one string).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::State;
use cove_api_types::toolbox::system::{UpdateEnvRequest, UpdateEnvResponse};

#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
use crate::server::{AppState, JsonBody};

/// Most bytes (`NAME=value` of every changed variable) the changes may hold.
pub const MAX_ENV_BYTES: usize = 1 << 20;
/// Longest value: the kernel refuses a longer argument or environment string (`MAX_ARG_STRLEN`).
pub const MAX_VALUE_BYTES: usize = 128 * 1024;

/// Daytona's answer to `POST /env`, word for word.
pub const UPDATED: &str = "Environment updated successfully";

/// The changes `POST /env` made to the daemon's own environment: a name maps to its new value,
/// or to `None` when it was removed.
#[derive(Debug, Default)]
pub struct ProcessEnv {
    changes: RwLock<BTreeMap<OsString, Option<OsString>>>,
}

/// Whether `name` is a portable variable name (`[A-Za-z_][A-Za-z0-9_]*`), the rule Daytona's
/// daemon applies to `envs`.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The daemon's environment with `changes` applied.
fn effective_with(changes: &BTreeMap<OsString, Option<OsString>>) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (name, value) in changes {
        match value {
            Some(v) => env.insert(name.clone(), v.clone()),
            None => env.remove(name),
        };
    }
    env
}

fn invalid_name(name: &str) -> ToolboxError {
    ToolboxError::BadRequest(format!("invalid environment variable name: '{name}'"))
}

impl ProcessEnv {
    /// Applies the changes to a command about to be spawned (before its own variables).
    pub fn apply(&self, cmd: &mut std::process::Command) {
        let Ok(changes) = self.changes.read() else {
            return;
        };
        for (name, value) in changes.iter() {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
    }

    /// The environment a command spawned now starts with: the daemon's, with the changes.
    pub fn effective(&self) -> BTreeMap<OsString, OsString> {
        match self.changes.read() {
            Ok(changes) => effective_with(&changes),
            Err(_) => std::env::vars_os().collect(),
        }
    }

    /// Applies a request: `unsetValuePrefix`, then `unset`, then `set`; all or nothing.
    pub fn update(&self, req: &UpdateEnvRequest) -> Result<()> {
        let set = req.set.clone().unwrap_or_default();
        let unset = req.unset.clone().unwrap_or_default();
        for name in set.keys().chain(unset.iter()) {
            if !valid_name(name) {
                return Err(invalid_name(name));
            }
        }
        if let Some((name, _)) = set.iter().find(|(_, v)| v.contains('\0')) {
            return Err(ToolboxError::BadRequest(format!(
                "the value of environment variable '{name}' contains a NUL character"
            )));
        }
        if let Some((name, _)) = set.iter().find(|(_, v)| v.len() > MAX_VALUE_BYTES) {
            return Err(ToolboxError::BadRequest(format!(
                "the value of environment variable '{name}' exceeds {MAX_VALUE_BYTES} bytes"
            )));
        }
        let prefix = req.unset_value_prefix.as_deref().unwrap_or_default();
        // Read and written under one lock, so two requests cannot interleave.
        let mut changes = self
            .changes
            .write()
            .map_err(|_| ToolboxError::Internal("environment lock poisoned".into()))?;
        let mut next = changes.clone();
        let doomed: Vec<OsString> = if prefix.is_empty() {
            Vec::new()
        } else {
            effective_with(&next)
                .into_iter()
                .filter(|(name, value)| {
                    value.as_bytes().starts_with(prefix.as_bytes())
                        && !name.to_str().is_some_and(|n| set.contains_key(n))
                })
                .map(|(name, _)| name)
                .collect()
        };
        for name in doomed.into_iter().chain(unset.iter().map(OsString::from)) {
            // A name the daemon never had needs no removal entry.
            if std::env::var_os(&name).is_some() {
                next.insert(name, None);
            } else {
                next.remove(&name);
            }
        }
        for (name, value) in set {
            next.insert(name.into(), Some(value.into()));
        }
        let bytes: usize = next
            .iter()
            .map(|(n, v)| n.len() + 1 + v.as_deref().map_or(0, OsStr::len))
            .sum();
        if bytes > MAX_ENV_BYTES {
            return Err(ToolboxError::BadRequest(format!(
                "the changed environment would exceed {MAX_ENV_BYTES} bytes"
            )));
        }
        *changes = next;
        Ok(())
    }
}

/// `POST /env`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/env",
    tag = "server",
    operation_id = "UpdateEnv",
    summary = "Change the environment of the processes started from now on",
    description = "Applies `unsetValuePrefix`, then `unset`, then `set` to the environment that \
        commands (`process/execute`, `code-run`), git, new sessions and language servers \
        started afterwards inherit; running processes keep theirs. A request's own `envs` win. \
        Names must match `[A-Za-z_][A-Za-z0-9_]*`; all or nothing.",
    request_body = UpdateEnvRequest,
    responses((status = 200, description = "`{\"message\": \"Environment updated successfully\"}`", body = UpdateEnvResponse), DaemonErrors)
))]
pub async fn update(
    State(st): State<Arc<AppState>>,
    JsonBody(req): JsonBody<UpdateEnvRequest>,
) -> Result<Json<UpdateEnvResponse>> {
    st.env.update(&req)?;
    // Names only: values may be secrets.
    tracing::debug!(
        set = ?req.set.as_ref().map(|s| s.keys().collect::<Vec<_>>()),
        unset = ?req.unset,
        "environment updated"
    );
    Ok(Json(UpdateEnvResponse {
        message: UPDATED.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(set: &[(&str, &str)], unset: &[&str], prefix: Option<&str>) -> UpdateEnvRequest {
        UpdateEnvRequest {
            set: Some(
                set.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            unset: Some(unset.iter().map(|s| (*s).to_owned()).collect()),
            unset_value_prefix: prefix.map(str::to_owned),
        }
    }

    fn get(env: &ProcessEnv, name: &str) -> Option<String> {
        env.effective()
            .get(OsStr::new(name))
            .map(|v| v.to_string_lossy().into_owned())
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("FOO_1"));
        assert!(valid_name("_x"));
        assert!(!valid_name(""));
        assert!(!valid_name("1A"));
        assert!(!valid_name("A-B"));
        assert!(!valid_name("A=B"));
        let env = ProcessEnv::default();
        let e = env.update(&req(&[("BAD NAME", "x")], &[], None));
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("invalid environment variable name: 'BAD NAME'".to_owned())
        );
        assert!(env.update(&req(&[], &["="], None)).is_err());
        assert!(env.update(&req(&[("A", "x\0y")], &[], None)).is_err());
    }

    #[test]
    fn set_unset_and_prefix_apply_in_order() {
        let env = ProcessEnv::default();
        env.update(&req(
            &[
                ("COVE_T_A", "1"),
                ("COVE_T_B", "secret:b"),
                ("COVE_T_C", "secret:c"),
            ],
            &[],
            None,
        ))
        .expect("set");
        assert_eq!(get(&env, "COVE_T_A").as_deref(), Some("1"));
        // The prefix removes B and C, but C is set again by the same request.
        env.update(&req(
            &[("COVE_T_C", "secret:new")],
            &["COVE_T_A"],
            Some("secret:"),
        ))
        .expect("update");
        assert_eq!(get(&env, "COVE_T_A"), None);
        assert_eq!(get(&env, "COVE_T_B"), None);
        assert_eq!(get(&env, "COVE_T_C").as_deref(), Some("secret:new"));
        // PATH is the daemon's own: removing it is recorded and applied to commands.
        env.update(&req(&[], &["PATH"], None)).expect("unset PATH");
        assert_eq!(get(&env, "PATH"), None);
        let mut cmd = std::process::Command::new("env");
        env.apply(&mut cmd);
        let envs: BTreeMap<_, _> = cmd.get_envs().collect();
        assert_eq!(envs.get(OsStr::new("PATH")), Some(&None));
        assert_eq!(
            envs.get(OsStr::new("COVE_T_C")),
            Some(&Some(OsStr::new("secret:new")))
        );
        assert!(!envs.contains_key(OsStr::new("COVE_T_B")));
    }

    #[test]
    fn the_changes_are_bounded() {
        let env = ProcessEnv::default();
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(env.update(&req(&[("A", &big)], &[], None)).is_err());
        let value = "y".repeat(MAX_VALUE_BYTES);
        for i in 0..7 {
            env.update(&req(&[(&format!("V{i}"), &value)], &[], None))
                .expect("under the bound");
        }
        let e = env.update(&req(&[("V7", &value), ("V8", &value)], &[], None));
        assert!(e.is_err(), "past {MAX_ENV_BYTES} bytes");
        // All or nothing: V7 was not kept.
        assert_eq!(get(&env, "V7"), None);
    }
}
