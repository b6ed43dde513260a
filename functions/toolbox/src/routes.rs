//! The buffered (native) handler and the OpenAPI fragment.
//!
//! The component streams bodies (see `component` in `lib.rs`); this handler forwards through
//! `cove_edge::outbound` with whole bodies, which is what native tests and tools need.

use cove_api_types::ApiError;
use cove_edge::Env;
use cove_edge::web::{self, Answer, Request, Response};

use crate::service::{self, Forward};

/// Serves one toolbox request with buffered bodies.
pub async fn handle(env: &Env, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    web::respond(&path, proxy(env, req).await)
}

async fn proxy(env: &Env, req: Request) -> Answer {
    let fwd = service::resolve(env, &req).await?;
    let (parts, body) = req.into_parts();
    let mut out = http::Request::builder()
        .method(parts.method)
        .uri(&fwd.url)
        .body(body)
        .map_err(|e| {
            tracing::warn!(error = %e, url = %fwd.url, "invalid runner URL");
            ApiError::bad_request("Invalid toolbox path")
        })?;
    *out.headers_mut() = fwd.headers.clone();
    let resp = cove_edge::outbound::send(out)
        .await
        .map_err(|e| unreachable_runner(&fwd, &e))?;
    let (parts, body) = resp.into_parts();
    let mut r = Response::new(body);
    *r.status_mut() = parts.status;
    *r.headers_mut() = service::response_headers(&parts.headers);
    Ok(r)
}

/// The 502 of a runner that did not answer.
pub fn unreachable_runner(fwd: &Forward, e: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, sandbox = %fwd.sandbox_id, runner = %fwd.runner_id, "runner unreachable");
    ApiError::new(502, "The sandbox's runner did not answer")
}

/// The body of a toolbox error: the control plane's envelope (401/403/404 and the proxy's own
/// 400/502/503) or, for everything the daemon itself answers, the daemon's envelope
/// (`source: DAYTONA_DAEMON`, CONTRACT §2), passed through unchanged.
#[allow(dead_code)]
struct ToolboxErrorBody;

impl utoipa::PartialSchema for ToolboxErrorBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::AnyOfBuilder;
        use utoipa::openapi::{Ref, RefOr};
        RefOr::T(
            AnyOfBuilder::new()
                .item(Ref::from_schema_name("ErrorEnvelope"))
                .item(Ref::from_schema_name("DaemonErrorResponse"))
                .into(),
        )
    }
}

impl utoipa::ToSchema for ToolboxErrorBody {}

/// A toolbox call's answers: whatever the daemon answers (any 2xx, 4xx or 5xx with its body),
/// plus the proxy's own errors (401, 403, 404 for another organization's sandbox, 400 for a
/// sandbox that is not started, 502/503 for an unreachable runner).
struct ToolboxResponses;

impl utoipa::IntoResponses for ToolboxResponses {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        use utoipa::openapi::content::ContentBuilder;
        use utoipa::openapi::response::ResponseBuilder;
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(<ToolboxErrorBody as utoipa::PartialSchema>::schema()))
                        .build(),
                )
                .build()
                .into()
        };
        [
            (
                "2XX".to_owned(),
                ResponseBuilder::new()
                    .description("The daemon's answer, passed through (CONTRACT §10)")
                    .build()
                    .into(),
            ),
            (
                "4XX".to_owned(),
                error(
                    "The proxy's refusal (Daytona's envelope) or the daemon's error (its envelope)",
                ),
            ),
            (
                "5XX".to_owned(),
                error("An unreachable runner (502/503, Daytona's envelope) or the daemon's error"),
            ),
        ]
        .into()
    }
}

#[utoipa::path(method(get, post, put, delete), path = "/toolbox/{sandboxId}/{path}",
    operation_id = "toolbox_proxy", tag = "toolbox",
    description = "Forwards a toolbox call (CONTRACT §10) to the sandbox's daemon. `path` is the \
        toolbox path and may contain `/` (e.g. `process/execute`). Bodies are streamed both ways. \
        WebSocket upgrades (session logs with `follow=true`, PTY, interpreter) are refused with 400.",
    params(("sandboxId" = String, Path, description = "Sandbox id"),
        ("path" = String, Path, description = "Toolbox path, e.g. `process/execute`")),
    responses(ToolboxResponses),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn toolbox_proxy() {}

#[utoipa::path(method(get, post, put, delete), path = "/api/toolbox/{sandboxId}/toolbox/{path}",
    operation_id = "toolbox_proxy_deprecated", tag = "toolbox",
    description = "Deprecated alias of `/toolbox/{sandboxId}/{path}` used by older SDKs.",
    params(("sandboxId" = String, Path, description = "Sandbox id"),
        ("path" = String, Path, description = "Toolbox path, e.g. `process/execute`")),
    responses(ToolboxResponses),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn toolbox_proxy_deprecated() {}

/// The OpenAPI fragment of this function.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(toolbox_proxy, toolbox_proxy_deprecated),
    components(schemas(cove_api_types::toolbox::DaemonErrorResponse))
)]
pub struct ApiDoc;
