//! The Spin side of a function: turns the component's request into a buffered [`Request`], loads the
//! configuration from Spin variables, runs the handler and converts its response back.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use spin_sdk::http::body::IncomingBodyExt;

use crate::config::{EdgeConfig, Env, VARIABLES};
use crate::web::{MAX_JSON_BODY, Request, Response, error_response};
use cove_api_types::ApiError;

/// The environment of this instance. Variables can't change during an instance's life, so when the
/// host reuses instances (`cove up --instance-reuse N`, Spin's instance reuse) the AWS client is
/// built once per instance instead of once per request. It holds configuration only, never
/// request state.
static ENV: std::sync::OnceLock<Env> = std::sync::OnceLock::new();

/// The instance's [`Env`], built on first use (for components with their own entry point).
pub async fn instance_env() -> Result<Env, ApiError> {
    if let Some(env) = ENV.get() {
        return Ok(env.clone());
    }
    let env = load_env().await?;
    Ok(ENV.get_or_init(|| env).clone())
}

/// Reads every variable in [`VARIABLES`] this component was granted.
async fn load_env() -> Result<Env, ApiError> {
    let mut values = HashMap::new();
    for name in VARIABLES {
        if let Ok(v) = spin_sdk::variables::get(name).await {
            values.insert(*name, v);
        }
    }
    EdgeConfig::from_lookup(|n| values.get(n).cloned())
        .map(Env::new)
        .map_err(|e| {
            tracing::error!(error = %e, "component configuration is invalid");
            ApiError::internal()
        })
}

/// Serves one request of a component with `handler`.
pub async fn serve<F, Fut>(req: spin_sdk::http::Request, handler: F) -> http::Response<Full<Bytes>>
where
    F: FnOnce(Env, Request) -> Fut,
    Fut: Future<Output = Response>,
{
    crate::init_tracing();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let resp = match body.bytes().await {
        Err(e) => {
            tracing::warn!(error = ?e, "could not read request body");
            error_response(
                &path,
                &ApiError::bad_request("Could not read the request body"),
            )
        }
        Ok(b) if b.len() > MAX_JSON_BODY => error_response(
            &path,
            &ApiError::payload_too_large("Request body is too large"),
        ),
        Ok(bytes) => match instance_env().await {
            Ok(env) => handler(env, Request::from_parts(parts, bytes)).await,
            Err(e) => error_response(&path, &e),
        },
    };
    resp.map(Full::new)
}
