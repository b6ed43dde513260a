//! `/version`, `/init`, `/work-dir`, `/user-home-dir` (and their legacy aliases).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use cove_api_types::toolbox::{
    DirResponse, InitializeRequest, InitializeResponse, VersionResponse,
};

#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::server::{AppState, JsonBody};

type St = State<Arc<AppState>>;

/// The daemon's version
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/version", tag = "info",
    operation_id = "GetVersion",
    responses((status = 200, description = "`{version}`", body = VersionResponse), DaemonErrors)))]
pub async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// Takes the runner's token
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/init", tag = "server",
    operation_id = "Initialize", request_body = InitializeRequest,
    responses((status = 200, description = "`{}`", body = InitializeResponse), DaemonErrors)))]
pub async fn init(
    State(st): St,
    JsonBody(req): JsonBody<InitializeRequest>,
) -> Json<InitializeResponse> {
    if let Ok(mut t) = st.token.lock() {
        *t = req.token;
    }
    Json(InitializeResponse {})
}

/// Takes the runner's token (legacy `GET` form of `POST /init`)
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/init", tag = "server",
    operation_id = "InitializeLegacy", request_body = InitializeRequest,
    responses((status = 200, description = "`{}`", body = InitializeResponse), DaemonErrors)))]
#[deprecated = "route alias: the legacy `GET` form of `POST /init`"]
pub async fn init_legacy(st: St, body: JsonBody<InitializeRequest>) -> Json<InitializeResponse> {
    init(st, body).await
}

/// The work dir: relative paths and commands start there
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/work-dir", tag = "info",
    operation_id = "GetWorkDir",
    responses((status = 200, body = DirResponse), DaemonErrors)))]
pub async fn work_dir(State(st): St) -> Json<DirResponse> {
    Json(DirResponse {
        dir: st.paths.work_dir_virtual(),
    })
}

/// The work dir (legacy name of `/work-dir`)
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/project-dir", tag = "info",
    operation_id = "GetProjectDir",
    responses((status = 200, body = DirResponse), DaemonErrors)))]
#[deprecated = "route alias: the legacy name of `/work-dir`"]
pub async fn project_dir(st: St) -> Json<DirResponse> {
    work_dir(st).await
}

/// The sandbox user's home dir
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/user-home-dir", tag = "info",
    operation_id = "GetUserHomeDir",
    responses((status = 200, body = DirResponse), DaemonErrors)))]
pub async fn home_dir(State(st): St) -> Json<DirResponse> {
    Json(DirResponse {
        dir: st.paths.home_dir_virtual(),
    })
}
