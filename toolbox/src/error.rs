//! The one error type of the daemon and its single HTTP mapping (CONTRACT §2).
//!
//! Handlers return [`ToolboxError`]. Its `IntoResponse` stores an [`ErrorMarker`] in the response
//! extensions; [`error_envelope`] (a middleware that knows the request path and method) turns the
//! marker into the full `DAYTONA_DAEMON` envelope.

use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cove_api_types::toolbox::{DaemonErrorCode, DaemonErrorResponse};

use crate::logging::RateLimit;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ToolboxError {
    #[error("file not found: {0}")]
    FileNotFound(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("invalid file path: {0}")]
    InvalidPath(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("request body exceeds the limit of {0} bytes for JSON bodies")]
    PayloadTooLarge(usize),
    #[error("command timed out after {0} seconds")]
    Timeout(u64),
    #[error("session not found: {0}")]
    SessionNotFound(String),
    #[error("command not found: {0}")]
    CommandNotFound(String),
    #[error("command already completed: {0}")]
    CommandCompleted(String),
    #[error("LSP server not initialized for {0}; call /lsp/start first")]
    LspNotInitialized(String),
    #[error("{message}")]
    Git {
        status: StatusCode,
        code: DaemonErrorCode,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = ToolboxError> = std::result::Result<T, E>;

impl ToolboxError {
    /// Wraps an I/O error on `path`, mapping the well-known kinds to their domain codes.
    pub fn io(path: &str, source: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match source.kind() {
            ErrorKind::NotFound => Self::FileNotFound(path.to_owned()),
            ErrorKind::PermissionDenied => Self::AccessDenied(path.to_owned()),
            _ => Self::Io {
                context: path.to_owned(),
                source,
            },
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::FileNotFound(_)
            | Self::NotFound(_)
            | Self::SessionNotFound(_)
            | Self::CommandNotFound(_) => StatusCode::NOT_FOUND,
            Self::AccessDenied(_) => StatusCode::FORBIDDEN,
            Self::InvalidPath(_)
            | Self::BadRequest(_)
            | Self::InvalidBody(_)
            | Self::LspNotInitialized(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::AlreadyExists => StatusCode::CONFLICT,
                std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::DirectoryNotEmpty
                | std::io::ErrorKind::InvalidFilename => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) | Self::CommandCompleted(_) => StatusCode::GONE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Git { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> DaemonErrorCode {
        match self {
            Self::FileNotFound(_) => DaemonErrorCode::FileNotFound,
            Self::AccessDenied(_) => DaemonErrorCode::FileAccessDenied,
            Self::InvalidPath(_) => DaemonErrorCode::InvalidFilePath,
            Self::Io { .. } => match self.status() {
                StatusCode::CONFLICT => DaemonErrorCode::Conflict,
                StatusCode::BAD_REQUEST => DaemonErrorCode::BadRequest,
                _ => DaemonErrorCode::FileReadFailed,
            },
            Self::BadRequest(_) => DaemonErrorCode::BadRequest,
            Self::InvalidBody(_) | Self::PayloadTooLarge(_) => DaemonErrorCode::InvalidRequestBody,
            Self::NotFound(_) | Self::CommandNotFound(_) => DaemonErrorCode::NotFound,
            Self::SessionNotFound(_) => DaemonErrorCode::NotFound,
            Self::Conflict(_) => DaemonErrorCode::Conflict,
            Self::Gone(_) => DaemonErrorCode::SessionEnded,
            Self::CommandCompleted(_) => DaemonErrorCode::CommandAlreadyCompleted,
            Self::Timeout(_) => DaemonErrorCode::ProcessExecutionTimeout,
            Self::LspNotInitialized(_) => DaemonErrorCode::LspServerNotInitialized,
            Self::Git { code, .. } => *code,
            Self::Internal(_) => DaemonErrorCode::InternalServerError,
        }
    }
}

/// What a failed handler leaves for [`error_envelope`].
#[derive(Debug, Clone)]
pub struct ErrorMarker {
    pub code: DaemonErrorCode,
    pub message: String,
}

impl IntoResponse for ToolboxError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        response.extensions_mut().insert(ErrorMarker {
            code: self.code(),
            message: self.to_string(),
        });
        response
    }
}

/// RFC 3339 UTC timestamp with a `Z` suffix.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Builds the envelope for `status` at `path`/`method`.
pub fn envelope(
    status: StatusCode,
    code: DaemonErrorCode,
    message: String,
    path: &str,
    method: &str,
) -> DaemonErrorResponse {
    DaemonErrorResponse {
        status_code: status.as_u16(),
        message,
        code: Some(code),
        timestamp: now_rfc3339(),
        path: path.to_owned(),
        method: Some(method.to_owned()),
        source: Some("DAYTONA_DAEMON".to_owned()),
    }
}

/// At most this many failed requests are logged per minute (at `warn`; the rest are counted).
static FAILURE_LOG: RateLimit = RateLimit::new(Duration::from_secs(60), 20);

/// Logs a failed request. A sandbox user can cause any of these at will, so none is an ERROR:
/// 5xx answers are `warn` (rate-limited), 4xx ones `debug`. User input is escaped (`?`).
fn log_failure(status: StatusCode, marker: &ErrorMarker, path: &str, method: &str) {
    let status_code = status.as_u16();
    if !status.is_server_error() {
        tracing::debug!(method, path = ?path, status_code, code = ?marker.code, error = ?marker.message, "request rejected");
        return;
    }
    if let Some(suppressed) = FAILURE_LOG.admit(Instant::now()) {
        tracing::warn!(method, path = ?path, status_code, code = ?marker.code, error = ?marker.message, suppressed, "request failed");
    }
}

/// Middleware: fills the error envelope of failed responses with the request path and method.
pub async fn error_envelope(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().as_str().to_owned();
    let mut response = next.run(request).await;
    let Some(marker) = response.extensions_mut().remove::<ErrorMarker>() else {
        return response;
    };
    let status = response.status();
    log_failure(status, &marker, &path, &method);
    let mut body = serde_json::to_value(envelope(
        status,
        marker.code,
        marker.message,
        &path,
        &method,
    ))
    .unwrap_or_default();
    // bulk-upload's 400 is an `UploadFilesResponse`: add `errors`/`files` so the SDK can show them.
    if path.ends_with("/files/bulk-upload")
        && let Some(map) = body.as_object_mut()
    {
        let message = map.get("message").cloned().unwrap_or_default();
        map.insert("errors".into(), serde_json::Value::Array(vec![message]));
        map.insert("files".into(), serde_json::Value::Array(vec![]));
    }
    (status, axum::Json(body)).into_response()
}

/// The error responses of every operation in the OpenAPI document: any 4xx or 5xx status, with
/// the daemon's envelope ([`DaemonErrorResponse`]) as body (`#/components/responses/DaemonError`,
/// see [`daemon_error_response`]).
#[cfg(feature = "openapi")]
pub struct DaemonErrors;

/// Name of the shared error response in the document's components.
#[cfg(feature = "openapi")]
pub const DAEMON_ERROR: &str = "DaemonError";

#[cfg(feature = "openapi")]
impl utoipa::IntoResponses for DaemonErrors {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        let shared =
            || utoipa::openapi::Ref::new(format!("#/components/responses/{DAEMON_ERROR}")).into();
        [("4XX".to_owned(), shared()), ("5XX".to_owned(), shared())].into()
    }
}

/// The response [`DaemonErrors`] refers to.
#[cfg(feature = "openapi")]
pub fn daemon_error_response() -> utoipa::openapi::response::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("DaemonErrorResponse")))
        .build();
    ResponseBuilder::new()
        .description("The daemon's error envelope (`source: DAYTONA_DAEMON`)")
        .content("application/json", content)
        .build()
}
