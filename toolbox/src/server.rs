//! Daemon state, request extractors and the listeners (the routes are in [`crate::routes`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::{Result, ToolboxError};
use crate::paths::Paths;
pub use crate::routes::router;
use crate::{interpreter, lsp, sessions};

/// Shared state of every handler.
pub struct AppState {
    pub paths: Paths,
    /// Shell used for commands that need one (zsh, bash or sh: first available).
    pub shell: PathBuf,
    pub sessions: sessions::Sessions,
    pub lsp: lsp::LspManager,
    /// Code interpreter contexts (`/process/interpreter/*`).
    pub interpreters: interpreter::Interpreters,
    /// Terminal sessions (`/process/pty*`).
    pub pty: crate::pty::PtyManager,
    pub token: std::sync::Mutex<Option<String>>,
    /// The daemon's private scratch dir (session FIFOs, upload parts waiting for their path).
    pub state_dir: PathBuf,
    /// Work in progress ([`crate::busy`]).
    pub activity: crate::busy::Activity,
    /// `POST /env`'s changes to the environment of the processes started from now on.
    pub env: Arc<crate::env::ProcessEnv>,
    /// CPU samples of `GET /system/metrics`.
    pub metrics: crate::system::Sampler,
}

impl AppState {
    pub fn new(paths: Paths, state_dir: PathBuf) -> Arc<Self> {
        let shell = find_shell(&["zsh", "bash", "sh"]);
        let session_shell = find_shell(&["bash", "sh"]);
        let cwd = paths.work_dir_real();
        let env = Arc::new(crate::env::ProcessEnv::default());
        Arc::new(Self {
            sessions: sessions::Sessions::new(
                state_dir.clone(),
                session_shell.clone(),
                cwd,
                env.clone(),
            ),
            interpreters: interpreter::Interpreters::new(
                state_dir.clone(),
                paths.work_dir_real(),
                paths.work_dir_virtual(),
                env.clone(),
            ),
            pty: crate::pty::PtyManager::new(session_shell, env.clone()),
            env,
            metrics: crate::system::Sampler::default(),
            state_dir,
            lsp: lsp::LspManager::default(),
            paths,
            shell,
            token: std::sync::Mutex::new(None),
            activity: crate::busy::Activity::default(),
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

/// Largest JSON request body, on every JSON route: a longer one is `413` in the daemon's
/// envelope, and its bytes past the limit are never kept. Multipart uploads are streamed and not
/// limited.
pub const JSON_BODY_LIMIT: usize = 8 << 20;

/// An over-long body is read on (and discarded) up to this many bytes, so that the client gets
/// the 413 instead of a broken pipe; past it (or with a longer `Content-Length`) the daemon
/// answers at once and the connection is dropped.
const DISCARD_LIMIT: u64 = 64 << 20;

/// The body, up to [`JSON_BODY_LIMIT`] bytes.
async fn read_json_body(mut body: axum::body::Body) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ToolboxError::InvalidBody(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > DISCARD_LIMIT {
            break;
        }
        if seen <= JSON_BODY_LIMIT as u64 {
            buf.extend_from_slice(&data);
        } else {
            buf = BytesMut::new();
        }
    }
    if seen > JSON_BODY_LIMIT as u64 {
        return Err(ToolboxError::PayloadTooLarge(JSON_BODY_LIMIT));
    }
    Ok(buf.freeze())
}

/// JSON body whose failures are `400 INVALID_REQUEST_BODY`, or `413` beyond
/// [`JSON_BODY_LIMIT`] (content type is not enforced).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ToolboxError;

    async fn from_request(req: Request, _state: &S) -> Result<Self> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > DISCARD_LIMIT) {
            return Err(ToolboxError::PayloadTooLarge(JSON_BODY_LIMIT));
        }
        let bytes = read_json_body(req.into_body()).await?;
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
        tracing::info!(socket = ?path, "listening");
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
