//! The control plane as the proxy sees it: validation, access, signed tokens, runners,
//! activity (CONTRACT §9). Every answer is one small JSON value.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;

use crate::Client;
use crate::error::ProxyError;

/// Where a sandbox's runner is reached, and with which token.
#[derive(Debug, Clone)]
pub struct RunnerTarget {
    pub url: String,
    pub token: String,
}

/// The organization header of a JWT's requests.
pub const ORG_HEADER: &str = "x-daytona-organization-id";

/// A user's credential for the events route, as a Socket.IO client presented it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventCredential {
    /// `Bearer <api key or JWT>`.
    pub authorization: HeaderValue,
    /// The `organizationId` the client named (needed with a JWT).
    pub organization: Option<HeaderValue>,
    /// The `Host` the client connected to.
    pub host: Option<HeaderValue>,
}

/// One event of `GET /api/events/sandboxes`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RemoteEvent {
    pub cursor: String,
    pub event: String,
    pub data: serde_json::Value,
}

/// An answer of `GET /api/events/sandboxes`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    pub events: Vec<RemoteEvent>,
    pub cursor: String,
    pub organization_id: String,
}

/// A control plane client authenticated as the proxy.
#[derive(Clone)]
pub struct ControlPlane {
    client: Client,
    base: String,
    token: String,
}

/// What a yes/no route answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Yes,
    No,
}

impl ControlPlane {
    pub fn new(client: Client, base: &str, token: &str) -> Self {
        Self {
            client,
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: HeaderMap,
    ) -> Result<(StatusCode, Bytes), ProxyError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(crate::full(Bytes::new()))
            .map_err(|e| ProxyError::BadRequest(format!("invalid request: {e}")))?;
        *req.headers_mut() = auth;
        let resp = self.client.request(req).await.map_err(|e| {
            tracing::warn!(error = %e, path, "control plane unreachable");
            ProxyError::Unavailable("The control plane did not answer".into())
        })?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| ProxyError::Unavailable("The control plane's answer broke off".into()))?
            .to_bytes();
        Ok((status, body))
    }

    fn proxy_auth(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", self.token)) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    /// 200 `true` → yes; 404 (and 400/401/403 of a user credential) → no; anything else an error.
    async fn verdict(&self, path: &str, auth: HeaderMap) -> Result<Verdict, ProxyError> {
        let (status, body) = self.send(Method::GET, path, auth).await?;
        match status {
            StatusCode::OK if body.as_ref() == b"true" => Ok(Verdict::Yes),
            StatusCode::OK | StatusCode::NOT_FOUND => Ok(Verdict::No),
            s if s.is_client_error() => Ok(Verdict::No),
            s => Err(upstream(s, &body)),
        }
    }

    pub async fn is_public(&self, id: &str) -> Result<Verdict, ProxyError> {
        self.verdict(
            &format!("/api/preview/{}/public", enc(id)),
            self.proxy_auth(),
        )
        .await
    }

    pub async fn validate(&self, id: &str, token: &str) -> Result<Verdict, ProxyError> {
        let path = format!("/api/preview/{}/validate/{}", enc(id), enc(token));
        self.verdict(&path, self.proxy_auth()).await
    }

    /// `/access` with the user's own `Authorization`.
    pub async fn access(&self, id: &str, user_auth: &HeaderValue) -> Result<Verdict, ProxyError> {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, user_auth.clone());
        self.verdict(&format!("/api/preview/{}/access", enc(id)), h)
            .await
    }

    /// Whether a signed file URL of sandbox `id` is valid now: `signed` is its `path=`,
    /// `expires=` and `signature=` pairs, still percent-encoded as the client sent them.
    pub async fn verify_file_url(
        &self,
        id: &str,
        method: &http::Method,
        signed: &str,
    ) -> Result<Verdict, ProxyError> {
        let path = format!(
            "/api/preview/{}/file-url/verify?method={}&{signed}",
            enc(id),
            method.as_str()
        );
        self.verdict(&path, self.proxy_auth()).await
    }

    /// The toolbox component's checks for the user's credential: `Ok(())` or its refusal.
    pub async fn toolbox_access(&self, id: &str, user: HeaderMap) -> Result<(), ProxyError> {
        let path = format!("/api/preview/{}/toolbox-access", enc(id));
        let (status, body) = self.send(Method::GET, &path, user).await?;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(upstream(status, &body))
        }
    }

    /// The sandbox a signed token names for `port`; `None` when it is unknown or expired.
    pub async fn signed_sandbox(
        &self,
        token: &str,
        port: u16,
    ) -> Result<Option<String>, ProxyError> {
        let path = format!("/api/preview/{}/{port}/sandbox-id", enc(token));
        let (status, body) = self.send(Method::GET, &path, self.proxy_auth()).await?;
        match status {
            StatusCode::OK => Ok(serde_json::from_slice::<String>(&body).ok()),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(upstream(s, &body)),
        }
    }

    /// The sandbox's runner; 404 of the control plane passes on.
    pub async fn runner(&self, id: &str) -> Result<RunnerTarget, ProxyError> {
        let path = format!("/api/runners/by-sandbox/{}", enc(id));
        let (status, body) = self.send(Method::GET, &path, self.proxy_auth()).await?;
        if status != StatusCode::OK {
            return Err(upstream(status, &body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| ProxyError::Unavailable("Unreadable runner record".into()))?;
        let url = ["proxyUrl", "apiUrl"]
            .iter()
            .filter_map(|k| v[*k].as_str())
            .find(|u| !u.is_empty())
            .ok_or_else(|| ProxyError::Unavailable("The sandbox's runner has no address".into()))?;
        Ok(RunnerTarget {
            url: url.trim_end_matches('/').to_owned(),
            token: v["apiKey"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// The sandbox events of the credential's organization after `after` (`None`: none, and
    /// the cursor of now): `GET /api/events/sandboxes` with the user's `Authorization`, the
    /// organization header when the client named one, and the client's `Host` (the sandboxes
    /// render their URLs from it). A refusal of the credential passes on as
    /// [`ProxyError::Upstream`].
    pub async fn sandbox_events(
        &self,
        user: &EventCredential,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EventsPage, ProxyError> {
        let path = match after {
            Some(a) => format!("/api/events/sandboxes?after={}&limit={limit}", enc(a)),
            None => "/api/events/sandboxes".to_owned(),
        };
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, user.authorization.clone());
        if let Some(org) = &user.organization {
            h.insert(ORG_HEADER, org.clone());
        }
        if let Some(host) = &user.host {
            h.insert(header::HOST, host.clone());
        }
        let (status, body) = self.send(Method::GET, &path, h).await?;
        if status != StatusCode::OK {
            return Err(upstream(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|_| ProxyError::Unavailable("Unreadable events page".into()))
    }

    /// Records activity of sandbox `id` (best effort).
    pub async fn activity(&self, id: &str) {
        let path = format!("/api/preview/{}/last-activity", enc(id));
        match self.send(Method::POST, &path, self.proxy_auth()).await {
            Ok((s, _)) if s.is_success() => {}
            Ok((s, _)) => tracing::debug!(sandbox = id, status = %s, "activity not recorded"),
            Err(e) => tracing::debug!(sandbox = id, error = %e, "activity not recorded"),
        }
    }
}

/// The control plane's refusal, with its message.
fn upstream(status: StatusCode, body: &[u8]) -> ProxyError {
    let v = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let message = v["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let code = v["code"].as_str().map(str::to_owned);
    if status.is_server_error() {
        tracing::warn!(status = %status, message, "control plane error");
        return ProxyError::Unavailable(format!("The control plane failed: {message}"));
    }
    ProxyError::Upstream {
        status,
        message,
        code,
    }
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
