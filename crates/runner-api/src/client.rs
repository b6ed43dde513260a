//! HTTP clients (native, plain http through `reqwest`): the control plane's client of a runner
//! agent ([`RunnerClient`]) and the agent's client of the control plane ([`ControlPlaneClient`]).

use serde::de::DeserializeOwned;

use crate::fake::FakeDelay;
use crate::{
    BackupRemoval, BackupRequest, BackupResponse, ErrorEnvelope, Healthcheck, RunnerInfo,
    SandboxList, SandboxSpec, SandboxStatus,
};

/// The answer of a bounded `PUT`.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// 200: the desired state was reached.
    Reached(SandboxStatus),
    /// 202: still converging; the outcome comes as a state report.
    Pending(SandboxStatus),
}

impl PutOutcome {
    pub fn status(&self) -> &SandboxStatus {
        match self {
            Self::Reached(s) | Self::Pending(s) => s,
        }
    }

    pub fn into_status(self) -> SandboxStatus {
        match self {
            Self::Reached(s) | Self::Pending(s) => s,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("request to {url} failed")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{status} from {url}: {message}")]
    Status {
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
            Self::Transport { .. } => None,
        }
    }
}

async fn decode<T: DeserializeOwned>(url: &str, resp: reqwest::Response) -> Result<T, ClientError> {
    let status = resp.status();
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        let (message, code) = match serde_json::from_slice::<ErrorEnvelope>(&body) {
            Ok(env) => (env.message, env.code),
            Err(_) => (String::from_utf8_lossy(&body).into_owned(), None),
        };
        return Err(ClientError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
            code,
        });
    }
    resp.json::<T>()
        .await
        .map_err(|source| ClientError::Transport {
            url: url.to_owned(),
            source,
        })
}

/// Client of a runner agent's `/v1` API.
#[derive(Debug, Clone)]
pub struct RunnerClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl RunnerClient {
    /// `base` is like `http://127.0.0.1:3003` (no trailing slash needed).
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: reqwest::Client::new(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Base URL of a sandbox's toolbox (append `/files`, `/process/execute`, ...).
    pub fn toolbox_url(&self, id: &str) -> String {
        format!("{}/v1/sandboxes/{id}/toolbox", self.base)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, ClientError> {
        let resp = self.send(req, url).await?;
        decode(url, resp).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        req.bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.to_owned(),
                source,
            })
    }

    /// `PUT /v1/sandboxes/{id}`: apply a desired state, waiting the agent's default bound; the
    /// status is the reached or (202) the current transitional one.
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
    /// [`PutOutcome::Pending`].
    pub async fn apply_sandbox(
        &self,
        id: &str,
        spec: &SandboxSpec,
        wait_secs: Option<u32>,
    ) -> Result<PutOutcome, ClientError> {
        let mut url = format!("{}/v1/sandboxes/{id}", self.base);
        if let Some(w) = wait_secs {
            url.push_str(&format!("?wait={w}"));
        }
        let resp = self.send(self.http.put(&url).json(spec), &url).await?;
        let pending = resp.status() == reqwest::StatusCode::ACCEPTED;
        let status: SandboxStatus = decode(&url, resp).await?;
        Ok(if pending {
            PutOutcome::Pending(status)
        } else {
            PutOutcome::Reached(status)
        })
    }

    pub async fn get_sandbox(&self, id: &str) -> Result<SandboxStatus, ClientError> {
        let url = format!("{}/v1/sandboxes/{id}", self.base);
        self.call(self.http.get(&url), &url).await
    }

    pub async fn list_sandboxes(&self) -> Result<SandboxList, ClientError> {
        let url = format!("{}/v1/sandboxes", self.base);
        self.call(self.http.get(&url), &url).await
    }

    pub async fn destroy_sandbox(&self, id: &str) -> Result<SandboxStatus, ClientError> {
        let url = format!("{}/v1/sandboxes/{id}", self.base);
        self.call(self.http.delete(&url), &url).await
    }

    pub async fn backup_sandbox(
        &self,
        id: &str,
        req: &BackupRequest,
    ) -> Result<BackupResponse, ClientError> {
        let url = format!("{}/v1/sandboxes/{id}/backup", self.base);
        self.call(self.http.post(&url).json(req), &url).await
    }

    /// `POST /v1/sandboxes/{id}/backup` with an empty body (the agent names the image).
    pub async fn backup(&self, id: &str) -> Result<BackupResponse, ClientError> {
        let url = format!("{}/v1/sandboxes/{id}/backup", self.base);
        self.call(self.http.post(&url), &url).await
    }

    /// `DELETE /v1/backups/{sandboxId}`: every backup image of a destroyed sandbox.
    pub async fn delete_backups(&self, sandbox_id: &str) -> Result<BackupRemoval, ClientError> {
        let url = format!("{}/v1/backups/{sandbox_id}", self.base);
        self.call(self.http.delete(&url), &url).await
    }

    pub async fn info(&self) -> Result<RunnerInfo, ClientError> {
        let url = format!("{}/v1/info", self.base);
        self.call(self.http.get(&url), &url).await
    }

    /// `POST /v1/fake/sandboxes/{id}/crash` (simulated runner only).
    pub async fn fake_crash(&self, id: &str) -> Result<(), ClientError> {
        let url = format!("{}/v1/fake/sandboxes/{id}/crash", self.base);
        let resp = self.send(self.http.post(&url), &url).await?;
        expect_success(&url, resp).await
    }

    /// `POST /v1/fake/delay` (simulated runner only).
    pub async fn fake_delay(&self, delay: &FakeDelay) -> Result<(), ClientError> {
        let url = format!("{}/v1/fake/delay", self.base);
        let resp = self.send(self.http.post(&url).json(delay), &url).await?;
        expect_success(&url, resp).await
    }
}

async fn expect_success(url: &str, resp: reqwest::Response) -> Result<(), ClientError> {
    if resp.status().is_success() {
        return Ok(());
    }
    decode::<serde_json::Value>(url, resp).await.map(|_| ())
}

/// The agent's client of the control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ControlPlaneClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// `POST /api/runners/healthcheck`.
    pub async fn healthcheck(&self, body: &Healthcheck) -> Result<(), ClientError> {
        let url = format!("{}/api/runners/healthcheck", self.base);
        self.send_json(self.http.post(&url), url, body).await
    }

    /// `PUT /api/sandbox/{id}/state`: a state observed outside a `PUT` (container died, recovery).
    pub async fn report_state(
        &self,
        id: &str,
        body: &crate::StateReport,
    ) -> Result<(), ClientError> {
        let url = format!("{}/api/sandbox/{id}/state", self.base);
        self.send_json(self.http.put(&url), url, body).await
    }

    async fn send_json<B: serde::Serialize>(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
        body: &B,
    ) -> Result<(), ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let message = resp.text().await.unwrap_or_default();
        Err(ClientError::Status {
            url,
            status: status.as_u16(),
            message,
            code: None,
        })
    }
}
