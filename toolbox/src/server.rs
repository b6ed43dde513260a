//! Daemon state, request extractors, the router and the listeners.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::routing::{get, post};
use bytes::Bytes;
use cove_api_types::toolbox::{DirResponse, InitializeRequest};
use serde::de::DeserializeOwned;

use crate::error::{Result, ToolboxError};
use crate::paths::Paths;
use crate::{files, git, lsp, process, sessions};

/// Shared state of every handler.
pub struct AppState {
    pub paths: Paths,
    /// Shell used for commands that need one (zsh, bash or sh: first available).
    pub shell: PathBuf,
    pub sessions: sessions::Sessions,
    pub lsp: lsp::LspManager,
    pub token: std::sync::Mutex<Option<String>>,
}

impl AppState {
    pub fn new(paths: Paths, state_dir: PathBuf) -> Arc<Self> {
        let shell = find_shell(&["zsh", "bash", "sh"]);
        let session_shell = find_shell(&["bash", "sh"]);
        let cwd = paths.work_dir_real();
        Arc::new(Self {
            sessions: sessions::Sessions::new(state_dir, session_shell, cwd),
            lsp: lsp::LspManager::default(),
            paths,
            shell,
            token: std::sync::Mutex::new(None),
        })
    }
}

fn find_shell(names: &[&str]) -> PathBuf {
    for name in names {
        for dir in ["/bin", "/usr/bin", "/usr/local/bin"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("/bin/sh")
}

/// JSON body whose failures are `400 INVALID_REQUEST_BODY` (content type is not enforced).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ToolboxError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ToolboxError::InvalidBody(e.body_text()))?;
        let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(slice)
            .map(JsonBody)
            .map_err(|e| ToolboxError::InvalidBody(e.to_string()))
    }
}

/// Query string whose failures are `400 BAD_REQUEST`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ToolboxError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ToolboxError::BadRequest(e.body_text()))
    }
}

async fn work_dir(st: axum::extract::State<Arc<AppState>>) -> Json<DirResponse> {
    Json(DirResponse {
        dir: st.paths.work_dir_virtual(),
    })
}

async fn home_dir(st: axum::extract::State<Arc<AppState>>) -> Json<DirResponse> {
    Json(DirResponse {
        dir: st.paths.home_dir_virtual(),
    })
}

async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }))
}

async fn init(
    st: axum::extract::State<Arc<AppState>>,
    JsonBody(req): JsonBody<InitializeRequest>,
) -> Json<serde_json::Value> {
    if let Ok(mut t) = st.token.lock() {
        *t = req.token;
    }
    Json(serde_json::json!({}))
}

async fn not_found(req: Request) -> ToolboxError {
    ToolboxError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// Every toolbox route (CONTRACT §10).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/init", post(init).get(init))
        .route("/work-dir", get(work_dir))
        .route("/project-dir", get(work_dir))
        .route("/user-home-dir", get(home_dir))
        // files
        .route("/files", get(files::list).delete(files::delete))
        .route("/files/info", get(files::info))
        .route("/files/folder", post(files::folder))
        .route("/files/move", post(files::move_file))
        .route("/files/permissions", post(files::permissions))
        .route("/files/find", get(files::find))
        .route("/files/search", get(files::search))
        .route("/files/replace", post(files::replace))
        .route("/files/download", get(files::download))
        .route("/files/upload", post(files::upload))
        .route("/files/upload-v2", post(files::upload))
        .route("/files/bulk-upload", post(files::bulk_upload))
        .route("/files/bulk-download", post(files::bulk_download))
        // process
        .route("/process/execute", post(process::execute))
        .route("/process/code-run", post(process::code_run))
        .route(
            "/process/session",
            post(sessions::create).get(sessions::list),
        )
        .route("/process/session/entrypoint", get(sessions::entrypoint))
        .route(
            "/process/session/entrypoint/logs",
            get(sessions::entrypoint_logs),
        )
        .route(
            "/process/session/{sid}",
            get(sessions::get).delete(sessions::remove),
        )
        .route("/process/session/{sid}/exec", post(sessions::exec))
        .route(
            "/process/session/{sid}/command/{cid}",
            get(sessions::command),
        )
        .route(
            "/process/session/{sid}/command/{cid}/logs",
            get(sessions::logs),
        )
        .route(
            "/process/session/{sid}/command/{cid}/input",
            post(sessions::input),
        )
        // git
        .route("/git/clone", post(git::clone))
        .route("/git/init", post(git::init))
        .route("/git/add", post(git::add))
        .route("/git/commit", post(git::commit))
        .route("/git/status", get(git::status))
        .route(
            "/git/branches",
            get(git::branches)
                .post(git::create_branch)
                .delete(git::delete_branch),
        )
        .route("/git/checkout", post(git::checkout))
        .route("/git/history", get(git::history))
        .route("/git/log", get(git::history))
        .route("/git/pull", post(git::pull))
        .route("/git/push", post(git::push))
        // lsp
        .route("/lsp/start", post(lsp::start))
        .route("/lsp/stop", post(lsp::stop))
        .route("/lsp/did-open", post(lsp::did_open))
        .route("/lsp/did-close", post(lsp::did_close))
        .route("/lsp/completions", post(lsp::completions))
        .route("/lsp/document-symbols", get(lsp::document_symbols))
        .route("/lsp/workspacesymbols", get(lsp::workspace_symbols))
        .route("/lsp/workspace-symbols", get(lsp::workspace_symbols))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(crate::error::error_envelope))
        .layer(axum::middleware::from_fn(read_request_to_end))
        .with_state(state)
}

/// What [`read_request_to_end`] reads at most of a body its handler left, and for how long.
const DRAIN_LIMIT: usize = 8 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

type FrameResult = std::result::Result<hyper::body::Frame<Bytes>, axum::Error>;

/// Reads the rest of a request body that its handler stopped reading (a multipart upload is
/// done at its closing boundary, before the end of a chunked body; an error answers early)
/// before the response goes out. Otherwise hyper gives up on the connection and closes it while
/// the client still writes the end of the body: the client (the runner agent) then sees a
/// broken pipe instead of the answer, although the request was carried out.
async fn read_request_to_end(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel::<FrameResult>(2);
    let weak = tx.downgrade();
    let pump = tokio::spawn(pump_body(body, tx));
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let inner = axum::body::Body::new(http_body_util::StreamBody::new(frames));
    let resp = next.run(Request::from_parts(parts, inner)).await;
    // Wait only when the handler is done with the body (a handler still holding it may read
    // it while its response streams).
    let handler_done = weak.upgrade().is_some_and(|tx| tx.is_closed());
    if handler_done && tokio::time::timeout(DRAIN_TIME, pump).await.is_err() {
        tracing::debug!("request body not finished within the drain time");
    }
    resp
}

/// Passes the body's frames to the handler; once the handler drops its end, reads on (up to
/// [`DRAIN_LIMIT`] bytes) to the end of the body.
async fn pump_body(mut body: axum::body::Body, tx: tokio::sync::mpsc::Sender<FrameResult>) {
    use http_body_util::BodyExt;
    let mut drained = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let unsent = match tx.send(Ok(frame)).await {
            Ok(()) => continue,
            Err(tokio::sync::mpsc::error::SendError(unsent)) => unsent,
        };
        drained += unsent
            .ok()
            .and_then(|f| f.into_data().ok())
            .map_or(0, |d| d.len());
        if drained > DRAIN_LIMIT {
            return;
        }
    }
}

/// Serves `router` on a unix socket and/or TCP until `shutdown` resolves.
pub async fn serve(
    router: Router,
    socket: Option<&Path>,
    listen: Option<SocketAddr>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(path) = socket {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        tracing::info!(socket = %path.display(), "listening");
        let mut rx = tx.subscribe();
        let app = router.clone();
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.recv().await;
                })
                .await
        });
    }
    if let Some(addr) = listen {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        let mut rx = tx.subscribe();
        tasks.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.recv().await;
                })
                .await
        });
    }
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    while let Some(res) = tasks.join_next().await {
        res.map_err(std::io::Error::other)??;
    }
    Ok(())
}
