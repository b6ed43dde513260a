//! The agent's error type and its single HTTP mapping (the envelope of `cove_runner_api::ErrorEnvelope`).

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cove_runner_api::{ErrorEnvelope, RUNNER_SOURCE};

use crate::runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("missing or invalid runner token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("snapshot {0} is not present on this runner")]
    SnapshotNotFound(String),
    /// A sandbox image could not be pulled (Docker's message; never credentials).
    #[error("{0}")]
    PullFailed(String),
    /// A backup could not be pushed to its registry (Docker's message; never credentials).
    #[error("{0}")]
    PushFailed(String),
    #[error("the toolbox of sandbox {id} is not reachable")]
    ToolboxUnavailable {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container engine error")]
    Runtime(#[source] RuntimeError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the request did not finish within {0:?}")]
    RequestTimeout(std::time::Duration),
    /// The outcome of an operation several requests waited for.
    #[error(transparent)]
    Shared(std::sync::Arc<AgentError>),
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;

impl From<RuntimeError> for AgentError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Conflict(m) => AgentError::Conflict {
                code: "CONFLICT",
                message: m,
            },
            other => AgentError::Runtime(other),
        }
    }
}

impl AgentError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::SandboxNotFound(_) | Self::SnapshotNotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::ToolboxUnavailable { .. } | Self::PullFailed(_) | Self::PushFailed(_) => {
                StatusCode::BAD_GATEWAY
            }
            Self::Runtime(RuntimeError::Timeout { .. }) | Self::RequestTimeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Self::Runtime(_) | Self::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Shared(e) => e.status(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "UNAUTHORIZED",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::SandboxNotFound(_) => "SANDBOX_NOT_FOUND",
            Self::SnapshotNotFound(_) => "SNAPSHOT_NOT_FOUND",
            Self::Conflict { code, .. } => code,
            Self::ToolboxUnavailable { .. } => "TOOLBOX_UNAVAILABLE",
            Self::PullFailed(_) => "IMAGE_PULL_FAILED",
            Self::PushFailed(_) => "BACKUP_PUSH_FAILED",
            Self::Runtime(RuntimeError::Timeout { .. }) => "ENGINE_TIMEOUT",
            Self::RequestTimeout(_) => "REQUEST_TIMEOUT",
            Self::Runtime(_) | Self::Io { .. } => "INTERNAL_ERROR",
            Self::Shared(e) => e.code(),
        }
    }

    /// What the caller sees (internal detail stays in the log).
    pub fn external_message(&self) -> String {
        match self {
            Self::Runtime(RuntimeError::Timeout { op, after }) => {
                format!("the container engine did not {op} within {after:?}")
            }
            Self::Runtime(_) | Self::Io { .. } => "internal error".into(),
            Self::Shared(e) => e.external_message(),
            other => other.to_string(),
        }
    }

    /// Whether a sandbox (or its user) can cause this error at will: such errors are never
    /// logged at ERROR level.
    fn sandbox_triggered(&self) -> bool {
        match self {
            Self::ToolboxUnavailable { .. } => true,
            Self::Shared(e) => e.sandbox_triggered(),
            _ => false,
        }
    }
}

/// Marker left in the response for [`error_envelope`].
#[derive(Debug, Clone)]
pub struct ErrorMarker {
    pub message: String,
    pub code: &'static str,
}

/// Writes `err` and its whole source chain on one line, unprintable characters escaped (the
/// chain may quote what a client or a sandbox sent).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    printable(&s)
}

/// `s` with control characters (newlines, escape sequences, ...) escaped, for log lines.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !self.sandbox_triggered() {
            tracing::error!(error = %chain(&self), code = self.code(), "request failed");
        } else if status.is_server_error() {
            tracing::warn!(error = %chain(&self), code = self.code(), "request failed");
        } else {
            tracing::debug!(error = %chain(&self), code = self.code(), "request refused");
        }
        let mut resp = status.into_response();
        resp.extensions_mut().insert(ErrorMarker {
            message: self.external_message(),
            code: self.code(),
        });
        resp
    }
}

pub fn envelope(status: StatusCode, path: &str, message: String, code: &str) -> ErrorEnvelope {
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    ErrorEnvelope {
        path: path.to_owned(),
        timestamp,
        status_code: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error").to_owned(),
        message,
        code: Some(code.to_owned()),
        source: RUNNER_SOURCE.to_owned(),
    }
}

/// Middleware: turns an [`ErrorMarker`] into the JSON envelope (it knows the request path).
pub async fn error_envelope(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut resp = next.run(request).await;
    let Some(marker) = resp.extensions_mut().remove::<ErrorMarker>() else {
        return resp;
    };
    let status = resp.status();
    let body = envelope(status, &path, marker.message, marker.code);
    let mut resp = (status, axum::Json(body)).into_response();
    // The agent's own error, not an answer passed on from a sandbox (the preview proxy re-answers
    // these in its envelope).
    resp.headers_mut().insert(
        cove_toolbox::ports::HOP_ERROR_HEADER,
        axum::http::HeaderValue::from_static("runner"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_escape_unprintable_input() {
        let e = AgentError::BadRequest("bad\n\u{1b}[31mname".into());
        assert_eq!(chain(&e), "bad\\n\\u{1b}[31mname");
        assert_eq!(printable("plain é"), "plain é");
        let shared = AgentError::Shared(std::sync::Arc::new(AgentError::Forbidden("x".into())));
        assert_eq!(shared.status(), StatusCode::FORBIDDEN);
        assert_eq!(shared.code(), "FORBIDDEN");
    }
}
