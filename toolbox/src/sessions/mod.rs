//! `/process/session/*`: long-lived shells whose state (cwd, variables) carries across commands,
//! and the image entrypoint's log.
//!
//! Each command keeps the last [`crate::output::TAIL_BYTES`] of its output; `…/logs` and a sync
//! `exec` answer that tail, starting with [`crate::output::dropped_marker`] when the head was
//! dropped.

mod follow;
mod log;
mod shell;

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
#[cfg(feature = "openapi")]
use cove_api_types::toolbox::SessionCommandLogsResponse;
use cove_api_types::toolbox::{
    Command, CreateSessionRequest, Session as SessionDto, SessionExecuteRequest,
    SessionExecuteResponse, SessionSendInputRequest,
};
use serde::Deserialize;
use tokio::net::unix::pipe;

pub use self::follow::{STDERR_PREFIX, STDOUT_PREFIX};
pub use self::log::CommandLog;
pub use self::shell::Sessions;
#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
pub use crate::output::Stream;
use crate::server::{AppState, JsonBody, QueryParams};

type St = State<Arc<AppState>>;
type Ws = std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

/// `POST /process/session` → 201
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/process/session",
    tag = "process",
    operation_id = "CreateSession",
    summary = "Start a session shell",
    request_body = CreateSessionRequest,
    responses((status = 201, description = "Created"), DaemonErrors)
))]
pub async fn create(
    State(st): St,
    JsonBody(req): JsonBody<CreateSessionRequest>,
) -> Result<StatusCode> {
    st.sessions.create(&req.session_id).await?;
    Ok(StatusCode::CREATED)
}

/// `GET /process/session`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/session",
    tag = "process",
    operation_id = "ListSessions",
    summary = "List the sessions",
    responses((status = 200, description = "Every session", body = Vec<SessionDto>), DaemonErrors)
))]
pub async fn list(State(st): St) -> Json<Vec<SessionDto>> {
    Json(st.sessions.list())
}

/// `GET /process/session/{sessionId}`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/session/{sessionId}",
    tag = "process",
    operation_id = "GetSession",
    summary = "Describe a session",
    params(("sessionId" = String, Path, description = "The session id")),
    responses((status = 200, description = "The session and its commands", body = SessionDto), DaemonErrors)
))]
pub async fn get(State(st): St, UrlPath(sid): UrlPath<String>) -> Result<Json<SessionDto>> {
    Ok(Json(st.sessions.get(&sid)?.dto()))
}

/// `DELETE /process/session/{sessionId}` → 204
#[cfg_attr(feature = "openapi", utoipa::path(
    delete,
    path = "/process/session/{sessionId}",
    tag = "process",
    operation_id = "DeleteSession",
    summary = "End a session",
    params(("sessionId" = String, Path, description = "The session id")),
    responses((status = 204, description = "Ended"), DaemonErrors)
))]
pub async fn remove(State(st): St, UrlPath(sid): UrlPath<String>) -> Result<StatusCode> {
    st.sessions.remove(&sid)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /process/session/{sessionId}/exec`: 200 with output, or 202 `{cmdId}` when async.
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/process/session/{sessionId}/exec",
    tag = "process",
    operation_id = "SessionExecuteCommand",
    summary = "Run a command in a session",
    params(("sessionId" = String, Path, description = "The session id")),
    request_body = SessionExecuteRequest,
    responses((status = 200, description = "Finished: exit code and output", body = SessionExecuteResponse), (status = 202, description = "Started (`runAsync`): its `cmdId`", body = SessionExecuteResponse), DaemonErrors)
))]
pub async fn exec(
    State(st): St,
    UrlPath(sid): UrlPath<String>,
    JsonBody(req): JsonBody<SessionExecuteRequest>,
) -> Result<Response> {
    if req.command.trim().is_empty() {
        return Err(ToolboxError::BadRequest(
            crate::process::EMPTY_COMMAND.into(),
        ));
    }
    let log = st.sessions.exec(&sid, &req.command).await?;
    if req.run_async.or(req.legacy_async).unwrap_or(false) {
        let body = SessionExecuteResponse {
            cmd_id: log.id.clone(),
            output: None,
            stdout: None,
            stderr: None,
            exit_code: None,
        };
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let code = log.wait().await;
    let text = log.outputs();
    Ok(Json(SessionExecuteResponse {
        cmd_id: log.id.clone(),
        output: Some(text.combined),
        stdout: Some(text.stdout),
        stderr: Some(text.stderr),
        exit_code: Some(code),
    })
    .into_response())
}

fn command_log(st: &AppState, sid: &str, cid: &str) -> Result<Arc<CommandLog>> {
    st.sessions
        .get(sid)?
        .find(cid)
        .ok_or_else(|| ToolboxError::CommandNotFound(cid.to_owned()))
}

/// `GET /process/session/{sessionId}/command/{commandId}`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/session/{sessionId}/command/{commandId}",
    tag = "process",
    operation_id = "GetSessionCommand",
    summary = "Describe a session command",
    params(("sessionId" = String, Path, description = "The session id"), ("commandId" = String, Path, description = "The command id")),
    responses((status = 200, description = "The command (`exitCode` once it ended)", body = Command), DaemonErrors)
))]
pub async fn command(
    State(st): St,
    UrlPath((sid, cid)): UrlPath<(String, String)>,
) -> Result<Json<Command>> {
    Ok(Json(command_log(&st, &sid, &cid)?.dto()))
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct LogsQuery {
    follow: Option<bool>,
}

/// `GET /process/session/{sessionId}/command/{commandId}/logs[?follow=true]`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/session/{sessionId}/command/{commandId}/logs",
    tag = "process",
    operation_id = "GetSessionCommandLogs",
    summary = "A session command's output",
    params(("sessionId" = String, Path, description = "The session id"), ("commandId" = String, Path, description = "The command id"), LogsQuery),
    responses((status = 200, description = "The last 4 MiB of output (JSON for SDKs from 0.167.0, else text); with `follow`, a stream", body = SessionCommandLogsResponse), DaemonErrors)
))]
pub async fn logs(
    State(st): St,
    UrlPath((sid, cid)): UrlPath<(String, String)>,
    QueryParams(q): QueryParams<LogsQuery>,
    headers: HeaderMap,
    ws: Ws,
) -> Result<Response> {
    let log = command_log(&st, &sid, &cid)?;
    Ok(follow::logs_response(
        &st,
        log,
        q.follow.unwrap_or(false),
        &headers,
        ws,
    ))
}

/// `GET /process/session/entrypoint`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/session/entrypoint",
    tag = "process",
    operation_id = "GetEntrypointSession",
    summary = "Describe the image's entrypoint",
    responses((status = 200, description = "The entrypoint as a session of one command", body = SessionDto), DaemonErrors)
))]
pub async fn entrypoint(State(st): St) -> Result<Json<SessionDto>> {
    let log = st.sessions.entrypoint()?;
    Ok(Json(SessionDto {
        session_id: "entrypoint".into(),
        commands: vec![log.dto()],
    }))
}

/// `GET /process/session/entrypoint/logs[?follow=true]`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/session/entrypoint/logs",
    tag = "process",
    operation_id = "GetEntrypointLogs",
    summary = "The entrypoint's output",
    params(LogsQuery),
    responses((status = 200, description = "The last 4 MiB of output; with `follow`, a stream", body = SessionCommandLogsResponse), DaemonErrors)
))]
pub async fn entrypoint_logs(
    State(st): St,
    QueryParams(q): QueryParams<LogsQuery>,
    headers: HeaderMap,
    ws: Ws,
) -> Result<Response> {
    let log = st.sessions.entrypoint()?;
    Ok(follow::logs_response(
        &st,
        log,
        q.follow.unwrap_or(false),
        &headers,
        ws,
    ))
}

/// How long input waits for a command that the session's shell has not reached yet.
const STDIN_OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the command's stdin FIFO for writing. Until the shell starts the command nothing reads
/// the FIFO and the open fails with `ENXIO`: input sent right after an async exec (as the SDK
/// does) waits for the command, for [`STDIN_OPEN_WAIT`] at most, and not past its exit.
async fn open_stdin(log: &CommandLog, fifo: &std::path::Path) -> Option<pipe::Sender> {
    let deadline = tokio::time::Instant::now() + STDIN_OPEN_WAIT;
    loop {
        match pipe::OpenOptions::new().open_sender(fifo) {
            Ok(tx) => return Some(tx),
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error())
                    && log.exit_code().is_none()
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(_) => return None,
        }
    }
}

/// `POST /process/session/{sessionId}/command/{commandId}/input` → 204
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/process/session/{sessionId}/command/{commandId}/input",
    tag = "process",
    operation_id = "SendInput",
    summary = "Write to a running command's stdin",
    params(("sessionId" = String, Path, description = "The session id"), ("commandId" = String, Path, description = "The command id")),
    request_body = SessionSendInputRequest,
    responses((status = 204, description = "Written"), DaemonErrors)
))]
pub async fn input(
    State(st): St,
    UrlPath((sid, cid)): UrlPath<(String, String)>,
    JsonBody(req): JsonBody<SessionSendInputRequest>,
) -> Result<StatusCode> {
    let log = command_log(&st, &sid, &cid)?;
    let completed = || ToolboxError::CommandCompleted(cid.clone());
    if log.exit_code().is_some() {
        return Err(completed());
    }
    let Some(fifo) = &log.stdin_fifo else {
        return Err(completed());
    };
    let tx = open_stdin(&log, fifo).await.ok_or_else(completed)?;
    let data = req.data.into_bytes();
    let mut written = 0;
    while written < data.len() {
        tx.writable().await.map_err(|_| completed())?;
        match tx.try_write(&data[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(completed()),
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
