//! Feature `client`: the native transport ([`ReqwestTransport`], plain http), the runner client
//! over it ([`RunnerClient`]) and the agent's client of the control plane
//! ([`ControlPlaneClient`]).

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::{Client, ClientError, Failure, Transport, TransportError, refusal, request};
use crate::{Healthcheck, StateReport};

/// `reqwest` without a timeout of its own (each call passes one, or none).
#[derive(Debug, Clone, Default)]
pub struct ReqwestTransport {
    http: reqwest::Client,
}

/// The runner client tests, benchmarks and tools use.
pub type RunnerClient = Client<ReqwestTransport>;

/// An error with its `source()` chain (reqwest's own message says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(inner) = next {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        next = inner.source();
    }
    s
}

fn failure(e: &reqwest::Error) -> TransportError {
    let failure = if e.is_connect() || e.is_builder() {
        Failure::Connect
    } else if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Other
    };
    TransportError {
        failure,
        message: chain(e),
    }
}

impl Transport for ReqwestTransport {
    async fn send(
        &self,
        req: http::Request<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| TransportError {
            failure: Failure::Connect,
            message: e.to_string(),
        })?;
        let mut b = self
            .http
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        let resp = b.send().await.map_err(|e| failure(&e))?;
        let mut out = http::Response::builder().status(resp.status());
        if let Some(h) = out.headers_mut() {
            *h = resp.headers().clone();
        }
        let data = resp.bytes().await.map_err(|e| failure(&e))?;
        out.body(data).map_err(|e| TransportError {
            failure: Failure::Other,
            message: e.to_string(),
        })
    }
}

/// How long one call of the agent to the control plane may take.
const CONTROL_PLANE_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent's client of the control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneClient {
    base: String,
    token: String,
    transport: ReqwestTransport,
}

impl ControlPlaneClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            transport: ReqwestTransport::default(),
        }
    }

    /// `POST /api/runners/healthcheck`.
    pub async fn healthcheck(&self, body: &Healthcheck) -> Result<(), ClientError> {
        self.send(http::Method::POST, "/api/runners/healthcheck", body)
            .await
    }

    /// `PUT /api/sandbox/{id}/state`: a state observed outside a `PUT`, or the outcome of a
    /// `PUT` that answered 202.
    pub async fn report_state(&self, id: &str, body: &StateReport) -> Result<(), ClientError> {
        self.send(http::Method::PUT, &format!("/api/sandbox/{id}/state"), body)
            .await
    }

    async fn send<B: Serialize>(
        &self,
        method: http::Method,
        path: &str,
        body: &B,
    ) -> Result<(), ClientError> {
        let url = format!("{}{path}", self.base);
        let req = request(&method, &url, &self.token, Some(body))?;
        let resp = self
            .transport
            .send(req, Some(CONTROL_PLANE_TIMEOUT))
            .await
            .map_err(|e| ClientError::transport(&method, &url, e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(refusal(&method, &url, resp.status(), resp.body()))
    }
}
