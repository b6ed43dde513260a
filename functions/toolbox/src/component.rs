//! The Spin component: resolves the call like the native handler, then streams.
//!
//! `cove_edge::spin::serve` buffers whole bodies (fine for JSON routes, wrong for file transfer),
//! so this entry point talks to spin-sdk 7 directly: the incoming request's body stream becomes
//! the outgoing request's body and the runner's response body stream becomes this component's
//! response body. Nothing is collected in memory.

use bytes::Bytes;
use cove_api_types::ApiError;
use cove_edge::web::error_response;
use http_body_util::Full;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use spin_sdk::wasip3::http::types::{ErrorCode, Response as WasiResponse};

use crate::service;

fn error(path: &str, e: &ApiError) -> Result<WasiResponse, ErrorCode> {
    error_response(path, e).map(Full::new).into_response()
}

#[http_service]
async fn handle(req: Request) -> Result<WasiResponse, ErrorCode> {
    cove_edge::init_tracing();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    // What `resolve` reads: method, URI and headers; the body stays a stream.
    let mut head = http::Request::new(Bytes::new());
    *head.method_mut() = parts.method.clone();
    *head.uri_mut() = parts.uri.clone();
    *head.headers_mut() = parts.headers.clone();

    let env = match cove_edge::spin::instance_env().await {
        Ok(env) => env,
        Err(e) => return error(&path, &e),
    };
    let fwd = match service::resolve(&env, &head).await {
        Ok(f) => f,
        Err(e) => return error(&path, &e),
    };
    let mut out = match http::Request::builder()
        .method(parts.method)
        .uri(&fwd.url)
        .body(body)
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, url = %fwd.url, "invalid runner URL");
            return error(&path, &ApiError::bad_request("Invalid toolbox path"));
        }
    };
    *out.headers_mut() = fwd.headers.clone();
    let resp = match spin_sdk::http::send(out).await {
        Ok(r) => r,
        Err(e) => return error(&path, &crate::routes::unreachable_runner(&fwd, &e)),
    };
    let (parts, body) = resp.into_parts();
    let mut r = http::Response::new(body);
    *r.status_mut() = parts.status;
    *r.headers_mut() = service::response_headers(&parts.headers);
    r.into_response()
}
