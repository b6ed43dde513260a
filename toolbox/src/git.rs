//! `/git/*`: runs the `git` binary and maps its stderr to the daemon's GIT_* error codes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cove_api_types::toolbox::{
    DaemonErrorCode, GitAddRequest, GitBranchRequest, GitCheckoutRequest, GitCloneRequest,
    GitCommitInfo, GitCommitRequest, GitCommitResponse, GitFileStatus, GitInitRequest,
    GitRemoteRequest, GitStatus, ListBranchResponse,
};
use serde::Deserialize;

use crate::env::ProcessEnv;
#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
use crate::output::Stream;
use crate::process;
use crate::server::{AppState, JsonBody, QueryParams};

type St = State<Arc<AppState>>;

/// Credentials passed to git through an inline credential helper reading the environment.
#[derive(Default)]
pub(crate) struct Creds<'a> {
    pub(crate) username: Option<&'a str>,
    pub(crate) password: Option<&'a str>,
}

/// Longest a git command may run.
const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs `git args...` in `dir` (with `input` on its stdin) and returns its exit code and output
/// whatever the exit code; only a git that does not start is an error.
pub(crate) async fn git_output(
    env: &ProcessEnv,
    dir: Option<&Path>,
    args: &[&str],
    creds: Creds<'_>,
    input: Option<Vec<u8>>,
) -> Result<process::Output> {
    let mut cmd = tokio::process::Command::new("git");
    // `POST /env`'s changes first: git's own settings below win over them.
    env.apply(cmd.as_std_mut());
    if let (Some(u), Some(p)) = (creds.username, creds.password) {
        cmd.arg("-c").arg("credential.helper=").arg("-c").arg(
            "credential.helper=!f() { echo \"username=$COVE_GIT_USERNAME\"; echo \"password=$COVE_GIT_PASSWORD\"; }; f",
        );
        cmd.env("COVE_GIT_USERNAME", u).env("COVE_GIT_PASSWORD", p);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("LC_ALL", "C");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    // git's own output is parsed, so it is kept whole.
    match process::run_with_input(cmd, input, Some(GIT_TIMEOUT), usize::MAX).await {
        Err(ToolboxError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(ToolboxError::Internal("git is not installed".into()))
        }
        other => other,
    }
}

/// git's complaint of a failed command: its stderr, else its stdout.
fn complaint(out: &process::Output) -> String {
    let stderr = out.log.text(Some(Stream::Stderr));
    if stderr.trim().is_empty() {
        out.log.text(Some(Stream::Stdout)).trim().to_owned()
    } else {
        stderr.trim().to_owned()
    }
}

/// Runs `git args...` in `dir`; non-zero exits become mapped errors.
pub(crate) async fn git(
    env: &ProcessEnv,
    dir: Option<&Path>,
    args: &[&str],
    creds: Creds<'_>,
) -> Result<String> {
    git_with_input(env, dir, args, creds, None).await
}

/// [`git`] with `input` on git's stdin.
pub(crate) async fn git_with_input(
    env: &ProcessEnv,
    dir: Option<&Path>,
    args: &[&str],
    creds: Creds<'_>,
    input: Option<Vec<u8>>,
) -> Result<String> {
    let out = git_output(env, dir, args, creds, input).await?;
    if out.exit_code != 0 {
        return Err(map_git_error(&complaint(&out)));
    }
    Ok(out.log.text(Some(Stream::Stdout)))
}

/// One mapping of git's messages: it applies when, for each group of `all`, the message contains
/// one of its needles, and it contains none of `none`. The first rule that applies wins.
struct Rule {
    all: &'static [&'static [&'static str]],
    none: &'static [&'static str],
    status: StatusCode,
    code: DaemonErrorCode,
}

const fn rule(
    all: &'static [&'static [&'static str]],
    status: StatusCode,
    code: DaemonErrorCode,
) -> Rule {
    Rule {
        all,
        none: &[],
        status,
        code,
    }
}

const BRANCH_NOT_FOUND: &[&str] = &[
    "did not match any file(s) known to git",
    "remote branch",
    "not found in upstream",
    "couldn't find remote ref",
    "invalid reference",
    "not a valid branch name",
    "pathspec",
];

const RULES: &[Rule] = &[
    rule(
        &[&[
            "authentication failed",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "invalid username or password",
            "permission denied (publickey)",
            "http basic: access denied",
        ]],
        StatusCode::UNAUTHORIZED,
        DaemonErrorCode::GitAuthFailed,
    ),
    // 422, as Daytona's (the SDK's `DaytonaGitRemoteRejectedError` is an unprocessable entity).
    rule(
        &[&["remote rejected", "pre-receive hook declined"]],
        StatusCode::UNPROCESSABLE_ENTITY,
        DaemonErrorCode::GitRemoteRejected,
    ),
    rule(
        &[&[
            "[rejected]",
            "non-fast-forward",
            "fetch first",
            "failed to push some refs",
        ]],
        StatusCode::CONFLICT,
        DaemonErrorCode::GitPushRejected,
    ),
    rule(
        &[&[
            "would be overwritten",
            "please commit your changes or stash them",
            "untracked working tree files would be",
        ]],
        StatusCode::CONFLICT,
        DaemonErrorCode::GitDirtyWorktree,
    ),
    rule(
        &[&["conflict", "automatic merge failed", "unmerged"]],
        StatusCode::CONFLICT,
        DaemonErrorCode::GitMergeConflict,
    ),
    rule(
        &[&["already exists"], &["branch"]],
        StatusCode::CONFLICT,
        DaemonErrorCode::GitBranchExists,
    ),
    rule(
        &[&["already exists and is not an empty directory"]],
        StatusCode::CONFLICT,
        DaemonErrorCode::Conflict,
    ),
    Rule {
        all: &[BRANCH_NOT_FOUND],
        none: &["did not match any files"],
        status: StatusCode::NOT_FOUND,
        code: DaemonErrorCode::GitBranchNotFound,
    },
    rule(
        &[&["branch '"], &["not found"]],
        StatusCode::NOT_FOUND,
        DaemonErrorCode::GitBranchNotFound,
    ),
    // The host refused this user (HTTP 403), as Daytona's daemon tells it from a failed login.
    rule(
        &[&["the requested url returned error: 403"]],
        StatusCode::FORBIDDEN,
        DaemonErrorCode::Forbidden,
    ),
    Rule {
        all: &[&["remote: permission"], &["denied"]],
        none: &[],
        status: StatusCode::FORBIDDEN,
        code: DaemonErrorCode::Forbidden,
    },
    rule(
        &[&[
            "repository not found",
            "not a git repository",
            "does not appear to be a git repository",
            "can only be used inside a git repository",
            "the requested url returned error: 404",
            "does not exist",
            "not found",
        ]],
        StatusCode::NOT_FOUND,
        DaemonErrorCode::GitRepoNotFound,
    ),
    // A revision that names nothing (`reset --hard nope`, `restore --source=nope`: "could not
    // resolve nope"), not a host that does not resolve.
    Rule {
        all: &[&[
            "unknown revision",
            "bad revision",
            "invalid object name",
            "not a valid object name",
            "could not resolve ",
        ]],
        none: &["could not resolve host", "could not resolve proxy"],
        status: StatusCode::NOT_FOUND,
        code: DaemonErrorCode::NotFound,
    },
    // A config file git may not write (`scope: system` as a user).
    rule(
        &[&["could not lock config file", "permission denied"]],
        StatusCode::FORBIDDEN,
        DaemonErrorCode::Forbidden,
    ),
    rule(
        &[&[
            "could not resolve host",
            "unable to access",
            "connection refused",
            "connection timed out",
            "timed out",
            "ssl",
            "the remote end hung up",
            "early eof",
        ]],
        StatusCode::BAD_GATEWAY,
        DaemonErrorCode::GitTransportFailed,
    ),
];

/// Maps git's messages to (status, code); unknown failures are 400 `BAD_REQUEST`.
pub fn map_git_error(stderr: &str) -> ToolboxError {
    let s = stderr.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
    let (status, code) = RULES
        .iter()
        .find(|r| r.all.iter().all(|group| has(group)) && !has(r.none))
        .map_or(
            (StatusCode::BAD_REQUEST, DaemonErrorCode::BadRequest),
            |r| (r.status, r.code),
        );
    ToolboxError::Git {
        status,
        code,
        message: stderr.to_owned(),
    }
}

pub(crate) fn repo(st: &AppState, path: &str) -> Result<PathBuf> {
    let dir = st.paths.resolve(path)?;
    if !dir.is_dir() {
        return Err(ToolboxError::Git {
            status: StatusCode::NOT_FOUND,
            code: DaemonErrorCode::GitRepoNotFound,
            message: format!("repository not found: {path}"),
        });
    }
    Ok(dir)
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct PathQuery {
    pub(crate) path: String,
}

/// Puts `user:password@` into an http(s) URL.
fn url_with_creds(url: &str, user: Option<&str>, pass: Option<&str>) -> String {
    let (Some(user), Some(pass)) = (user, pass) else {
        return url.to_owned();
    };
    for scheme in ["https://", "http://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let enc = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            return format!("{scheme}{}:{}@{rest}", enc(user), enc(pass));
        }
    }
    url.to_owned()
}

/// `POST /git/clone`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/clone",
    tag = "git",
    operation_id = "CloneRepository",
    summary = "Clone a repository",
    request_body = GitCloneRequest,
    responses((status = 200, description = "Cloned"), DaemonErrors)
))]
pub async fn clone(State(st): St, JsonBody(req): JsonBody<GitCloneRequest>) -> Result<StatusCode> {
    let dest = st.paths.resolve(&req.path)?;
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| ToolboxError::io(&req.path, e))?;
    }
    let url = url_with_creds(&req.url, req.username.as_deref(), req.password.as_deref());
    let depth = req.depth.map(|d| d.to_string());
    let mut args: Vec<&str> = vec!["clone"];
    if req.insecure_skip_tls.unwrap_or(false) {
        args.splice(0..0, ["-c", "http.sslVerify=false"]);
    }
    if let Some(b) = req.branch.as_deref().filter(|b| !b.is_empty()) {
        args.extend(["--branch", b]);
    }
    if let Some(d) = depth.as_deref() {
        args.extend(["--depth", d]);
    }
    let dest_s = dest.to_string_lossy().into_owned();
    args.extend(["--", &url, &dest_s]);
    git(&st.env, None, &args, Creds::default())
        .await
        .map_err(|e| scrub(e, &url, &req.url))?;
    if let Some(commit) = req.commit_id.as_deref().filter(|c| !c.is_empty()) {
        git(
            &st.env,
            Some(&dest),
            &["checkout", "--detach", commit],
            Creds::default(),
        )
        .await?;
    }
    if url != req.url {
        // Do not leave the password in .git/config.
        git(
            &st.env,
            Some(&dest),
            &["remote", "set-url", "origin", &req.url],
            Creds::default(),
        )
        .await?;
    }
    Ok(StatusCode::OK)
}

/// Removes credentials from an error message.
pub(crate) fn scrub(e: ToolboxError, with_creds: &str, plain: &str) -> ToolboxError {
    match e {
        ToolboxError::Git {
            status,
            code,
            message,
        } => ToolboxError::Git {
            status,
            code,
            message: message.replace(with_creds, plain),
        },
        other => other,
    }
}

/// `POST /git/init` → 201
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/init",
    tag = "git",
    operation_id = "InitRepository",
    summary = "Create a repository",
    request_body = GitInitRequest,
    responses((status = 201, description = "Created"), DaemonErrors)
))]
pub async fn init(State(st): St, JsonBody(req): JsonBody<GitInitRequest>) -> Result<StatusCode> {
    let dir = st.paths.resolve(&req.path)?;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ToolboxError::io(&req.path, e))?;
    let mut args = vec!["init"];
    if req.bare.unwrap_or(false) {
        args.push("--bare");
    }
    if let Some(b) = req.initial_branch.as_deref().filter(|b| !b.is_empty()) {
        args.extend(["--initial-branch", b]);
    }
    git(&st.env, Some(&dir), &args, Creds::default()).await?;
    Ok(StatusCode::CREATED)
}

/// `POST /git/add`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/add",
    tag = "git",
    operation_id = "AddFiles",
    summary = "Stage files",
    request_body = GitAddRequest,
    responses((status = 200, description = "Staged"), DaemonErrors)
))]
pub async fn add(State(st): St, JsonBody(req): JsonBody<GitAddRequest>) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    let mut args = vec!["add", "--"];
    if req.files.is_empty() {
        args.push(".");
    }
    args.extend(req.files.iter().map(String::as_str));
    git(&st.env, Some(&dir), &args, Creds::default()).await?;
    Ok(StatusCode::OK)
}

/// `POST /git/commit` → `{hash}`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/commit",
    tag = "git",
    operation_id = "CommitChanges",
    summary = "Commit the staged changes",
    request_body = GitCommitRequest,
    responses((status = 200, description = "The new commit", body = GitCommitResponse), DaemonErrors)
))]
pub async fn commit(
    State(st): St,
    JsonBody(req): JsonBody<GitCommitRequest>,
) -> Result<Json<GitCommitResponse>> {
    let dir = repo(&st, &req.path)?;
    let name = format!("user.name={}", req.author);
    let email = format!("user.email={}", req.email);
    let mut args = vec!["-c", &name, "-c", &email, "commit", "-m", &req.message];
    if req.allow_empty.unwrap_or(false) {
        args.push("--allow-empty");
    }
    git(&st.env, Some(&dir), &args, Creds::default()).await?;
    let hash = git(
        &st.env,
        Some(&dir),
        &["rev-parse", "HEAD"],
        Creds::default(),
    )
    .await?;
    Ok(Json(GitCommitResponse {
        hash: hash.trim().to_owned(),
    }))
}

fn status_name(c: char) -> &'static str {
    match c {
        'M' | 'T' => "Modified",
        'A' => "Added",
        'D' => "Deleted",
        'R' => "Renamed",
        'C' => "Copied",
        'U' => "Updated but unmerged",
        '?' => "Untracked",
        _ => "Unmodified",
    }
}

/// Parses `git status --porcelain=v2 --branch -z`.
pub fn parse_status(out: &str) -> GitStatus {
    let mut st = GitStatus {
        current_branch: String::new(),
        file_status: Vec::new(),
        ahead: 0,
        behind: 0,
        branch_published: false,
        detached: false,
        upstream: None,
    };
    let mut records = out.split('\0').filter(|r| !r.is_empty());
    while let Some(rec) = records.next() {
        if let Some(h) = rec.strip_prefix("# branch.head ") {
            if h == "(detached)" {
                st.detached = true;
            } else {
                st.current_branch = h.to_owned();
            }
        } else if let Some(u) = rec.strip_prefix("# branch.upstream ") {
            st.upstream = Some(u.to_owned());
            st.branch_published = true;
        } else if let Some(ab) = rec.strip_prefix("# branch.ab ") {
            for part in ab.split_whitespace() {
                if let Some(a) = part.strip_prefix('+') {
                    st.ahead = a.parse().unwrap_or(0);
                } else if let Some(b) = part.strip_prefix('-') {
                    st.behind = b.parse().unwrap_or(0);
                }
            }
        } else if let Some(path) = rec.strip_prefix("? ") {
            st.file_status.push(GitFileStatus {
                name: path.to_owned(),
                staging: "Untracked".into(),
                worktree: "Untracked".into(),
                extra: String::new(),
            });
        } else if rec.starts_with("1 ") || rec.starts_with("2 ") || rec.starts_with("u ") {
            let fields: usize = match rec.as_bytes()[0] {
                b'1' => 8,
                b'2' => 9,
                _ => 10,
            };
            let mut parts = rec.splitn(fields + 1, ' ');
            let _kind = parts.next();
            let xy: Vec<char> = parts.next().unwrap_or("..").chars().collect();
            let path = parts.nth(fields - 2).unwrap_or_default().to_owned();
            let extra = if rec.starts_with("2 ") {
                records.next().unwrap_or_default().to_owned()
            } else {
                String::new()
            };
            st.file_status.push(GitFileStatus {
                name: path,
                staging: status_name(xy.first().copied().unwrap_or('.')).into(),
                worktree: status_name(xy.get(1).copied().unwrap_or('.')).into(),
                extra,
            });
        }
    }
    st
}

/// `GET /git/status?path=`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/git/status",
    tag = "git",
    operation_id = "GetStatus",
    summary = "Branch and file status",
    params(PathQuery),
    responses((status = 200, description = "The status", body = GitStatus), DaemonErrors)
))]
pub async fn status(
    State(st): St,
    QueryParams(q): QueryParams<PathQuery>,
) -> Result<Json<GitStatus>> {
    let dir = repo(&st, &q.path)?;
    let out = git(
        &st.env,
        Some(&dir),
        &[
            "status",
            "--porcelain=v2",
            "--branch",
            "-z",
            "--untracked-files=all",
        ],
        Creds::default(),
    )
    .await?;
    Ok(Json(parse_status(&out)))
}

/// `GET /git/branches?path=`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/git/branches",
    tag = "git",
    operation_id = "ListBranches",
    summary = "List branches",
    params(PathQuery),
    responses((status = 200, description = "Local branches", body = ListBranchResponse), DaemonErrors)
))]
pub async fn branches(
    State(st): St,
    QueryParams(q): QueryParams<PathQuery>,
) -> Result<Json<ListBranchResponse>> {
    let dir = repo(&st, &q.path)?;
    let out = git(
        &st.env,
        Some(&dir),
        &["branch", "--list", "--format=%(refname:short)"],
        Creds::default(),
    )
    .await?;
    let current = git(
        &st.env,
        Some(&dir),
        &["branch", "--show-current"],
        Creds::default(),
    )
    .await?;
    let current = current.trim();
    Ok(Json(ListBranchResponse {
        branches: out
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect(),
        current: (!current.is_empty()).then(|| current.to_owned()),
    }))
}

/// `POST /git/branches` → 201 (creates the branch and switches to it, like Daytona).
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/branches",
    tag = "git",
    operation_id = "CreateBranch",
    summary = "Create a branch and switch to it",
    request_body = GitBranchRequest,
    responses((status = 201, description = "Created"), DaemonErrors)
))]
pub async fn create_branch(
    State(st): St,
    JsonBody(req): JsonBody<GitBranchRequest>,
) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    git(
        &st.env,
        Some(&dir),
        &["checkout", "-b", &req.name],
        Creds::default(),
    )
    .await?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /git/branches` (JSON body) → 204
#[cfg_attr(feature = "openapi", utoipa::path(
    delete,
    path = "/git/branches",
    tag = "git",
    operation_id = "DeleteBranch",
    summary = "Delete a branch",
    request_body = GitBranchRequest,
    responses((status = 204, description = "Deleted"), DaemonErrors)
))]
pub async fn delete_branch(
    State(st): St,
    JsonBody(req): JsonBody<GitBranchRequest>,
) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    let exists = git(
        &st.env,
        Some(&dir),
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{}", req.name),
        ],
        Creds::default(),
    )
    .await
    .is_ok();
    if !exists {
        return Err(ToolboxError::Git {
            status: StatusCode::NOT_FOUND,
            code: DaemonErrorCode::GitBranchNotFound,
            message: format!("branch '{}' not found", req.name),
        });
    }
    git(
        &st.env,
        Some(&dir),
        &["branch", "-D", &req.name],
        Creds::default(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /git/checkout`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/checkout",
    tag = "git",
    operation_id = "CheckoutBranch",
    summary = "Switch to a branch or commit",
    request_body = GitCheckoutRequest,
    responses((status = 200, description = "Switched"), DaemonErrors)
))]
pub async fn checkout(
    State(st): St,
    JsonBody(req): JsonBody<GitCheckoutRequest>,
) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    git(
        &st.env,
        Some(&dir),
        &["checkout", &req.branch, "--"],
        Creds::default(),
    )
    .await
    .map_err(|e| match e {
        ToolboxError::Git { message, .. }
            if message.contains("did not match") || message.contains("invalid reference") =>
        {
            ToolboxError::Git {
                status: StatusCode::NOT_FOUND,
                code: DaemonErrorCode::GitBranchNotFound,
                message,
            }
        }
        other => other,
    })?;
    Ok(StatusCode::OK)
}

/// `GET /git/history?path=`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/git/history",
    tag = "git",
    operation_id = "GetCommitHistory",
    summary = "Commit history",
    params(PathQuery),
    responses((status = 200, description = "Newest first", body = Vec<GitCommitInfo>), DaemonErrors)
))]
pub async fn history(
    State(st): St,
    QueryParams(q): QueryParams<PathQuery>,
) -> Result<Json<Vec<GitCommitInfo>>> {
    let dir = repo(&st, &q.path)?;
    let out = match git(
        &st.env,
        Some(&dir),
        &["log", "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%B%x1e"],
        Creds::default(),
    )
    .await
    {
        Ok(o) => o,
        // A repository without commits has an empty history.
        Err(ToolboxError::Git { message, .. }) if message.contains("does not have any commits") => {
            String::new()
        }
        Err(e) => return Err(e),
    };
    let commits = out
        .split('\x1e')
        .filter_map(|rec| {
            let rec = rec.trim_start_matches('\n');
            let mut f = rec.splitn(5, '\x1f');
            Some(GitCommitInfo {
                hash: f.next()?.to_owned(),
                author: f.next()?.to_owned(),
                email: f.next()?.to_owned(),
                timestamp: f.next()?.to_owned(),
                message: f.next()?.trim_end().to_owned(),
            })
        })
        .collect();
    Ok(Json(commits))
}

fn remote_args<'a>(req: &'a GitRemoteRequest, verb: &'a str) -> Vec<&'a str> {
    let mut args = vec![verb];
    if verb == "push" && req.set_upstream.unwrap_or(false) {
        args.push("--set-upstream");
    }
    if let Some(r) = req.remote.as_deref().filter(|r| !r.is_empty()) {
        args.push(r);
        if let Some(b) = req.branch.as_deref().filter(|b| !b.is_empty()) {
            args.push(b);
        }
    } else if let Some(b) = req.branch.as_deref().filter(|b| !b.is_empty()) {
        args.extend(["origin", b]);
    }
    args
}

/// `GET /git/log?path=`: another name of `/git/history`.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/git/log",
    tag = "git",
    operation_id = "GetCommitLog",
    summary = "Commit history (another name of `/git/history`)",
    params(PathQuery),
    responses((status = 200, description = "Newest first", body = Vec<GitCommitInfo>), DaemonErrors)
))]
#[deprecated = "route alias: another name of `/git/history`"]
pub async fn log(st: St, q: QueryParams<PathQuery>) -> Result<Json<Vec<GitCommitInfo>>> {
    history(st, q).await
}

/// `POST /git/pull`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/pull",
    tag = "git",
    operation_id = "PullChanges",
    summary = "Pull from a remote",
    request_body = GitRemoteRequest,
    responses((status = 200, description = "Pulled"), DaemonErrors)
))]
pub async fn pull(State(st): St, JsonBody(req): JsonBody<GitRemoteRequest>) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    let mut args = remote_args(&req, "pull");
    args.insert(1, "--no-rebase");
    let creds = Creds {
        username: req.username.as_deref(),
        password: req.password.as_deref(),
    };
    git(&st.env, Some(&dir), &args, creds).await?;
    Ok(StatusCode::OK)
}

/// `POST /git/push`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/git/push",
    tag = "git",
    operation_id = "PushChanges",
    summary = "Push to a remote",
    request_body = GitRemoteRequest,
    responses((status = 200, description = "Pushed"), DaemonErrors)
))]
pub async fn push(State(st): St, JsonBody(req): JsonBody<GitRemoteRequest>) -> Result<StatusCode> {
    let dir = repo(&st, &req.path)?;
    let mut args = remote_args(&req, "push");
    if req.remote.is_none() && req.branch.is_none() {
        // Publish the current branch even without a configured upstream.
        args = vec!["push", "--set-upstream", "origin", "HEAD"];
    }
    let creds = Creds {
        username: req.username.as_deref(),
        password: req.password.as_deref(),
    };
    git(&st.env, Some(&dir), &args, creds).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing() {
        let out = "# branch.oid abc\0# branch.head main\0# branch.upstream origin/main\0# branch.ab +2 -1\0\
1 .M N... 100644 100644 100644 aaa bbb a.txt\0\
1 A. N... 000000 100644 100644 000 ccc new file.txt\0\
2 R. N... 100644 100644 100644 ddd ddd R100 b2.txt\0b.txt\0? u.txt\0";
        let s = parse_status(out);
        assert_eq!(s.current_branch, "main");
        assert_eq!((s.ahead, s.behind), (2, 1));
        assert_eq!(s.upstream.as_deref(), Some("origin/main"));
        let names: Vec<_> = s.file_status.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.txt", "new file.txt", "b2.txt", "u.txt"]);
        assert_eq!(s.file_status[0].worktree, "Modified");
        assert_eq!(s.file_status[1].staging, "Added");
        assert_eq!(s.file_status[2].staging, "Renamed");
        assert_eq!(s.file_status[2].extra, "b.txt");
        assert_eq!(s.file_status[3].staging, "Untracked");
    }

    #[test]
    fn error_mapping() {
        let code = |s: &str| map_git_error(s).code();
        assert_eq!(
            code("fatal: Authentication failed for 'https://x/'"),
            DaemonErrorCode::GitAuthFailed
        );
        assert_eq!(
            code("fatal: repository '/nope' does not exist"),
            DaemonErrorCode::GitRepoNotFound
        );
        assert_eq!(
            code("fatal: a branch named 'x' already exists"),
            DaemonErrorCode::GitBranchExists
        );
        assert_eq!(
            code("error: pathspec 'nope' did not match any file(s) known to git"),
            DaemonErrorCode::GitBranchNotFound
        );
        assert_eq!(
            code(
                " ! [rejected]        main -> main (fetch first)\nerror: failed to push some refs"
            ),
            DaemonErrorCode::GitPushRejected
        );
    }
}
