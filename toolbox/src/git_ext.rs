//! The git routes Daytona added with its 0.226 toolbox: config (`GET`/`POST /git/config`,
//! `POST /git/config/user`), stored credentials (`POST /git/credentials`), remotes (`GET`/`POST
//! /git/remotes`), `POST /git/reset` and `POST /git/restore`.
//!
//! They run the `git` binary like [`crate::git`] (same error mapping, `POST /env`'s environment,
//! so `HOME` and `GIT_CONFIG_GLOBAL` decide where `global` config and credentials go). Every
//! value reaches git as one argv element after the options, never through a shell; revisions
//! and names that start with `-` are refused so they cannot become options.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cove_api_types::toolbox::DaemonErrorCode;
use cove_api_types::toolbox::git_ext::{
    GitAddRemoteRequest, GitAuthenticateRequest, GitConfigResponse, GitConfigureUserRequest,
    GitRemote, GitResetRequest, GitRestoreRequest, GitSetConfigRequest, ListRemotesResponse,
};
use serde::Deserialize;

#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
use crate::git::{Creds, PathQuery, git, git_output, git_with_input, map_git_error, repo};
use crate::output::Stream;
use crate::server::{AppState, JsonBody, QueryParams};

type St = State<Arc<AppState>>;

/// A git config scope (`global` when the request has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Local,
    System,
}

impl Scope {
    /// Parses `scope` (absent or empty = `global`), case-insensitively as Daytona does.
    pub fn parse(scope: Option<&str>) -> Result<Self> {
        match scope.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("global") => Ok(Self::Global),
            Some("local") => Ok(Self::Local),
            Some("system") => Ok(Self::System),
            Some(other) => Err(ToolboxError::BadRequest(format!(
                "invalid scope: '{other}' (expected global, local or system)"
            ))),
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Self::Global => "--global",
            Self::Local => "--local",
            Self::System => "--system",
        }
    }
}

/// The directory a config command runs in: the repository for `local` (required), else the
/// repository when given (harmless), else none.
fn config_dir(st: &AppState, scope: Scope, path: Option<&str>) -> Result<Option<PathBuf>> {
    match path.filter(|p| !p.is_empty()) {
        Some(p) => Ok(Some(repo(st, p)?)),
        None if scope == Scope::Local => Err(ToolboxError::BadRequest(
            "path is required when scope is local".into(),
        )),
        None => Ok(None),
    }
}

/// Refuses an empty value or one git would read as an option.
fn operand<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(ToolboxError::BadRequest(format!("{what} is required")));
    }
    if value.starts_with('-') {
        return Err(ToolboxError::BadRequest(format!(
            "invalid {what}: '{value}' (must not start with '-')"
        )));
    }
    if value.contains('\0') {
        return Err(ToolboxError::BadRequest(format!(
            "invalid {what}: contains a NUL character"
        )));
    }
    Ok(value)
}

/// A path list for git after `--`: each path non-empty and without NUL.
fn pathspecs(files: &[String]) -> Result<Vec<&str>> {
    files
        .iter()
        .map(|f| {
            if f.is_empty() || f.contains('\0') {
                Err(ToolboxError::BadRequest(format!(
                    "invalid file path: '{f}'"
                )))
            } else {
                Ok(f.as_str())
            }
        })
        .collect()
}

/// git names a path it does not know a "pathspec" (mapped to `GIT_BRANCH_NOT_FOUND` for
/// checkout); for reset and restore it is a file that is not there: 404 `NOT_FOUND`.
fn pathspec_not_found(e: ToolboxError) -> ToolboxError {
    match e {
        ToolboxError::Git {
            code: DaemonErrorCode::GitBranchNotFound,
            message,
            ..
        } if message.contains("pathspec") => ToolboxError::Git {
            status: StatusCode::NOT_FOUND,
            code: DaemonErrorCode::NotFound,
            message,
        },
        other => other,
    }
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ConfigQuery {
    /// Config key (e.g. `user.name`)
    key: String,
    /// Repository path (required for local scope)
    #[serde(default)]
    path: Option<String>,
    /// Config scope: global (default), local or system
    #[serde(default)]
    scope: Option<String>,
}

/// `GET /git/config?key=&path=&scope=`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/git/config",
    tag = "git",
    operation_id = "GetGitConfig",
    summary = "Get a Git config value",
    description = "The value of `key` at `scope` (`global` by default; `local` needs `path`); \
        `value` is null when the key is unset. A multi-valued key gives its last value.",
    params(ConfigQuery),
    responses((status = 200, description = "The value", body = GitConfigResponse), DaemonErrors)
))]
pub async fn get_config(
    State(st): St,
    QueryParams(q): QueryParams<ConfigQuery>,
) -> Result<Json<GitConfigResponse>> {
    let key = operand("key", &q.key)?;
    let scope = Scope::parse(q.scope.as_deref())?;
    let dir = config_dir(&st, scope, q.path.as_deref())?;
    let out = git_output(
        &st.env,
        dir.as_deref(),
        &["config", scope.flag(), "--get", key],
        Creds::default(),
        None,
    )
    .await?;
    // Exit 1: the key is not set (or the config file does not exist).
    let value = match out.exit_code {
        0 => {
            let text = out.log.text(Some(Stream::Stdout));
            Some(text.strip_suffix('\n').unwrap_or(&text).to_owned())
        }
        1 if out.log.text(Some(Stream::Stderr)).trim().is_empty() => None,
        _ => {
            let stderr = out.log.text(Some(Stream::Stderr));
            return Err(map_git_error(stderr.trim()));
        }
    };
    Ok(Json(GitConfigResponse { value }))
}

/// Sets `key` to `value` at `scope`, replacing every value a multi-valued key had.
async fn set(
    st: &AppState,
    scope: Scope,
    path: Option<&str>,
    key: &str,
    value: &str,
) -> Result<()> {
    let key = operand("key", key)?;
    if value.contains('\0') {
        return Err(ToolboxError::BadRequest(format!(
            "the value of '{key}' contains a NUL character"
        )));
    }
    let dir = config_dir(st, scope, path)?;
    git(
        &st.env,
        dir.as_deref(),
        &["config", scope.flag(), "--replace-all", key, value],
        Creds::default(),
    )
    .await?;
    Ok(())
}

/// `POST /git/config`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/config",
    tag = "git",
    operation_id = "SetGitConfig",
    summary = "Set a Git config value",
    description = "Sets `key` to `value` at `scope` (`global` by default; `local` needs `path`), \
        replacing all values of a multi-valued key.",
    request_body = GitSetConfigRequest,
    responses((status = 200, description = "Set"), DaemonErrors)
))]
pub async fn set_config(
    State(st): St,
    JsonBody(req): JsonBody<GitSetConfigRequest>,
) -> Result<StatusCode> {
    let scope = Scope::parse(req.scope.as_deref())?;
    set(&st, scope, req.path.as_deref(), &req.key, &req.value).await?;
    tracing::debug!(key = ?req.key, ?scope, "git config set");
    Ok(StatusCode::OK)
}

/// `POST /git/config/user`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/config/user",
    tag = "git",
    operation_id = "ConfigureUser",
    summary = "Configure Git user",
    description = "Sets `user.name` and `user.email` at `scope` (`global` by default; `local` \
        needs `path`).",
    request_body = GitConfigureUserRequest,
    responses((status = 200, description = "Set"), DaemonErrors)
))]
pub async fn configure_user(
    State(st): St,
    JsonBody(req): JsonBody<GitConfigureUserRequest>,
) -> Result<StatusCode> {
    let scope = Scope::parse(req.scope.as_deref())?;
    if req.name.trim().is_empty() || req.email.trim().is_empty() {
        return Err(ToolboxError::BadRequest(
            "name and email are required".into(),
        ));
    }
    // Both checked before either is written.
    config_dir(&st, scope, req.path.as_deref())?;
    set(&st, scope, req.path.as_deref(), "user.name", &req.name).await?;
    set(&st, scope, req.path.as_deref(), "user.email", &req.email).await?;
    Ok(StatusCode::OK)
}

/// `POST /git/credentials`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/credentials",
    tag = "git",
    operation_id = "Authenticate",
    summary = "Authenticate Git",
    description = "Persists the credentials for `protocol://host` (default `https://github.com`) \
        with git's `store` helper (`~/.git-credentials`, plain text, mode 0600) and makes \
        `store` a global credential helper, so later clones, pulls and pushes use them.",
    request_body = GitAuthenticateRequest,
    responses((status = 200, description = "Stored"), DaemonErrors)
))]
pub async fn authenticate(
    State(st): St,
    JsonBody(req): JsonBody<GitAuthenticateRequest>,
) -> Result<StatusCode> {
    let host = req
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or("github.com");
    let protocol = req
        .protocol
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("https");
    // The credential record is line based: a newline or NUL would inject attributes.
    if [req.username.as_str(), &req.password, host, protocol]
        .iter()
        .any(|f| f.contains(['\n', '\r', '\0']))
    {
        return Err(ToolboxError::BadRequest(
            "credential fields must not contain newline or NUL characters".into(),
        ));
    }
    if req.username.is_empty() || req.password.is_empty() {
        return Err(ToolboxError::BadRequest(
            "username and password are required".into(),
        ));
    }
    let record = format!(
        "protocol={protocol}\nhost={host}\nusername={}\npassword={}\n\n",
        req.username, req.password
    );
    // Only the store helper gets the secret (not whatever else the user configured); it goes
    // over stdin, never argv.
    git_with_input(
        &st.env,
        None,
        &[
            "-c",
            "credential.helper=",
            "-c",
            "credential.helper=store",
            "credential",
            "approve",
        ],
        Creds::default(),
        Some(record.into_bytes()),
    )
    .await?;
    let helpers = git_output(
        &st.env,
        None,
        &["config", "--global", "--get-all", "credential.helper"],
        Creds::default(),
        None,
    )
    .await?;
    if !helpers
        .log
        .text(Some(Stream::Stdout))
        .lines()
        .any(|h| h.trim() == "store")
    {
        git(
            &st.env,
            None,
            &["config", "--global", "--add", "credential.helper", "store"],
            Creds::default(),
        )
        .await?;
    }
    // The host only: the user name may be a secret's half too.
    tracing::debug!(host = ?host, protocol = ?protocol, "git credentials stored");
    Ok(StatusCode::OK)
}

/// Leaves a password out of an URL (`https://u:p@h/x` → `https://u@h/x`).
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Parses `git config --get-regexp '^remote\..*\.url$'`: one remote per name (its first URL),
/// in the order of the config.
pub fn parse_remotes(out: &str) -> Vec<GitRemote> {
    let mut remotes: Vec<GitRemote> = Vec::new();
    for line in out.lines() {
        let Some((key, url)) = line.split_once(' ') else {
            continue;
        };
        let Some(name) = key
            .strip_prefix("remote.")
            .and_then(|k| k.strip_suffix(".url"))
        else {
            continue;
        };
        if !remotes.iter().any(|r| r.name == name) {
            remotes.push(GitRemote {
                name: name.to_owned(),
                url: without_password(url),
            });
        }
    }
    remotes
}

async fn list(st: &AppState, dir: &std::path::Path) -> Result<Vec<GitRemote>> {
    let out = git_output(
        &st.env,
        Some(dir),
        &["config", "--local", "--get-regexp", r"^remote\..*\.url$"],
        Creds::default(),
        None,
    )
    .await?;
    match out.exit_code {
        0 => Ok(parse_remotes(&out.log.text(Some(Stream::Stdout)))),
        // No remote at all.
        1 if out.log.text(Some(Stream::Stderr)).trim().is_empty() => Ok(Vec::new()),
        _ => Err(map_git_error(out.log.text(Some(Stream::Stderr)).trim())),
    }
}

/// `GET /git/remotes?path=`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/git/remotes",
    tag = "git",
    operation_id = "ListRemotes",
    summary = "List remotes",
    description = "The remotes of the repository, in the order of its config, each with its \
        (first) URL; a password in a URL is left out.",
    params(PathQuery),
    responses((status = 200, description = "The remotes", body = ListRemotesResponse), DaemonErrors)
))]
pub async fn remotes(
    State(st): St,
    QueryParams(q): QueryParams<PathQuery>,
) -> Result<Json<ListRemotesResponse>> {
    let dir = repo(&st, &q.path)?;
    Ok(Json(ListRemotesResponse {
        remotes: list(&st, &dir).await?,
    }))
}

/// `POST /git/remotes` → 201
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/remotes",
    tag = "git",
    operation_id = "AddRemote",
    summary = "Add a remote",
    description = "Adds remote `name` with `url`; with `overwrite` an existing one gets the new \
        URL (else it is 409). With `fetch` the remote is fetched right after.",
    request_body = GitAddRemoteRequest,
    responses((status = 201, description = "Added"), DaemonErrors)
))]
pub async fn add_remote(
    State(st): St,
    JsonBody(req): JsonBody<GitAddRemoteRequest>,
) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    let name = operand("name", &req.name)?;
    let url = operand("url", &req.url)?;
    let exists = list(&st, &dir).await?.iter().any(|r| r.name == name);
    let args: &[&str] = match (exists, req.overwrite.unwrap_or(false)) {
        (false, _) => &["remote", "add", name, url],
        (true, true) => &["remote", "set-url", name, url],
        (true, false) => {
            return Err(ToolboxError::Conflict(format!(
                "remote {name} already exists"
            )));
        }
    };
    git(&st.env, Some(&dir), args, Creds::default()).await?;
    if req.fetch.unwrap_or(false) {
        git(&st.env, Some(&dir), &["fetch", name], Creds::default()).await?;
    }
    tracing::debug!(name = ?name, overwritten = exists, "git remote added");
    Ok(StatusCode::CREATED)
}

/// The modes of `git reset`.
const RESET_MODES: &[&str] = &["soft", "mixed", "hard", "merge", "keep"];

/// `POST /git/reset`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/reset",
    tag = "git",
    operation_id = "ResetChanges",
    summary = "Reset repository",
    description = "`git reset --<mode> <target>` (`mixed` and `HEAD` by default). With `files`, \
        only those paths are reset in the index (`mixed` only).",
    request_body = GitResetRequest,
    responses((status = 200, description = "Reset"), DaemonErrors)
))]
pub async fn reset(State(st): St, JsonBody(req): JsonBody<GitResetRequest>) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    let mode = req
        .mode
        .as_deref()
        .filter(|m| !m.is_empty())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "mixed".to_owned());
    if !RESET_MODES.contains(&mode.as_str()) {
        return Err(ToolboxError::BadRequest(format!(
            "invalid reset mode: '{mode}' (expected soft, mixed, hard, merge or keep)"
        )));
    }
    let target = match req.target.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => operand("target", t)?,
        None => "HEAD",
    };
    let files = pathspecs(req.files.as_deref().unwrap_or_default())?;
    let flag = format!("--{mode}");
    let mut args = vec!["reset", "-q"];
    if files.is_empty() {
        args.extend([flag.as_str(), target]);
    } else {
        if mode != "mixed" {
            return Err(ToolboxError::BadRequest(format!(
                "a {mode} reset cannot be limited to files (only mixed)"
            )));
        }
        args.extend([target, "--"]);
        args.extend(files);
    }
    git(&st.env, Some(&dir), &args, Creds::default())
        .await
        .map_err(pathspec_not_found)?;
    Ok(StatusCode::OK)
}

/// `POST /git/restore`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/restore",
    tag = "git",
    operation_id = "RestoreFiles",
    summary = "Restore files",
    description = "`git restore` of `files`: the working tree by default, the index with \
        `staged` (both with `staged` and `worktree`), from `source` instead of the index (or \
        `HEAD` for the index) when given.",
    request_body = GitRestoreRequest,
    responses((status = 200, description = "Restored"), DaemonErrors)
))]
pub async fn restore(
    State(st): St,
    JsonBody(req): JsonBody<GitRestoreRequest>,
) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    let files = pathspecs(&req.files)?;
    if files.is_empty() {
        return Err(ToolboxError::BadRequest("files are required".into()));
    }
    let source = match req.source.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(format!("--source={}", operand("source", s)?)),
        None => None,
    };
    let mut args = vec!["restore"];
    if req.staged.unwrap_or(false) {
        args.push("--staged");
    }
    if req.worktree.unwrap_or(false) {
        args.push("--worktree");
    }
    if let Some(s) = source.as_deref() {
        args.push(s);
    }
    args.push("--");
    args.extend(files);
    git(&st.env, Some(&dir), &args, Creds::default())
        .await
        .map_err(pathspec_not_found)?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(Scope::parse(None).ok(), Some(Scope::Global));
        assert_eq!(Scope::parse(Some("")).ok(), Some(Scope::Global));
        assert_eq!(Scope::parse(Some("LOCAL")).ok(), Some(Scope::Local));
        assert_eq!(Scope::parse(Some("system")).ok(), Some(Scope::System));
        assert!(Scope::parse(Some("worktree")).is_err());
    }

    #[test]
    fn operands_cannot_be_options() {
        assert!(operand("target", "HEAD~1").is_ok());
        assert!(operand("target", "--hard").is_err());
        assert!(operand("target", "").is_err());
        assert!(operand("name", "a\0b").is_err());
        assert!(pathspecs(&["a".into(), String::new()]).is_err());
        assert_eq!(pathspecs(&["-x".into()]).ok(), Some(vec!["-x"]), "after --");
    }

    #[test]
    fn passwords_are_left_out_of_urls() {
        assert_eq!(
            without_password("https://user:tok@github.com/a/b.git"),
            "https://user@github.com/a/b.git"
        );
        assert_eq!(
            without_password("https://user@github.com/a:b"),
            "https://user@github.com/a:b"
        );
        assert_eq!(
            without_password("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
        assert_eq!(without_password("/srv/repo.git"), "/srv/repo.git");
    }

    #[test]
    fn remotes_from_config() {
        let out = "remote.origin.url https://h/a.git\nremote.up.stream.url /srv/x\n\
            remote.origin.url https://h/second.git\nremote.bad\n";
        let r = parse_remotes(out);
        assert_eq!(
            r,
            vec![
                GitRemote {
                    name: "origin".into(),
                    url: "https://h/a.git".into()
                },
                GitRemote {
                    name: "up.stream".into(),
                    url: "/srv/x".into()
                },
            ]
        );
    }
}
