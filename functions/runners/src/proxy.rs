//! The preview proxy's runner lookup: `GET /api/runners/by-sandbox/{sandboxId}` with the
//! proxy's service token (`proxy_api_key`, see the `preview` function) answers like the admin
//! route; every other request goes to the routes as usual.

use cove_api_types::ApiError;
use cove_api_types::ids::RunnerId;
use cove_api_types::runner::RunnerFull;
use cove_edge::Env;
use cove_edge::config::Settings;
use cove_edge::store_error::IntoApi;
use cove_edge::web::{self, Request, Response};
use http::{Method, StatusCode};

use crate::service;

const BY_SANDBOX: &str = "/api/runners/by-sandbox/";

/// The `proxy_api_key` variable (empty: no proxy; the route then takes admin credentials only).
#[derive(Clone, Default)]
pub struct ProxySettings {
    proxy_api_key: Option<String>,
}

impl ProxySettings {
    /// Settings with this proxy token (tests).
    pub fn with_key(key: &str) -> Self {
        Self {
            proxy_api_key: Some(key.to_owned()).filter(|k| !k.is_empty()),
        }
    }
}

impl Settings for ProxySettings {
    const VARIABLES: &'static [&'static str] = &["proxy_api_key"];

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Self::with_key(get("proxy_api_key").unwrap_or_default().trim())
    }
}

/// Constant-time equality.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request carries the proxy's token.
fn from_proxy(settings: &ProxySettings, req: &Request) -> bool {
    let Some(key) = settings.proxy_api_key.as_deref() else {
        return false;
    };
    req.headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer")
                && same_secret(token.trim().as_bytes(), key.as_bytes())
        })
}

/// `by-sandbox`'s answer with the runner's token in clear: the proxy presents it to the runner
/// (`X-Daytona-Authorization`), as the control plane does.
async fn for_proxy(env: &Env, sandbox_id: &str) -> Result<RunnerFull, ApiError> {
    let masked = service::by_sandbox(env, sandbox_id).await?;
    let id = RunnerId::parse(&masked.runner.id).map_err(|_| ApiError::internal())?;
    let rec = env
        .store
        .runners()
        .get(&id)
        .await
        .api()?
        .ok_or_else(|| ApiError::not_found(format!("Runner {id} not found")))?;
    Ok(RunnerFull {
        api_key: rec.api_key,
        ..masked
    })
}

/// Serves one request (the component's entry point).
pub async fn serve(env: &Env, settings: &ProxySettings, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let id = path
        .strip_prefix(BY_SANDBOX)
        .filter(|id| !id.is_empty() && !id.contains('/'));
    match id {
        Some(id) if req.method() == Method::GET && from_proxy(settings, &req) => {
            let id = web::percent_decode(id);
            let answer = match for_proxy(env, &id).await {
                Ok(full) => web::json(StatusCode::OK, &full),
                Err(e) => Err(e),
            };
            web::respond(&path, answer)
        }
        _ => crate::handle(env, req).await,
    }
}
