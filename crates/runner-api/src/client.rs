//! The one client of a runner agent's API ([`Client`]), generic over how a request travels
//! ([`Transport`]): the control plane's components pass `cove_edge`'s transport (Spin's outbound
//! HTTP inside a component, `reqwest` natively), tests and tools the [`ReqwestTransport`] of
//! feature `client` ([`RunnerClient`]). Feature `client` also gives the agent's client of the
//! control plane ([`ControlPlaneClient`]).
//!
//! Every call is whole-body (the toolbox is streamed by other code) and carries the runner token
//! as a bearer token. A non-2xx answer is [`ClientError::Status`] with the message and code of
//! the agent's [`ErrorEnvelope`] (else the body text, else the reason phrase); no answer is
//! [`ClientError::Unreachable`] (the request never reached the agent) or
//! [`ClientError::NoAnswer`] (it may have: timeout, connection lost, an undecodable 2xx).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fake::FakeDelay;
use crate::{
    BackupRemoval, BackupRequest, BackupResponse, ErrorEnvelope, RunnerInfo, SandboxList,
    SandboxSpec, SandboxStatus, SnapshotRemoval, SnapshotSpec, SnapshotStatus,
};

/// Why a transport got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request never left: connection refused, DNS, host policy, an invalid URL.
    Connect,
    /// No answer within the call's timeout.
    Timeout,
    /// Anything else (connection lost mid-request, unreadable answer): it may have arrived.
    Other,
}

/// A transport's failure to get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    pub failure: Failure,
    pub message: String,
}

/// How a request travels: one buffered HTTP exchange, bounded by `timeout` (`None`: the
/// transport's own bound). Any status is an answer; only getting none is an error.
#[cfg(not(target_arch = "wasm32"))]
pub trait Transport: Send + Sync {
    fn send(
        &self,
        req: http::Request<Bytes>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<http::Response<Bytes>, TransportError>> + Send;
}

/// How a request travels (inside a component futures are not `Send`).
#[cfg(target_arch = "wasm32")]
pub trait Transport {
    fn send(
        &self,
        req: http::Request<Bytes>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<http::Response<Bytes>, TransportError>>;
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The request never reached the server.
    #[error("{method} {url}: unreachable: {message}")]
    Unreachable {
        method: String,
        url: String,
        message: String,
    },
    /// The request was sent (or may have been) but no usable answer came: a timeout, a lost
    /// connection, or a 2xx body that is not what the route returns.
    #[error("{method} {url}: no answer: {message}")]
    NoAnswer {
        method: String,
        url: String,
        message: String,
    },
    /// A non-2xx answer.
    #[error("{method} {url}: {status}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
        code: Option<String>,
    },
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Unreachable { .. } | Self::NoAnswer { .. } => None,
        }
    }

    /// The agent's error code (`STALE_GENERATION`, `IMMUTABLE_FIELD`, ...), when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Status { code, .. } => code.as_deref(),
            Self::Unreachable { .. } | Self::NoAnswer { .. } => None,
        }
    }

    /// The server's message, or what went wrong on the way.
    pub fn message(&self) -> &str {
        match self {
            Self::Unreachable { message, .. }
            | Self::NoAnswer { message, .. }
            | Self::Status { message, .. } => message,
        }
    }

    /// Whether the request certainly did not reach the server.
    pub fn never_arrived(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    fn transport(method: &http::Method, url: &str, e: TransportError) -> Self {
        let (method, url, message) = (method.to_string(), url.to_owned(), e.message);
        match e.failure {
            Failure::Connect => Self::Unreachable {
                method,
                url,
                message,
            },
            Failure::Timeout | Failure::Other => Self::NoAnswer {
                method,
                url,
                message,
            },
        }
    }
}

/// The answer of a bounded `PUT` (sandboxes and snapshots).
#[derive(Debug, Clone, PartialEq)]
pub enum Applied<T> {
    /// 200: the desired state was reached (a snapshot job: `ready` or `error`).
    Reached(T),
    /// 202: still converging (a sandbox's outcome comes as a state report; a snapshot job is
    /// polled with `GET`).
    Pending(T),
}

/// The answer of a bounded sandbox `PUT`.
pub type PutOutcome = Applied<SandboxStatus>;

impl<T> Applied<T> {
    pub fn status(&self) -> &T {
        match self {
            Self::Reached(s) | Self::Pending(s) => s,
        }
    }

    pub fn into_status(self) -> T {
        match self {
            Self::Reached(s) | Self::Pending(s) => s,
        }
    }

    /// Whether the agent answered 200.
    pub fn is_reached(&self) -> bool {
        matches!(self, Self::Reached(_))
    }
}

/// Client of one runner agent's `/v1` API over transport `T`.
#[derive(Clone)]
pub struct Client<T> {
    base: String,
    token: String,
    timeout: Option<Duration>,
    transport: T,
}

impl<T> std::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<T: Transport + Default> Client<T> {
    /// `base` is the runner's `apiUrl` (like `http://127.0.0.1:3003`, a trailing slash is fine);
    /// `token` its runner token.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self::with_transport(T::default(), base, token)
    }
}

/// A request path and what the agent must answer with.
struct Call<'a, B> {
    method: http::Method,
    path: String,
    body: Option<&'a B>,
}

impl<'a> Call<'a, ()> {
    fn get(path: String) -> Self {
        Self {
            method: http::Method::GET,
            path,
            body: None,
        }
    }

    fn delete(path: String) -> Self {
        Self {
            method: http::Method::DELETE,
            path,
            body: None,
        }
    }

    fn post(path: String) -> Self {
        Self {
            method: http::Method::POST,
            path,
            body: None,
        }
    }
}

impl<'a, B: Serialize> Call<'a, B> {
    fn with(method: http::Method, path: String, body: &'a B) -> Self {
        Self {
            method,
            path,
            body: Some(body),
        }
    }
}

impl<T: Transport> Client<T> {
    pub fn with_transport(transport: T, base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            timeout: None,
            transport,
        }
    }

    /// Bounds every call (connect to last byte) by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Base URL of a sandbox's toolbox on this runner (append `/files`, `/process/execute`, ...).
    pub fn toolbox_url(&self, id: &str) -> String {
        format!("{}/v1/sandboxes/{id}/toolbox", self.base)
    }

    /// `PUT /v1/sandboxes/{id}` with the agent's default wait: the reached or (202) the current
    /// transitional status.
    pub async fn put_sandbox(
        &self,
        id: &str,
        spec: &SandboxSpec,
    ) -> Result<SandboxStatus, ClientError> {
        self.apply_sandbox(id, spec, None)
            .await
            .map(PutOutcome::into_status)
    }

    /// `PUT /v1/sandboxes/{id}?wait=SECONDS`: 200 → [`PutOutcome::Reached`], 202 →
    /// [`PutOutcome::Pending`]. Idempotent per `spec.generation`.
    pub async fn apply_sandbox(
        &self,
        id: &str,
        spec: &SandboxSpec,
        wait_secs: Option<u32>,
    ) -> Result<PutOutcome, ClientError> {
        self.bounded_put(format!("/v1/sandboxes/{id}"), spec, wait_secs)
            .await
    }

    /// `GET /v1/sandboxes/{id}`.
    pub async fn get_sandbox(&self, id: &str) -> Result<SandboxStatus, ClientError> {
        self.json(&Call::get(format!("/v1/sandboxes/{id}"))).await
    }

    /// `GET /v1/sandboxes/{id}/network-log`: the sandbox's last egress decisions.
    pub async fn network_log(&self, id: &str) -> Result<crate::NetworkLog, ClientError> {
        self.json(&Call::get(format!("/v1/sandboxes/{id}/network-log")))
            .await
    }

    /// `GET /v1/sandboxes/{id}/metrics?from=&to=`: the sandbox's usage samples in the range
    /// (unix milliseconds, inclusive), oldest first.
    pub async fn sandbox_metrics(
        &self,
        id: &str,
        range: crate::MetricsQuery,
    ) -> Result<crate::SandboxMetrics, ClientError> {
        let mut path = format!("/v1/sandboxes/{id}/metrics");
        let bounds: Vec<String> = [("from", range.from), ("to", range.to)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
        if !bounds.is_empty() {
            path.push('?');
            path.push_str(&bounds.join("&"));
        }
        self.json(&Call::get(path)).await
    }

    /// `GET /v1/sandboxes`: every sandbox the agent knows.
    pub async fn list_sandboxes(&self) -> Result<SandboxList, ClientError> {
        self.json(&Call::get("/v1/sandboxes".to_owned())).await
    }

    /// `DELETE /v1/sandboxes/{id}` (answers `destroyed` also when the sandbox never existed;
    /// its backups stay).
    pub async fn destroy_sandbox(&self, id: &str) -> Result<SandboxStatus, ClientError> {
        self.json(&Call::delete(format!("/v1/sandboxes/{id}")))
            .await
    }

    /// `POST /v1/sandboxes/{id}/backup` with a body (its `image` is ignored by current agents).
    pub async fn backup_sandbox(
        &self,
        id: &str,
        req: &BackupRequest,
    ) -> Result<BackupResponse, ClientError> {
        let path = format!("/v1/sandboxes/{id}/backup");
        self.json(&Call::with(http::Method::POST, path, req)).await
    }

    /// `POST /v1/sandboxes/{id}/backup` with an empty body: the agent names the image and
    /// answers it.
    pub async fn backup(&self, id: &str) -> Result<BackupResponse, ClientError> {
        self.json(&Call::post(format!("/v1/sandboxes/{id}/backup")))
            .await
    }

    /// `DELETE /v1/backups/{sandboxId}`: every backup image of the sandbox on this runner.
    pub async fn delete_backups(&self, sandbox_id: &str) -> Result<BackupRemoval, ClientError> {
        self.json(&Call::delete(format!("/v1/backups/{sandbox_id}")))
            .await
    }

    /// `PUT /v1/snapshots/{key}?wait=SECONDS`: 200 → [`Applied::Reached`] (`ready` or `error`),
    /// 202 → [`Applied::Pending`] (poll with [`Client::get_snapshot`]). Idempotent per key.
    pub async fn put_snapshot(
        &self,
        key: &str,
        spec: &SnapshotSpec,
        wait_secs: Option<u32>,
    ) -> Result<Applied<SnapshotStatus>, ClientError> {
        self.bounded_put(format!("/v1/snapshots/{key}"), spec, wait_secs)
            .await
    }

    /// `GET /v1/snapshots/{key}`; a 404 with code `SNAPSHOT_NOT_FOUND` when the agent has no
    /// such job or image.
    pub async fn get_snapshot(&self, key: &str) -> Result<SnapshotStatus, ClientError> {
        self.json(&Call::get(format!("/v1/snapshots/{key}"))).await
    }

    /// `DELETE /v1/snapshots/{key}`: removes the job and its local image (not while a container
    /// uses it: `removed: false`).
    pub async fn delete_snapshot(&self, key: &str) -> Result<SnapshotRemoval, ClientError> {
        self.json(&Call::delete(format!("/v1/snapshots/{key}")))
            .await
    }

    /// URL of `GET /v1/snapshots/{key}/logs?follow=BOOL` (`text/plain`; streamed with `follow`),
    /// for callers that stream it themselves (bearer token: the runner token).
    pub fn snapshot_logs_url(&self, key: &str, follow: bool) -> String {
        format!("{}/v1/snapshots/{key}/logs?follow={follow}", self.base)
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<RunnerInfo, ClientError> {
        self.json(&Call::get("/v1/info".to_owned())).await
    }

    /// `POST /v1/fake/sandboxes/{id}/crash` (simulated runner only).
    pub async fn fake_crash(&self, id: &str) -> Result<(), ClientError> {
        let call = Call::post(format!("/v1/fake/sandboxes/{id}/crash"));
        self.expect_success(&call).await
    }

    /// `POST /v1/fake/delay` (simulated runner only).
    pub async fn fake_delay(&self, delay: &FakeDelay) -> Result<(), ClientError> {
        let call = Call::with(http::Method::POST, "/v1/fake/delay".to_owned(), delay);
        self.expect_success(&call).await
    }

    /// A `PUT` answering 200 or 202 with the same body type.
    async fn bounded_put<B: Serialize, R: DeserializeOwned>(
        &self,
        mut path: String,
        body: &B,
        wait_secs: Option<u32>,
    ) -> Result<Applied<R>, ClientError> {
        if let Some(w) = wait_secs {
            path.push_str(&format!("?wait={w}"));
        }
        let call = Call::with(http::Method::PUT, path, body);
        let (status, resp) = self.exchange(&call).await?;
        let st: R = self.decode(&call, status, &resp)?;
        Ok(if status == http::StatusCode::ACCEPTED {
            Applied::Pending(st)
        } else {
            Applied::Reached(st)
        })
    }

    async fn json<B: Serialize, R: DeserializeOwned>(
        &self,
        call: &Call<'_, B>,
    ) -> Result<R, ClientError> {
        let (status, body) = self.exchange(call).await?;
        self.decode(call, status, &body)
    }

    async fn expect_success<B: Serialize>(&self, call: &Call<'_, B>) -> Result<(), ClientError> {
        let (status, body) = self.exchange(call).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(refusal(&call.method, &self.url(call), status, &body))
    }

    fn url<B>(&self, call: &Call<'_, B>) -> String {
        format!("{}{}", self.base, call.path)
    }

    /// Sends the call; answers its status and body.
    async fn exchange<B: Serialize>(
        &self,
        call: &Call<'_, B>,
    ) -> Result<(http::StatusCode, Bytes), ClientError> {
        let url = self.url(call);
        let req = request(&call.method, &url, &self.token, call.body)?;
        let resp = self
            .transport
            .send(req, self.timeout)
            .await
            .map_err(|e| ClientError::transport(&call.method, &url, e))?;
        let status = resp.status();
        Ok((status, resp.into_body()))
    }

    fn decode<B, R: DeserializeOwned>(
        &self,
        call: &Call<'_, B>,
        status: http::StatusCode,
        body: &[u8],
    ) -> Result<R, ClientError> {
        let url = self.url(call);
        if !status.is_success() {
            return Err(refusal(&call.method, &url, status, body));
        }
        serde_json::from_slice(body).map_err(|e| ClientError::NoAnswer {
            method: call.method.to_string(),
            url,
            message: format!("invalid answer ({status}): {e}"),
        })
    }
}

/// The request of a call: bearer token, JSON body when there is one.
fn request<B: Serialize>(
    method: &http::Method,
    url: &str,
    token: &str,
    body: Option<&B>,
) -> Result<http::Request<Bytes>, ClientError> {
    let unreachable = |message: String| ClientError::Unreachable {
        method: method.to_string(),
        url: url.to_owned(),
        message,
    };
    let mut b = http::Request::builder()
        .method(method.clone())
        .uri(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::ACCEPT, "application/json");
    let payload = match body {
        Some(v) => {
            b = b.header(http::header::CONTENT_TYPE, "application/json");
            serde_json::to_vec(v)
                .map(Bytes::from)
                .map_err(|e| unreachable(format!("encoding the request: {e}")))?
        }
        None => Bytes::new(),
    };
    b.body(payload).map_err(|e| unreachable(e.to_string()))
}

/// The [`ClientError::Status`] of a non-2xx answer: the envelope's message and code, else the
/// text (at most 1000 characters), else the reason phrase.
fn refusal(method: &http::Method, url: &str, status: http::StatusCode, body: &[u8]) -> ClientError {
    let (message, code) = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(env) => (env.message, env.code),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text.chars().take(1000).collect()
            };
            (message, None)
        }
    };
    ClientError::Status {
        method: method.to_string(),
        url: url.to_owned(),
        status: status.as_u16(),
        message,
        code,
    }
}

#[cfg(feature = "client")]
mod native;

#[cfg(feature = "client")]
pub use native::{ControlPlaneClient, ReqwestTransport, RunnerClient};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_plain_errors_map_to_status() {
        let env = r#"{"path":"/v1/sandboxes/a","timestamp":"t","statusCode":409,"error":"Conflict",
            "message":"stale generation 1 < 2","code":"STALE_GENERATION","source":"COVE_RUNNER"}"#;
        let put = http::Method::PUT;
        let e = refusal(&put, "u", http::StatusCode::CONFLICT, env.as_bytes());
        assert_eq!(
            (e.status(), e.code(), e.message()),
            (
                Some(409),
                Some("STALE_GENERATION"),
                "stale generation 1 < 2"
            )
        );
        let e = refusal(&put, "u", http::StatusCode::BAD_GATEWAY, b"");
        assert_eq!((e.status(), e.message()), (Some(502), "Bad Gateway"));
        let e = refusal(
            &put,
            "u",
            http::StatusCode::INTERNAL_SERVER_ERROR,
            b" boom\n",
        );
        assert_eq!((e.message(), e.code()), ("boom", None));
    }

    /// Answers every request with one status and body; records what it was sent.
    struct Canned {
        status: u16,
        body: &'static str,
        sent: std::sync::Mutex<Vec<(String, String)>>,
    }

    impl Transport for Canned {
        async fn send(
            &self,
            req: http::Request<Bytes>,
            _timeout: Option<Duration>,
        ) -> Result<http::Response<Bytes>, TransportError> {
            let line = (req.method().to_string(), req.uri().to_string());
            self.sent.lock().expect("sent").push(line);
            Ok(http::Response::builder()
                .status(self.status)
                .body(Bytes::from_static(self.body.as_bytes()))
                .expect("response"))
        }
    }

    fn canned(status: u16, body: &'static str) -> Client<Canned> {
        let t = Canned {
            status,
            body,
            sent: std::sync::Mutex::default(),
        };
        Client::with_transport(t, "http://runner:3003/", "tok")
    }

    #[tokio::test]
    async fn snapshot_calls_map_200_202_and_404() {
        let spec: SnapshotSpec =
            serde_json::from_str(r#"{"orgId":"o","source":{"kind":"pull","image":"alpine:3"}}"#)
                .expect("spec");
        let c = canned(202, r#"{"key":"k","state":"pulling"}"#);
        let out = c.put_snapshot("k", &spec, Some(0)).await.expect("put");
        assert!(
            matches!(out, Applied::Pending(ref s) if s.state == crate::SnapshotJobState::Pulling)
        );
        let sent = c.transport.sent.lock().expect("sent").clone();
        assert_eq!(
            sent,
            [(
                "PUT".to_owned(),
                "http://runner:3003/v1/snapshots/k?wait=0".to_owned()
            )]
        );
        let c = canned(200, r#"{"key":"k","state":"ready","ref":"alpine:3"}"#);
        let out = c.put_snapshot("k", &spec, None).await.expect("put");
        assert!(out.is_reached());
        assert_eq!(out.into_status().r#ref.as_deref(), Some("alpine:3"));
        let c = canned(
            404,
            r#"{"path":"/v1/snapshots/k","timestamp":"t","statusCode":404,"error":"Not Found","message":"snapshot k is not present on this runner","code":"SNAPSHOT_NOT_FOUND","source":"COVE_RUNNER"}"#,
        );
        let e = c.get_snapshot("k").await.expect_err("404");
        assert_eq!(
            (e.status(), e.code()),
            (Some(404), Some("SNAPSHOT_NOT_FOUND"))
        );
        let c = canned(200, r#"{"removed":true}"#);
        assert!(c.delete_snapshot("k").await.expect("delete").removed);
        assert_eq!(
            c.snapshot_logs_url("k", true),
            "http://runner:3003/v1/snapshots/k/logs?follow=true"
        );
    }

    #[test]
    fn transport_failures_say_whether_the_request_may_have_arrived() {
        let get = http::Method::GET;
        let fail = |failure| TransportError {
            failure,
            message: "x".into(),
        };
        assert!(ClientError::transport(&get, "u", fail(Failure::Connect)).never_arrived());
        for f in [Failure::Timeout, Failure::Other] {
            let e = ClientError::transport(&get, "u", fail(f));
            assert!(!e.never_arrived());
            assert_eq!(e.status(), None);
        }
    }
}
