//! `/process/pty*`: interactive terminals. Each session is a login shell (`bash`, else `sh`) on a
//! real pseudo-terminal ([`session`]); clients attach over a websocket ([`ws`]), several at once,
//! and a client that attaches later gets the last 64 KiB of output first.
//!
//! Beyond Daytona: a session whose shell ended stays listed (`active: false`, `exitCode`) for
//! [`session::EXITED_RETENTION`], and a client connecting then gets its scrollback and exit
//! status; creating a session with the id of an ended one replaces it. Sessions are capped
//! ([`session::MAX_SESSIONS`], 409 past it).

mod session;
mod ws;

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use cove_api_types::toolbox::pty::{
    PtyCreateRequest, PtyCreateResponse, PtyDeleteResponse, PtyListResponse, PtyResizeRequest,
    PtySessionInfo,
};
use serde::Deserialize;

pub use self::session::{
    CLIENT_QUEUE, CLIENT_STALL, EXITED_RETENTION, LAZY_RETENTION, MAX_CLIENTS, MAX_DIMENSION,
    MAX_SESSIONS, PtyManager, SCROLLBACK_BYTES,
};
use self::session::{Size, Spec};
use self::ws::Offer;
pub use self::ws::{ENVS_PROTOCOL_PREFIX, EXIT_CONTROL_PROTOCOL};
#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
use crate::server::{AppState, JsonBody, QueryParams};

type St = State<Arc<AppState>>;
type Ws = std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

const DEFAULT_COLS: u32 = 80;
const DEFAULT_ROWS: u32 = 24;

/// The session spec of a create request: the cwd resolved in the jail (400 if it is not a
/// directory), the size checked (400 outside 1..=1000).
fn spec(
    st: &AppState,
    id: Option<String>,
    cwd: Option<String>,
    envs: std::collections::BTreeMap<String, String>,
    size: Size,
    lazy_start: bool,
) -> Result<Spec> {
    let id = id.unwrap_or_default();
    let cwd = cwd.filter(|c| !c.is_empty());
    let real_cwd = st.paths.resolve_or_work_dir(cwd.as_deref())?;
    if !real_cwd.is_dir() {
        return Err(ToolboxError::BadRequest(format!(
            "working directory does not exist: {}",
            cwd.as_deref().unwrap_or_default()
        )));
    }
    Ok(Spec {
        id,
        cwd: cwd.unwrap_or_else(|| st.paths.work_dir_virtual()),
        real_cwd,
        envs,
        size,
        lazy_start,
    })
}

fn websocket(ws: Ws) -> Result<WebSocketUpgrade> {
    ws.map_err(|e| ToolboxError::BadRequest(format!("a websocket upgrade is required: {e}")))
}

/// `POST /process/pty` → 201
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/process/pty",
    tag = "process",
    operation_id = "CreatePtySession",
    summary = "Start a terminal session",
    request_body = PtyCreateRequest,
    responses((status = 201, description = "Created (409 if a running session has the id or 64 live sessions exist)", body = PtyCreateResponse), DaemonErrors)
))]
pub async fn create(
    State(st): St,
    JsonBody(req): JsonBody<PtyCreateRequest>,
) -> Result<(StatusCode, Json<PtyCreateResponse>)> {
    let size = Size::new(
        req.cols.unwrap_or(DEFAULT_COLS),
        req.rows.unwrap_or(DEFAULT_ROWS),
    )?;
    let spec = spec(
        &st,
        req.id,
        req.cwd,
        req.envs.unwrap_or_default(),
        size,
        req.lazy_start.unwrap_or(false),
    )?;
    let session = st.pty.create(spec)?;
    Ok((
        StatusCode::CREATED,
        Json(PtyCreateResponse {
            session_id: session.id.clone(),
        }),
    ))
}

/// `GET /process/pty`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/pty",
    tag = "process",
    operation_id = "ListPtySessions",
    summary = "List the terminal sessions",
    responses((status = 200, description = "Every session, in creation order (ended ones for 5 minutes)", body = PtyListResponse), DaemonErrors)
))]
pub async fn list(State(st): St) -> Json<PtyListResponse> {
    Json(PtyListResponse {
        sessions: st.pty.list(),
    })
}

/// `GET /process/pty/{sessionId}`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/pty/{sessionId}",
    tag = "process",
    operation_id = "GetPtySession",
    summary = "Describe a terminal session",
    params(("sessionId" = String, Path, description = "The session id")),
    responses((status = 200, description = "The session", body = PtySessionInfo), DaemonErrors)
))]
pub async fn get(State(st): St, UrlPath(id): UrlPath<String>) -> Result<Json<PtySessionInfo>> {
    Ok(Json(st.pty.get(&id)?.info()))
}

/// `DELETE /process/pty/{sessionId}`: kills every process of the terminal.
#[cfg_attr(feature = "openapi", utoipa::path(
    delete,
    path = "/process/pty/{sessionId}",
    tag = "process",
    operation_id = "DeletePtySession",
    summary = "Kill a terminal session",
    params(("sessionId" = String, Path, description = "The session id")),
    responses((status = 200, description = "Killed and removed; attached clients get exit 137", body = PtyDeleteResponse), DaemonErrors)
))]
pub async fn remove(
    State(st): St,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<PtyDeleteResponse>> {
    st.pty.kill(&id)?;
    Ok(Json(PtyDeleteResponse {
        message: "PTY session deleted".into(),
    }))
}

/// `POST /process/pty/{sessionId}/resize`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/process/pty/{sessionId}/resize",
    tag = "process",
    operation_id = "ResizePtySession",
    summary = "Resize a terminal",
    params(("sessionId" = String, Path, description = "The session id")),
    request_body = PtyResizeRequest,
    responses((status = 200, description = "Resized (410 once the shell ended)", body = PtySessionInfo), DaemonErrors)
))]
pub async fn resize(
    State(st): St,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<PtyResizeRequest>,
) -> Result<Json<PtySessionInfo>> {
    let size = Size::new(req.cols, req.rows)?;
    let session = st.pty.get(&id)?;
    session.resize(size)?;
    tracing::debug!(session = ?id, cols = size.cols, rows = size.rows, "pty resized");
    Ok(Json(session.info()))
}

/// `GET /process/pty/{sessionId}/connect` (websocket, see [`ws`]): starts a lazy session.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/pty/{sessionId}/connect",
    tag = "process",
    operation_id = "ConnectPtySession",
    summary = "Attach to a terminal (websocket)",
    params(("sessionId" = String, Path, description = "The session id")),
    responses((status = 101, description = "Switching protocols: `connected` control message, scrollback, then the terminal's bytes both ways; on exit the close reason is `{exitCode, exitReason?}`"), DaemonErrors)
))]
pub async fn connect(State(st): St, UrlPath(id): UrlPath<String>, ws: Ws) -> Result<Response> {
    let session = st.pty.get(&id)?;
    let ws = websocket(ws)?;
    session.ensure_started()?;
    let offer = Offer::of(&ws);
    Ok(ws::upgrade(ws, &offer, session, Arc::clone(&st)))
}

/// Query of `create-connect` (numbers as text: a bad one is a 400, not a silent default).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct CreateConnectQuery {
    /// The session id (required).
    id: Option<String>,
    /// Working directory (default: the work dir).
    cwd: Option<String>,
    /// Columns, 1 to 1000 (default 80).
    cols: Option<String>,
    /// Rows, 1 to 1000 (default 24).
    rows: Option<String>,
}

fn dimension(name: &str, value: Option<&str>, default: u32) -> Result<u32> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ToolboxError::BadRequest(format!(
                "invalid value for {name}: {v:?} (must be 1 to {MAX_DIMENSION})"
            ))
        }),
    }
}

/// `GET /process/pty/create-connect?id=&cwd=&cols=&rows=` (websocket): creates a session and
/// attaches to it in one round trip, as the SDKs' `create_pty_session` does. The environment comes
/// as the subprotocol token `X-Daytona-Pty-Envs~<base64url JSON object>`.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/pty/create-connect",
    tag = "process",
    operation_id = "CreateAndConnectPtySession",
    summary = "Start a terminal session and attach to it (websocket)",
    params(CreateConnectQuery),
    responses((status = 101, description = "Switching protocols, as `…/{sessionId}/connect`"), DaemonErrors)
))]
pub async fn create_connect(
    State(st): St,
    QueryParams(q): QueryParams<CreateConnectQuery>,
    ws: Ws,
) -> Result<Response> {
    let ws = websocket(ws)?;
    let size = Size::new(
        dimension("cols", q.cols.as_deref(), DEFAULT_COLS)?,
        dimension("rows", q.rows.as_deref(), DEFAULT_ROWS)?,
    )?;
    let offer = Offer::of(&ws);
    let envs = offer.decode_envs()?;
    let spec = spec(&st, q.id, q.cwd, envs, size, false)?;
    let session = st.pty.create(spec)?;
    Ok(ws::upgrade(ws, &offer, session, Arc::clone(&st)))
}
