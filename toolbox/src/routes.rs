//! The route table: each line `method "/path" => handler;` gives the router its route and, with
//! the `openapi` feature, the document its operation (the handler's `#[utoipa::path]`).
//!
//! Adding an endpoint touches this table and its handler (with its attribute); the tests of
//! `toolbox/openapi` fail when the table, the router and the document disagree.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};

use crate::error::ToolboxError;
use crate::server::AppState;
use crate::{
    busy, env, files, git, git_ext, info, interpreter, lsp, process, pty, sessions, system,
};

macro_rules! route_table {
    ($($method:ident $path:literal => $($handler:ident)::+;)+) => {
        /// Every `(method, path)` the router serves, e.g. `("get", "/files")`.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),+];

        // Legacy aliases are `#[deprecated]` (so the document marks them) but still served.
        #[allow(deprecated)]
        fn add_routes(router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
            router$(.route($path, axum::routing::$method($($handler)::+)))+
        }

        /// The operations of the OpenAPI document, one per table line.
        #[cfg(feature = "openapi")]
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($($handler)::+),+))]
        pub struct Operations;
    };
}

route_table! {
    get "/version" => info::version;
    get "/activity" => busy::activity;
    post "/init" => info::init;
    get "/init" => info::init_legacy;
    get "/work-dir" => info::work_dir;
    get "/project-dir" => info::project_dir;
    get "/user-home-dir" => info::home_dir;
    post "/env" => env::update;
    // the sandbox's resources and ports
    get "/system/metrics" => system::metrics;
    get "/port" => system::ports;
    get "/port/{port}/in-use" => system::port_in_use;
    // files (CONTRACT §10, §10.1, §10.2)
    get "/files" => files::list;
    delete "/files" => files::delete;
    get "/files/info" => files::info;
    post "/files/folder" => files::folder;
    post "/files/move" => files::move_file;
    post "/files/permissions" => files::permissions;
    get "/files/find" => files::find;
    get "/files/search" => files::search;
    post "/files/replace" => files::replace;
    get "/files/download" => files::download;
    post "/files/upload-v2" => files::upload;
    post "/files/upload" => files::upload_legacy;
    post "/files/bulk-upload" => files::bulk_upload;
    post "/files/bulk-download" => files::bulk_download;
    // process and sessions (§10.3, §10.4)
    post "/process/execute" => process::execute;
    post "/process/code-run" => process::code_run;
    post "/process/session" => sessions::create;
    get "/process/session" => sessions::list;
    get "/process/session/entrypoint" => sessions::entrypoint;
    get "/process/session/entrypoint/logs" => sessions::entrypoint_logs;
    get "/process/session/{sessionId}" => sessions::get;
    delete "/process/session/{sessionId}" => sessions::remove;
    post "/process/session/{sessionId}/exec" => sessions::exec;
    get "/process/session/{sessionId}/command/{commandId}" => sessions::command;
    get "/process/session/{sessionId}/command/{commandId}/logs" => sessions::logs;
    post "/process/session/{sessionId}/command/{commandId}/input" => sessions::input;
    // code interpreter
    post "/process/interpreter/context" => interpreter::create_context;
    get "/process/interpreter/context" => interpreter::list_contexts;
    delete "/process/interpreter/context/{id}" => interpreter::delete_context;
    get "/process/interpreter/execute" => interpreter::execute;
    // terminals (§10)
    post "/process/pty" => pty::create;
    get "/process/pty" => pty::list;
    get "/process/pty/create-connect" => pty::create_connect;
    get "/process/pty/{sessionId}" => pty::get;
    delete "/process/pty/{sessionId}" => pty::remove;
    post "/process/pty/{sessionId}/resize" => pty::resize;
    get "/process/pty/{sessionId}/connect" => pty::connect;
    // git (§10.5)
    post "/git/clone" => git::clone;
    post "/git/init" => git::init;
    post "/git/add" => git::add;
    post "/git/commit" => git::commit;
    get "/git/status" => git::status;
    get "/git/branches" => git::branches;
    post "/git/branches" => git::create_branch;
    delete "/git/branches" => git::delete_branch;
    post "/git/checkout" => git::checkout;
    get "/git/history" => git::history;
    get "/git/log" => git::log;
    post "/git/pull" => git::pull;
    post "/git/push" => git::push;
    get "/git/config" => git_ext::get_config;
    post "/git/config" => git_ext::set_config;
    post "/git/config/user" => git_ext::configure_user;
    post "/git/credentials" => git_ext::authenticate;
    get "/git/remotes" => git_ext::remotes;
    post "/git/remotes" => git_ext::add_remote;
    post "/git/reset" => git_ext::reset;
    post "/git/restore" => git_ext::restore;
    // lsp (§10.6)
    post "/lsp/start" => lsp::start;
    post "/lsp/stop" => lsp::stop;
    post "/lsp/did-open" => lsp::did_open;
    post "/lsp/did-close" => lsp::did_close;
    post "/lsp/completions" => lsp::completions;
    get "/lsp/document-symbols" => lsp::document_symbols;
    get "/lsp/workspacesymbols" => lsp::workspace_symbols;
    get "/lsp/workspace-symbols" => lsp::workspace_symbols_alias;
}

/// The message of the fallback's 404, which no handler uses.
pub const NO_ROUTE: &str = "no route for";

async fn not_found(req: Request) -> ToolboxError {
    ToolboxError::NotFound(format!("{NO_ROUTE} {} {}", req.method(), req.uri().path()))
}

/// Every toolbox route (CONTRACT §10), errors in the daemon's envelope, request bodies read to
/// their end ([`crate::drain`]).
pub fn router(state: Arc<AppState>) -> Router {
    let table = add_routes(Router::new())
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(crate::error::error_envelope))
        .layer(axum::middleware::from_fn(crate::drain::read_request_to_end))
        .with_state(state);
    // Preview port forwarding: streamed as is, outside the table's layers.
    crate::ports::router().merge(table)
}
