//! The proxy's error type and its answers: a JSON envelope (Daytona's shape) or, for a browser
//! asking for a page, a small HTML page.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::Body;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    /// An answer of the control plane, passed on (status and message).
    #[error("{message}")]
    Upstream { status: StatusCode, message: String },
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Upstream { status, .. } => *status,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The answer: HTML when the caller is a browser asking for a page, else JSON.
    pub fn into_response(self, req: &HeaderMap, path: &str) -> http::Response<Body> {
        let status = self.status();
        let message = self.to_string();
        let (ctype, body) = if wants_html(req) {
            ("text/html; charset=utf-8", html(status, &message))
        } else {
            ("application/json", json(status, &message, path))
        };
        let mut r = http::Response::new(crate::full(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

fn wants_html(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn json(status: StatusCode, message: &str, path: &str) -> String {
    serde_json::json!({
        "statusCode": status.as_u16(),
        "message": message,
        "error": status.canonical_reason().unwrap_or("Error"),
        "path": path,
        "timestamp": now_rfc3339(),
        "source": "DAYTONA_PROXY",
    })
    .to_string()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(status: StatusCode, message: &str) -> String {
    let title = match status {
        StatusCode::UNAUTHORIZED => "This preview is private",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    let hint = if status == StatusCode::UNAUTHORIZED {
        "<p>Open the preview link with its token (<code>?DAYTONA_SANDBOX_AUTH_KEY=&lt;token&gt;</code>), \
         send the <code>X-Daytona-Preview-Token</code> header, or make the sandbox public.</p>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\
         <body><h1>{title}</h1><p>{msg}</p>{hint}</body></html>",
        code = status.as_u16(),
        title = escape(title),
        msg = escape(message),
    )
}
