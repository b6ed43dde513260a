//! `/process/interpreter/*`: stateful Python contexts, what the SDKs' `code_interpreter` uses.
//!
//! A context is one long-lived `python3` process running the driver `driver.py`: cells run in
//! one persistent namespace, so variables, imports and functions carry over between executions;
//! contexts are separate processes, so they share nothing. The *default* context
//! ([`DEFAULT_CONTEXT_ID`]) exists without a create: the SDKs use it when they pass no context;
//! it starts on first use, is not listed and cannot be deleted.
//!
//! `GET /process/interpreter/execute` is a websocket: the client sends one JSON request, the
//! daemon streams the output as it comes and closes (the protocol is in [`execute`]).
//!
//! Bounds: at most [`MAX_CONTEXTS`] user contexts (then 409); one execution at a time per
//! context, at most [`MAX_QUEUED`] waiting behind it (then close 1013); an execution ends at its
//! timeout (SIGINT, then after 2 s SIGKILL of the process group and a fresh interpreter on next
//! use); a client that goes away interrupts its execution the same way; output is forwarded
//! with backpressure, so at most about 1 MiB of it waits in the daemon per execution.

mod execute;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
pub use cove_api_types::toolbox::interpreter::DEFAULT_CONTEXT_ID;
use cove_api_types::toolbox::interpreter::{
    CreateContextRequest, DeleteContextResponse, InterpreterContext, LANGUAGE_PYTHON,
    ListContextsResponse,
};
use tokio::sync::watch;

use self::worker::{Worker, WorkerError};
#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
use crate::server::{AppState, JsonBody};

/// Most user-created contexts alive at once (the default one is not counted).
pub const MAX_CONTEXTS: usize = 32;
/// Most executions waiting for a busy context.
pub const MAX_QUEUED: usize = 16;

/// One interpreter context.
pub struct Context {
    pub id: String,
    cwd_real: PathBuf,
    cwd_virtual: String,
    created_at: String,
    /// The interpreter, `None` until started (or after it died or was killed). Held for the
    /// whole of an execution: executions of one context run one at a time, in arrival order.
    worker: tokio::sync::Mutex<Option<Worker>>,
    /// Executions waiting for `worker`.
    waiting: AtomicUsize,
    /// Set once the context is deleted: its running execution stops, waiting ones give up.
    deleted: watch::Sender<bool>,
}

impl Context {
    fn new(id: String, cwd_real: PathBuf, cwd_virtual: String) -> Self {
        Self {
            id,
            cwd_real,
            cwd_virtual,
            created_at: crate::error::now_rfc3339(),
            worker: tokio::sync::Mutex::new(None),
            waiting: AtomicUsize::new(0),
            deleted: watch::Sender::new(false),
        }
    }

    /// Whether its interpreter runs (a context in the middle of an execution does).
    fn active(&self) -> bool {
        match self.worker.try_lock() {
            Ok(mut w) => w.as_mut().is_some_and(Worker::alive),
            Err(_) => true,
        }
    }

    fn dto(&self) -> InterpreterContext {
        InterpreterContext {
            id: self.id.clone(),
            cwd: self.cwd_virtual.clone(),
            created_at: self.created_at.clone(),
            active: self.active(),
            language: LANGUAGE_PYTHON.to_owned(),
        }
    }
}

/// Every context of the daemon.
pub struct Interpreters {
    contexts: Mutex<HashMap<String, Arc<Context>>>,
    /// Where the results FIFOs live (the daemon's state dir).
    state_dir: PathBuf,
    /// The default context's dir (the work dir), real and as the client sees it.
    default_cwd: (PathBuf, String),
    python: PathBuf,
    fifos: AtomicU64,
    /// `POST /env`'s changes, applied to each interpreter started afterwards.
    env: Arc<crate::env::ProcessEnv>,
}

impl Interpreters {
    pub fn new(
        state_dir: PathBuf,
        work_dir_real: PathBuf,
        work_dir_virtual: String,
        env: Arc<crate::env::ProcessEnv>,
    ) -> Self {
        Self {
            env,
            contexts: Mutex::new(HashMap::new()),
            state_dir,
            default_cwd: (work_dir_real, work_dir_virtual),
            python: PathBuf::from("python3"),
            fifos: AtomicU64::new(0),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Context>>> {
        self.contexts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn user_contexts(map: &HashMap<String, Arc<Context>>) -> usize {
        map.keys().filter(|k| *k != DEFAULT_CONTEXT_ID).count()
    }

    fn full() -> ToolboxError {
        ToolboxError::Conflict(format!(
            "too many interpreter contexts (at most {MAX_CONTEXTS}): delete one first"
        ))
    }

    /// Starts a new interpreter for `ctx`.
    async fn spawn_worker(&self, ctx: &Context) -> Result<Worker, WorkerError> {
        std::fs::create_dir_all(&self.state_dir).map_err(|source| WorkerError::Io {
            context: "creating the state dir",
            source,
        })?;
        let n = self.fifos.fetch_add(1, Ordering::Relaxed);
        let fifo = self.state_dir.join(format!("interpreter-{n}.fifo"));
        let worker = Worker::spawn(&self.python, &ctx.cwd_real, fifo, &self.env).await?;
        tracing::debug!(context = %ctx.id, pid = ?worker.pid(), version = %worker.version, "interpreter context started");
        Ok(worker)
    }

    /// Creates a context in `cwd` and starts its interpreter.
    pub async fn create(&self, cwd_real: PathBuf, cwd_virtual: String) -> Result<Arc<Context>> {
        if Self::user_contexts(&self.map()) >= MAX_CONTEXTS {
            return Err(Self::full());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let ctx = Arc::new(Context::new(id, cwd_real, cwd_virtual));
        let worker = self
            .spawn_worker(&ctx)
            .await
            .map_err(|e| ToolboxError::Internal(format!("cannot start the interpreter: {e}")))?;
        *ctx.worker.lock().await = Some(worker);
        let mut map = self.map();
        if Self::user_contexts(&map) >= MAX_CONTEXTS {
            return Err(Self::full());
        }
        map.insert(ctx.id.clone(), Arc::clone(&ctx));
        Ok(ctx)
    }

    /// The context `id` (the default one for [`DEFAULT_CONTEXT_ID`] or an empty id).
    pub fn get(&self, id: Option<&str>) -> Option<Arc<Context>> {
        let mut map = self.map();
        match id {
            None | Some("" | DEFAULT_CONTEXT_ID) => {
                let ctx = map.entry(DEFAULT_CONTEXT_ID.to_owned()).or_insert_with(|| {
                    let (real, virt) = self.default_cwd.clone();
                    Arc::new(Context::new(DEFAULT_CONTEXT_ID.to_owned(), real, virt))
                });
                Some(Arc::clone(ctx))
            }
            Some(id) => map.get(id).cloned(),
        }
    }

    /// The user-created contexts, oldest first.
    pub fn list(&self) -> Vec<InterpreterContext> {
        let contexts: Vec<Arc<Context>> = self
            .map()
            .values()
            .filter(|c| c.id != DEFAULT_CONTEXT_ID)
            .cloned()
            .collect();
        let mut out: Vec<InterpreterContext> = contexts.iter().map(|c| c.dto()).collect();
        out.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        out
    }

    /// Deletes a user context and kills its interpreter (a running execution ends at once).
    pub fn delete(&self, id: &str) -> Result<()> {
        if id == DEFAULT_CONTEXT_ID {
            return Err(ToolboxError::BadRequest(
                "cannot delete the default context".into(),
            ));
        }
        let ctx = self
            .map()
            .remove(id)
            .ok_or_else(|| ToolboxError::NotFound(format!("context not found: {id}")))?;
        ctx.deleted.send_replace(true);
        // Idle: kill it here; busy: the execution sees `deleted` and kills it.
        if let Ok(mut w) = ctx.worker.try_lock() {
            w.take();
        }
        tracing::debug!(context = %id, "interpreter context deleted");
        Ok(())
    }

    /// Kills every interpreter (the daemon is stopping).
    pub fn shutdown(&self) {
        let all: Vec<Arc<Context>> = self.map().drain().map(|(_, c)| c).collect();
        for ctx in all {
            ctx.deleted.send_replace(true);
            if let Ok(mut w) = ctx.worker.try_lock() {
                w.take();
            }
        }
    }
}

type St = State<Arc<AppState>>;

/// `POST /process/interpreter/context`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/process/interpreter/context",
    tag = "interpreter",
    operation_id = "CreateInterpreterContext",
    summary = "Create an interpreter context",
    description = "Starts an isolated Python interpreter; `cwd` defaults to the work dir, `language` to `python` (the only one). At most 32 contexts (409 beyond).",
    request_body = CreateContextRequest,
    responses((status = 200, description = "The new context", body = InterpreterContext), DaemonErrors)
))]
pub async fn create_context(
    State(st): St,
    JsonBody(req): JsonBody<CreateContextRequest>,
) -> Result<Json<InterpreterContext>> {
    if let Some(lang) = req.language.as_deref().filter(|l| *l != LANGUAGE_PYTHON) {
        return Err(ToolboxError::BadRequest(format!(
            "unsupported language: {lang} (only '{LANGUAGE_PYTHON}' is supported)"
        )));
    }
    let cwd = st.paths.resolve_or_work_dir(req.cwd.as_deref())?;
    if !cwd.is_dir() {
        return Err(ToolboxError::BadRequest(format!(
            "working directory does not exist: {}",
            req.cwd.unwrap_or_default()
        )));
    }
    let virt = st.paths.to_virtual(&cwd);
    let ctx = st.interpreters.create(cwd, virt).await?;
    Ok(Json(ctx.dto()))
}

/// `GET /process/interpreter/context`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/interpreter/context",
    tag = "interpreter",
    operation_id = "ListInterpreterContexts",
    summary = "List the user-created interpreter contexts",
    description = "Every context made with a create, oldest first; never the default context.",
    responses((status = 200, description = "The contexts", body = ListContextsResponse), DaemonErrors)
))]
pub async fn list_contexts(State(st): St) -> Json<ListContextsResponse> {
    Json(ListContextsResponse {
        contexts: st.interpreters.list(),
    })
}

/// `DELETE /process/interpreter/context/{id}`
#[cfg_attr(feature = "openapi", utoipa::path(
    delete,
    path = "/process/interpreter/context/{id}",
    tag = "interpreter",
    operation_id = "DeleteInterpreterContext",
    summary = "Delete an interpreter context",
    description = "Kills the context's interpreter (and what it started); its running execution ends with close 1001. The default context cannot be deleted (400).",
    params(("id" = String, Path, description = "The context id")),
    responses((status = 200, description = "Deleted", body = DeleteContextResponse), DaemonErrors)
))]
pub async fn delete_context(
    State(st): St,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<DeleteContextResponse>> {
    st.interpreters.delete(&id)?;
    Ok(Json(DeleteContextResponse {
        message: "Context deleted successfully".into(),
    }))
}

/// `GET /process/interpreter/execute` (websocket)
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/process/interpreter/execute",
    tag = "interpreter",
    operation_id = "ExecuteInterpreterCode",
    summary = "Run code in an interpreter context (websocket)",
    description = "After the upgrade the client sends one JSON text message `InterpreterExecuteRequest`; the daemon answers with `InterpreterChunk` messages (`stdout`/`stderr` as produced, `error` for an exception, `control` `completed` at the end) and closes with 1000. Timeout: close 4008 (after an `error` `TimeoutError`). Bad request: close 1002 (not JSON) or 1008 (no code, negative timeout, unknown context).",
    responses((status = 101, description = "Switching protocols"), DaemonErrors)
))]
pub async fn execute(
    State(st): St,
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let ws = ws.map_err(|e| {
        ToolboxError::BadRequest(format!("this route is a websocket: {}", e.body_text()))
    })?;
    Ok(ws
        .max_message_size(execute::MAX_REQUEST_BYTES)
        .max_frame_size(execute::MAX_REQUEST_BYTES)
        .on_upgrade(move |socket| execute::serve(st, socket))
        .into_response())
}
