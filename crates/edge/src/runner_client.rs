//! The control plane's client of a runner agent (`crates/runner-api` routes), over
//! [`crate::outbound::send`], so it works the same inside a component and natively.

use bytes::Bytes;
use cove_runner_api::{BackupRequest, BackupResponse, ErrorEnvelope, SandboxSpec, SandboxStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::outbound;

/// Why a call to a runner agent failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunnerCallError {
    /// No usable answer: connection failure, timeout, or a 2xx body that is not what the route returns.
    #[error("runner unreachable: {0}")]
    Unreachable(String),
    /// The agent answered with a non-2xx status (message and code from its error envelope).
    #[error("runner answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        code: Option<String>,
    },
}

impl RunnerCallError {
    /// The agent's status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Unreachable(_) => None,
        }
    }
    /// The agent's error code (`STALE_GENERATION`, `IMMUTABLE_FIELD`, ...), when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Status { code, .. } => code.as_deref(),
            Self::Unreachable(_) => None,
        }
    }
}

/// Client of one runner agent's `/v1` API.
#[derive(Clone)]
pub struct RunnerClient {
    base: String,
    token: String,
}

impl std::fmt::Debug for RunnerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RunnerClient {
    /// `api_url` is the runner's `apiUrl` (like `http://127.0.0.1:3003`); `token` its runner token.
    pub fn new(api_url: &str, token: &str) -> Self {
        Self {
            base: api_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Base URL of a sandbox's toolbox on this runner (append `/files`, `/process/execute`, ...).
    pub fn toolbox_url(&self, id: &str) -> String {
        format!("{}/v1/sandboxes/{id}/toolbox", self.base)
    }

    /// `PUT /v1/sandboxes/{id}`: apply a desired state (idempotent per `spec.generation`).
    pub async fn put_sandbox(
        &self,
        id: &str,
        spec: &SandboxSpec,
    ) -> Result<SandboxStatus, RunnerCallError> {
        self.call(
            http::Method::PUT,
            &format!("/v1/sandboxes/{id}"),
            Some(spec),
        )
        .await
    }

    /// `GET /v1/sandboxes/{id}`.
    pub async fn get_sandbox(&self, id: &str) -> Result<SandboxStatus, RunnerCallError> {
        self.call::<(), _>(http::Method::GET, &format!("/v1/sandboxes/{id}"), None)
            .await
    }

    /// `DELETE /v1/sandboxes/{id}` (answers `destroyed` also when the sandbox never existed).
    pub async fn delete_sandbox(&self, id: &str) -> Result<SandboxStatus, RunnerCallError> {
        self.call::<(), _>(http::Method::DELETE, &format!("/v1/sandboxes/{id}"), None)
            .await
    }

    /// `POST /v1/sandboxes/{id}/backup`: commit the sandbox's filesystem to `image` (`repo:tag`).
    pub async fn backup(&self, id: &str, image: &str) -> Result<BackupResponse, RunnerCallError> {
        let body = BackupRequest {
            image: image.to_owned(),
        };
        self.call(
            http::Method::POST,
            &format!("/v1/sandboxes/{id}/backup"),
            Some(&body),
        )
        .await
    }

    /// `GET /v1/sandboxes`: every sandbox the agent knows.
    pub async fn list_sandboxes(&self) -> Result<cove_runner_api::SandboxList, RunnerCallError> {
        self.call::<(), _>(http::Method::GET, "/v1/sandboxes", None)
            .await
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<cove_runner_api::RunnerInfo, RunnerCallError> {
        self.call::<(), _>(http::Method::GET, "/v1/info", None)
            .await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, RunnerCallError> {
        let url = format!("{}{path}", self.base);
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::ACCEPT, "application/json");
        let payload = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(b)
                    .map(Bytes::from)
                    .map_err(|e| RunnerCallError::Unreachable(format!("encode request: {e}")))?
            }
            None => Bytes::new(),
        };
        let req = req
            .body(payload)
            .map_err(|e| RunnerCallError::Unreachable(format!("{method} {url}: {e}")))?;
        let resp = outbound::send(req).await.map_err(|e| {
            tracing::warn!(%method, %url, error = %e.message, "runner unreachable");
            RunnerCallError::Unreachable(e.to_string())
        })?;
        decode(&method, &url, resp)
    }
}

fn decode<T: DeserializeOwned>(
    method: &http::Method,
    url: &str,
    resp: http::Response<Bytes>,
) -> Result<T, RunnerCallError> {
    let status = resp.status();
    let body = resp.into_body();
    if !status.is_success() {
        let (message, code) = match serde_json::from_slice::<ErrorEnvelope>(&body) {
            Ok(env) => (env.message, env.code),
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                let message = if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_owned()
                } else {
                    text.chars().take(1000).collect()
                };
                (message, None)
            }
        };
        tracing::debug!(%method, %url, status = status.as_u16(), %message, "runner refused");
        return Err(RunnerCallError::Status {
            status: status.as_u16(),
            message,
            code,
        });
    }
    serde_json::from_slice(&body).map_err(|e| {
        RunnerCallError::Unreachable(format!("{method} {url}: invalid answer ({status}): {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> http::Response<Bytes> {
        http::Response::builder()
            .status(status)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn envelope_and_plain_errors_map_to_status() {
        let env = r#"{"path":"/v1/sandboxes/a","timestamp":"t","statusCode":409,"error":"Conflict",
            "message":"stale generation 1 < 2","code":"STALE_GENERATION","source":"COVE_RUNNER"}"#;
        let e = decode::<SandboxStatus>(&http::Method::PUT, "u", resp(409, env)).unwrap_err();
        assert_eq!(
            e,
            RunnerCallError::Status {
                status: 409,
                message: "stale generation 1 < 2".into(),
                code: Some("STALE_GENERATION".into())
            }
        );
        assert_eq!(e.code(), Some("STALE_GENERATION"));
        let e = decode::<SandboxStatus>(&http::Method::GET, "u", resp(502, "")).unwrap_err();
        assert_eq!(e.status(), Some(502));
        assert!(
            matches!(e, RunnerCallError::Status { ref message, .. } if message == "Bad Gateway")
        );
        let e = decode::<SandboxStatus>(&http::Method::GET, "u", resp(200, "{}")).unwrap_err();
        assert!(matches!(e, RunnerCallError::Unreachable(_)));
    }
}
