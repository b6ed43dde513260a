//! The Spin component. Every route goes through `cove_edge::spin::serve` (buffered), except a
//! followed `build-logs` (`follow=true`): its answer is the runner's log body stream, handed
//! on as it arrives until the runner ends it (the pull or build is over), with spin-sdk directly
//! as `functions/toolbox` does.

use bytes::Bytes;
use cove_api_types::ApiError;
use cove_edge::web::error_response;
use http_body_util::Full;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use spin_sdk::wasip3::http::types::{ErrorCode, Response as WasiResponse};

use crate::routes::{self, State};
use crate::service::{self, LogsTarget};
use crate::settings::SnapshotSettings;

static SETTINGS: std::sync::OnceLock<SnapshotSettings> = std::sync::OnceLock::new();

async fn settings() -> SnapshotSettings {
    if let Some(s) = SETTINGS.get() {
        return s.clone();
    }
    let s = cove_edge::spin::load_settings::<SnapshotSettings>().await;
    SETTINGS.get_or_init(|| s).clone()
}

fn error(path: &str, e: &ApiError) -> Result<WasiResponse, ErrorCode> {
    error_response(path, e).map(Full::new).into_response()
}

fn is_followed_logs(req: &http::Request<Bytes>) -> bool {
    req.method() == http::Method::GET
        && req.uri().path().ends_with("/build-logs")
        && routes::follow(req)
}

#[http_service]
async fn handle(req: Request) -> Result<WasiResponse, ErrorCode> {
    cove_edge::init_tracing();
    let settings = settings().await;
    let (parts, body) = req.into_parts();
    let mut head = http::Request::new(Bytes::new());
    *head.method_mut() = parts.method.clone();
    *head.uri_mut() = parts.uri.clone();
    *head.headers_mut() = parts.headers.clone();
    if !is_followed_logs(&head) {
        let req = Request::from_parts(parts, body);
        return cove_edge::spin::serve(req, |env, req| async move {
            crate::handle(&env, &settings, req).await
        })
        .await
        .into_response();
    }
    let path = parts.uri.path().to_owned();
    match stream_logs(settings, &head).await {
        Ok(r) => Ok(r),
        Err(e) => error(&path, &e),
    }
}

/// The followed log: resolved like the native handler, then the runner's body stream.
async fn stream_logs(
    settings: SnapshotSettings,
    head: &http::Request<Bytes>,
) -> Result<WasiResponse, ApiError> {
    let env = cove_edge::spin::instance_env().await?;
    let state = State { env, settings };
    let c = routes::call(&state, head).await?;
    let id = head
        .uri()
        .path()
        .trim_end_matches("/build-logs")
        .rsplit('/')
        .next()
        .map(cove_edge::web::percent_decode)
        .unwrap_or_default();
    let (url, token) = match service::logs_target(&c, &id, true).await? {
        LogsTarget::Text(t) => {
            return routes::text(t).map(Full::new).into_response().map_err(|e| {
                tracing::warn!(error = ?e, "could not answer");
                ApiError::internal()
            });
        }
        LogsTarget::Runner { url, token } => (url, token),
    };
    let out = http::Request::get(&url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .map_err(|_| ApiError::internal())?;
    let resp = spin_sdk::http::send(out).await.map_err(|e| {
        tracing::warn!(error = ?e, url, "runner unreachable for snapshot logs");
        ApiError::new(502, "The runner holding the snapshot's logs did not answer")
    })?;
    let (parts, body) = resp.into_parts();
    let mut r = http::Response::new(body);
    *r.status_mut() = parts.status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.into_response().map_err(|e| {
        tracing::warn!(error = ?e, "could not answer");
        ApiError::internal()
    })
}
