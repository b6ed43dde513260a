//! The Daytona error envelope and the one error value every control-plane handler returns.

use serde::{Deserialize, Serialize};

/// The body of every non-2xx control-plane response (NestJS `AllExceptionsFilter` shape, plus `code`/`source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    pub path: String,
    pub timestamp: String,
    pub status_code: u16,
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub source: String,
}

/// The value sent as `source` by the control plane.
pub const API_SOURCE: &str = "DAYTONA_API";

/// An error that maps to one HTTP status and a message safe to show the caller.
///
/// Internal detail never goes into `message`: log it where the error is created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
        }
    }
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    /// 401 with Daytona's wording for missing or unknown credentials.
    pub fn invalid_credentials() -> Self {
        Self::new(401, "Invalid credentials")
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(405, format!("Cannot {method} {path}"))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(413, message)
    }
    pub fn internal() -> Self {
        Self::new(500, "Internal server error")
    }
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, message)
    }

    /// The standard reason phrase for the status, as NestJS puts it in `error`.
    pub fn reason(&self) -> &'static str {
        reason_phrase(self.status)
    }

    pub fn envelope(&self, path: &str) -> ErrorEnvelope {
        ErrorEnvelope {
            path: path.to_owned(),
            timestamp: crate::time::now_rfc3339(),
            status_code: self.status,
            error: self.reason().to_owned(),
            message: self.message.clone(),
            code: self.code.map(str::to_owned),
            source: API_SOURCE.to_owned(),
        }
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_every_required_field() {
        let e = ApiError::not_found("API key not found")
            .with_code("NOT_FOUND")
            .envelope("/api/api-keys/x");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["statusCode"], 404);
        assert_eq!(v["error"], "Not Found");
        assert_eq!(v["message"], "API key not found");
        assert_eq!(v["path"], "/api/api-keys/x");
        assert_eq!(v["code"], "NOT_FOUND");
        assert_eq!(v["source"], "DAYTONA_API");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
