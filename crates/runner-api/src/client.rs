//! HTTP clients (native, plain http through `reqwest`): the control plane's client of a runner
//! agent ([`RunnerClient`]) and the agent's client of the control plane ([`ControlPlaneClient`]).

use serde::de::DeserializeOwned;

use crate::{
    BackupRequest, BackupResponse, ErrorEnvelope, Healthcheck, RunnerInfo, SandboxList,
    SandboxSpec, SandboxStatus,
};

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
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.to_owned(),
                source,
            })?;
        decode(url, resp).await
    }

    /// `PUT /v1/sandboxes/{id}`: apply a desired state.
    pub async fn put_sandbox(
        &self,
        id: &str,
        spec: &SandboxSpec,
    ) -> Result<SandboxStatus, ClientError> {
        let url = format!("{}/v1/sandboxes/{id}", self.base);
        self.call(self.http.put(&url).json(spec), &url).await
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

    pub async fn info(&self) -> Result<RunnerInfo, ClientError> {
        let url = format!("{}/v1/info", self.base);
        self.call(self.http.get(&url), &url).await
    }
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
