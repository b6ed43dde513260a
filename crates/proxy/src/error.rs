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
    /// An answer of the control plane, passed on (status, message and code).
    #[error("{message}")]
    Upstream {
        status: StatusCode,
        message: String,
        code: Option<String>,
    },
    /// An error answered by a hop behind the proxy (the runner agent, or the daemon's port
    /// forward), marked with [`HOP_ERROR_HEADER`]: its status, message and code, re-answered.
    #[error("{message}")]
    Hop {
        status: StatusCode,
        message: String,
        code: Option<String>,
    },
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
            Self::Upstream { status, .. } | Self::Hop { status, .. } => *status,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The envelope's `code`: the hop's own, else one for the status (`BAD_GATEWAY`, ...).
    pub fn code(&self) -> String {
        match self {
            Self::Hop { code: Some(c), .. } | Self::Upstream { code: Some(c), .. } => c.clone(),
            _ => status_code_name(self.status()),
        }
    }

    /// The answer: HTML when the caller is a browser asking for a page, else Daytona's JSON
    /// envelope (`statusCode`, `message`, `error`, `code`, `path`, `method`, `timestamp`,
    /// `source: DAYTONA_PROXY`).
    pub fn into_response(self, req: &RequestInfo) -> http::Response<Body> {
        let status = self.status();
        let message = self.to_string();
        let (ctype, body) = if wants_html(&req.headers) {
            ("text/html; charset=utf-8", html(status, &message))
        } else {
            (
                "application/json",
                json(status, &message, &self.code(), req),
            )
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

/// Marks an error answered by a hop behind the proxy (the runner agent, the daemon's port
/// forward), as opposed to an answer of the server in the sandbox, which is passed on as is.
pub const HOP_ERROR_HEADER: &str = "x-cove-hop-error";

/// What an error answer needs to know of its request.
pub struct RequestInfo {
    pub headers: HeaderMap,
    pub path: String,
    pub method: http::Method,
}

/// `NOT_FOUND` for 404, and so on.
fn status_code_name(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("Error")
        .to_ascii_uppercase()
        .replace([' ', '-'], "_")
}

fn wants_html(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn json(status: StatusCode, message: &str, code: &str, req: &RequestInfo) -> String {
    serde_json::json!({
        "statusCode": status.as_u16(),
        "message": message,
        "error": status.canonical_reason().unwrap_or("Error"),
        "code": code,
        "path": req.path,
        "method": req.method.as_str(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn answer(e: ProxyError, accept: Option<&str>) -> (StatusCode, String, String) {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        let req = RequestInfo {
            headers,
            path: "/x".into(),
            method: http::Method::GET,
        };
        let r = e.into_response(&req);
        let status = r.status();
        let ctype = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn api_clients_get_the_envelope_and_browsers_a_page() {
        let hop = ProxyError::Hop {
            status: StatusCode::BAD_GATEWAY,
            message: "Nothing accepts connections on port 8099 in the sandbox".into(),
            code: None,
        };
        let (status, ctype, body) = answer(hop, Some("application/json")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(ctype, "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["statusCode"], 502);
        assert_eq!(v["error"], "Bad Gateway");
        assert_eq!(v["code"], "BAD_GATEWAY");
        assert_eq!(v["path"], "/x");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["source"], "DAYTONA_PROXY");
        assert!(v["message"].as_str().unwrap().contains("8099"));
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));

        let e = ProxyError::Hop {
            status: StatusCode::CONFLICT,
            message: "Sandbox x is <not> running".into(),
            code: Some("SANDBOX_NOT_STARTED".into()),
        };
        let (status, ctype, body) = answer(e, Some("text/html,*/*")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(ctype.starts_with("text/html"));
        assert!(body.contains("Sandbox x is &lt;not&gt; running"), "{body}");

        let e = ProxyError::NotFound("gone".into());
        let (_, _, body) = answer(e, None).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "NOT_FOUND");
    }
}
