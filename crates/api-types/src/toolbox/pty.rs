//! `/process/pty*`: interactive terminal sessions (upstream `PtyCreateRequest`,
//! `PtyCreateResponse`, `PtySessionInfo`, `PtyListResponse`, `PtyResizeRequest`) and the JSON
//! control messages of the terminal websocket (`…/connect`, `…/create-connect`).
//!
//! On the websocket the terminal's bytes travel as binary frames both ways (text frames from the
//! client are input too); the daemon's text frames are [`PtyControl`] messages, and the close
//! frame's reason is a [`PtyCloseReason`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /process/pty`. Every field is optional on the wire except `id`, which the daemon
/// requires (400 without it), as Daytona's does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PtyCreateRequest {
    #[serde(default)]
    pub id: Option<String>,
    /// Working directory (default: the daemon's work dir).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Added to the daemon's environment; `TERM` defaults to `xterm-256color`.
    #[serde(default)]
    pub envs: Option<BTreeMap<String, String>>,
    /// Columns, 1 to 1000 (default 80).
    #[serde(default)]
    pub cols: Option<u32>,
    /// Rows, 1 to 1000 (default 24).
    #[serde(default)]
    pub rows: Option<u32>,
    /// Don't start the shell until the first client connects.
    #[serde(default)]
    pub lazy_start: Option<bool>,
}

/// `POST /process/pty` → 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PtyCreateResponse {
    pub session_id: String,
}

/// One terminal session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PtySessionInfo {
    pub id: String,
    pub cwd: String,
    pub envs: BTreeMap<String, String>,
    pub cols: u16,
    pub rows: u16,
    /// RFC 3339.
    pub created_at: String,
    /// The shell is running (false before a lazy start and after the exit).
    pub active: bool,
    pub lazy_start: bool,
    /// The shell's exit status once it ended (128 + N for signal N). Cove's addition: Daytona's
    /// daemon drops a session when its shell ends, Cove keeps it (bounded) so a late client still
    /// learns how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// `GET /process/pty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PtyListResponse {
    pub sessions: Vec<PtySessionInfo>,
}

/// `POST /process/pty/{sessionId}/resize`: both 1 to 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PtyResizeRequest {
    pub cols: u32,
    pub rows: u32,
}

/// `DELETE /process/pty/{sessionId}` → 200 `{"message": …}` (Daytona's `gin.H`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PtyDeleteResponse {
    pub message: String,
}

/// What a control message reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PtyControlStatus {
    /// The client is attached: output follows (the kept scrollback first).
    Connected,
    /// The shell ended (only to clients that offered the `X-Daytona-Pty-Exit-Control`
    /// subprotocol); the close frame follows.
    Exited,
    /// The session could not be attached or started; the close frame follows.
    Error,
}

/// A text frame from the daemon: `{"type":"control","status":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PtyControl {
    /// Always `"control"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub status: PtyControlStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// For a non-zero exit: `"non-zero exit"`, `"Ctrl+C"` (130), `"SIGKILL"` (137), `"SIGTERM"`
    /// (143) or `"signal N"` (128 + N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The close frame's reason (JSON): `{"exitCode":N,"exitReason"?:…}` after an exit (code 1000
/// for exit 0, 1011 otherwise), `{"error":…}` when attaching failed (1011).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PtyCloseReason {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
