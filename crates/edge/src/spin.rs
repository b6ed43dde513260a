//! The Spin side of a function: turns the component's request into a buffered [`Request`], loads the
//! configuration from Spin variables, runs the handler and converts its response back.
//!
//! A function's entry point is one line, [`component!`](crate::component).

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use crate::config::{EdgeConfig, Env, Settings, VARIABLES};
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

/// Reads the Spin variables in `names` this component was granted (unset ones are absent).
async fn variables(names: &[&'static str]) -> HashMap<&'static str, String> {
    let mut values = HashMap::new();
    for name in names {
        if let Ok(v) = spin_sdk::variables::get(name).await {
            values.insert(*name, v);
        }
    }
    values
}

async fn load_env() -> Result<Env, ApiError> {
    let values = variables(VARIABLES).await;
    EdgeConfig::from_lookup(|n| values.get(n).cloned())
        .map(Env::new)
        .map_err(|e| {
            tracing::error!(error = %e, "component configuration is invalid");
            ApiError::internal()
        })
}

/// A function's own settings, read from their Spin variables.
pub async fn load_settings<S: Settings>() -> S {
    let values = variables(S::VARIABLES).await;
    S::from_lookup(|n| values.get(n).cloned())
}

/// The body, read up to [`MAX_JSON_BODY`]: a larger `Content-Length` is refused before anything is
/// read, and a body that grows past the limit stops being read at the limit.
async fn bounded_body<B>(parts: &http::request::Parts, body: B) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || ApiError::payload_too_large("Request body is too large");
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_JSON_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_JSON_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => {
            tracing::debug!(error = %e, "could not read request body");
            Err(ApiError::bad_request("Could not read the request body"))
        }
    }
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
    let resp = match bounded_body(&parts, body).await {
        Err(e) => error_response(&path, &e),
        Ok(bytes) => match instance_env().await {
            Ok(env) => handler(env, Request::from_parts(parts, bytes)).await,
            Err(e) => error_response(&path, &e),
        },
    };
    resp.map(Full::new)
}
