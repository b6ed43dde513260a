//! Who may call which sandbox's toolbox, and where the call goes.
//!
//! Per request: parse the path, authenticate the caller (API key, or JWT with
//! `X-Daytona-Organization-ID`) while the sandbox and its runner are read, check the sandbox
//! belongs to the caller's organization (a sandbox of another organization, a destroyed one and an
//! unknown id all answer the same 404, so existence never leaks), that it is `started` and has a
//! runner, record the activity (at most one write a minute per sandbox) and build the runner URL.

use cove_api_types::ApiError;
use cove_api_types::ids::SandboxId;
use cove_api_types::permissions::Permission;
use cove_api_types::sandbox::SandboxState;
use cove_edge::authz::{Action, authorize};
use cove_edge::store_error::IntoApi;
use cove_edge::web::Request;
use cove_edge::{Env, auth};
use cove_store::runners::RunnerRecord;
use cove_store::sandboxes::SandboxRecord;
use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::path::{self, ToolboxPath};

/// Minimum seconds between two `lastActivityAt` writes of one sandbox.
pub const ACTIVITY_INTERVAL_SECS: i64 = 60;

/// Request headers passed on to the runner (everything else, the caller's `Authorization` first
/// of all, stays here). The daemon picks the session-log format from `X-Daytona-SDK-Version`.
const FORWARDED_REQUEST_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "accept",
    "user-agent",
    "x-daytona-sdk-version",
    "x-daytona-source",
];

/// Response headers passed back. The daemon runs inside the sandbox, so nothing it sends may set
/// cookies or other headers on the API's origin.
const FORWARDED_RESPONSE_HEADERS: [&str; 3] =
    ["content-type", "content-length", "content-disposition"];

/// Where one toolbox call goes.
#[derive(Debug, Clone)]
pub struct Forward {
    pub sandbox_id: String,
    pub runner_id: String,
    /// `{runner api}/v1/sandboxes/{id}/toolbox/{path}?{query}`.
    pub url: String,
    /// The headers to send: the forwarded ones plus the runner's bearer token.
    pub headers: HeaderMap,
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Sandbox with ID or name {id} not found"))
}

/// Whether the request asks for a websocket (session log `follow`, PTY, interpreter).
pub fn is_websocket(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    upgrade || headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// Authenticates `req`, checks the sandbox, records activity; the target of the call.
///
/// `req` needs only the method, URI and headers (the body is never read here, so callers with a
/// streaming body pass an empty one).
pub async fn resolve(env: &Env, req: &Request) -> Result<Forward, ApiError> {
    let ToolboxPath { sandbox_id, rest } = path::parse(req.uri().path())?;
    // The sandbox and its runner are read while the caller is authenticated (nothing is
    // revealed before authentication and the organization check pass).
    let (ctx, loaded) = futures::join!(auth::authenticate(env, req), load(env, &sandbox_id));
    let ctx = ctx?;
    let (sandbox, runner) = loaded?
        .filter(|(s, _)| s.org_id == ctx.organization_id && !s.is_destroyed())
        .ok_or_else(|| not_found(&sandbox_id))?;
    // Running anything in a sandbox changes it: Daytona's toolbox routes need `write:sandboxes`
    // (owners hold every permission; an API key only those it was created with).
    authorize(env, &ctx, Action::Use(Permission::WriteSandboxes)).await?;
    if is_websocket(req.headers()) {
        return Err(ApiError::bad_request(
            "WebSocket upgrades are not supported by the toolbox proxy; \
             read session command logs without `follow` instead",
        ));
    }
    if sandbox.state != SandboxState::Started {
        return Err(ApiError::bad_request(format!(
            "Sandbox is not running (state: {})",
            sandbox.state
        ))
        .with_code("SANDBOX_NOT_STARTED"));
    }
    let runner = runner.ok_or_else(|| {
        tracing::warn!(sandbox = %sandbox.id, runner = ?sandbox.runner_id, "started sandbox without a known runner");
        unavailable()
    })?;
    let api_url = runner
        .api_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            tracing::warn!(sandbox = %sandbox.id, runner = %runner.id, "runner has no API URL");
            unavailable()
        })?;
    record_activity(env, &sandbox).await;
    Ok(Forward {
        url: path::runner_url(api_url, sandbox.id.as_str(), &rest, req.uri().query()),
        headers: request_headers(req.headers(), &runner.api_key)?,
        sandbox_id: sandbox.id.to_string(),
        runner_id: runner.id.to_string(),
    })
}

fn unavailable() -> ApiError {
    ApiError::service_unavailable("The sandbox's runner is not available")
}

/// The sandbox row and, when it is started, its runner's row (an id that is not a sandbox id
/// names no sandbox).
async fn load(
    env: &Env,
    id: &str,
) -> Result<Option<(SandboxRecord, Option<RunnerRecord>)>, ApiError> {
    let Ok(id) = SandboxId::parse(id) else {
        return Ok(None);
    };
    let Some(sandbox) = env.store.sandboxes().get(&id).await.api()? else {
        return Ok(None);
    };
    let runner = match sandbox.runner_id.as_ref() {
        Some(r) if sandbox.state == SandboxState::Started => {
            env.store.runners().get(r).await.api()?
        }
        _ => None,
    };
    Ok(Some((sandbox, runner)))
}

/// Bumps `lastActivityAt` when it is older than [`ACTIVITY_INTERVAL_SECS`]. Best effort: a
/// failed write never fails the toolbox call.
async fn record_activity(env: &Env, sandbox: &SandboxRecord) {
    let now = time::OffsetDateTime::now_utc();
    let threshold = now - time::Duration::seconds(ACTIVITY_INTERVAL_SECS);
    let fresh = cove_api_types::time::parse_rfc3339(&sandbox.last_activity_at)
        .is_some_and(|t| t > threshold);
    if fresh {
        return;
    }
    let now_s = cove_api_types::time::format_rfc3339(now);
    let older_than = cove_api_types::time::format_rfc3339(threshold);
    if let Err(e) = env
        .store
        .sandboxes()
        .touch_activity(&sandbox.id, &now_s, &older_than)
        .await
    {
        tracing::warn!(error = %e, sandbox = %sandbox.id, "could not record sandbox activity");
    }
}

/// The request headers sent to the runner.
pub fn request_headers(from: &HeaderMap, runner_token: &str) -> Result<HeaderMap, ApiError> {
    let mut out = copy_headers(from, &FORWARDED_REQUEST_HEADERS);
    let bearer = HeaderValue::from_str(&format!("Bearer {runner_token}")).map_err(|_| {
        tracing::error!("runner token is not a valid header value");
        ApiError::internal()
    })?;
    out.insert(header::AUTHORIZATION, bearer);
    Ok(out)
}

/// The response headers passed back to the caller.
pub fn response_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = copy_headers(from, &FORWARDED_RESPONSE_HEADERS);
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out
}

fn copy_headers(from: &HeaderMap, names: &[&'static str]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in names {
        let name = HeaderName::from_static(name);
        for v in from.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_headers_cross() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer user-key"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-daytona-sdk-version", HeaderValue::from_static("0.226.1"));
        h.insert("cookie", HeaderValue::from_static("a=b"));
        let out = request_headers(&h, "runner-token").unwrap();
        assert_eq!(out["authorization"], "Bearer runner-token");
        assert_eq!(out["content-type"], "application/json");
        assert_eq!(out["x-daytona-sdk-version"], "0.226.1");
        assert!(!out.contains_key("cookie"));

        let mut r = HeaderMap::new();
        r.insert("set-cookie", HeaderValue::from_static("session=evil"));
        r.insert("content-type", HeaderValue::from_static("text/plain"));
        r.insert("content-length", HeaderValue::from_static("5"));
        let out = response_headers(&r);
        assert!(!out.contains_key("set-cookie"));
        assert_eq!(out["content-length"], "5");
        assert_eq!(out["x-content-type-options"], "nosniff");
    }

    #[test]
    fn websocket_requests_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!is_websocket(&h));
        h.insert("upgrade", HeaderValue::from_static("WebSocket"));
        assert!(is_websocket(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-websocket-key", HeaderValue::from_static("x"));
        assert!(is_websocket(&h));
    }
}
