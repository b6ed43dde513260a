//! `/lsp/*`: drives real language servers (`pylsp`, `typescript-language-server --stdio`) over
//! stdio JSON-RPC, one per (language, project).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cove_api_types::toolbox::{
    CompletionItem, CompletionList, LspCompletionParams, LspDocumentRequest, LspLocation,
    LspPosition, LspRange, LspServerRequest, LspSymbol,
};
use percent_encoding::{AsciiSet, CONTROLS};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
use crate::paths::Paths;
use crate::server::{AppState, JsonBody, QueryParams};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const PATH_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<std::result::Result<Value, Value>>>>>;

/// Most open documents a server's [`LspClient::open_docs`] remembers; past it the oldest is
/// forgotten (the server keeps it open; only the workspace-symbol fallback stops searching it).
pub const MAX_TRACKED_DOCS: usize = 256;

/// One running language server.
pub struct LspClient {
    stdin: tokio::sync::Mutex<tokio::process::ChildStdin>,
    pending: Pending,
    next_id: AtomicI64,
    child: tokio::sync::Mutex<tokio::process::Child>,
    /// The `file://` URIs (real paths) of the documents opened with `/lsp/did-open` and not
    /// closed since, oldest first: what `/lsp/workspacesymbols` searches when the server has no
    /// `workspace/symbol`.
    open_docs: Mutex<Vec<String>>,
}

async fn write_message(stdin: &mut tokio::process::ChildStdin, msg: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg)?;
    stdin
        .write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await?;
    stdin.write_all(&body).await?;
    stdin.flush().await
}

/// The answer to a server-to-client request, so the server is never stuck waiting.
fn server_request_result(msg: &Value) -> Value {
    if msg
        .get("method")
        .is_some_and(|m| m == "workspace/configuration")
    {
        let n = msg
            .pointer("/params/items")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Value::Array(vec![Value::Null; n])
    } else {
        Value::Null
    }
}

/// Routes the server's replies to their waiting requests and answers its own requests; when the
/// server exits, fails every request still waiting.
async fn read_replies(
    mut reader: BufReader<tokio::process::ChildStdout>,
    pending: Pending,
    client: std::sync::Weak<LspClient>,
) {
    while let Some(msg) = read_message(&mut reader).await {
        if let Some(id) = msg.get("id").and_then(Value::as_i64)
            && msg.get("method").is_none()
        {
            let tx = pending.lock().ok().and_then(|mut p| p.remove(&id));
            if let Some(tx) = tx {
                let res = match msg.get("error") {
                    Some(err) => Err(err.clone()),
                    None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
                let _ = tx.send(res);
            }
        } else if let (Some(id), Some(_)) = (msg.get("id"), msg.get("method")) {
            let Some(client) = client.upgrade() else {
                break;
            };
            let reply = json!({"jsonrpc": "2.0", "id": id, "result": server_request_result(&msg)});
            let _ = write_message(&mut *client.stdin.lock().await, &reply).await;
        }
    }
    let rest: Vec<_> = pending
        .lock()
        .map(|mut p| p.drain().collect())
        .unwrap_or_default();
    for (_, tx) in rest {
        let _ = tx.send(Err(json!({"message": "language server exited"})));
    }
}

impl LspClient {
    async fn spawn(
        program: &str,
        args: &[&str],
        root: &Path,
        env: &crate::env::ProcessEnv,
    ) -> Result<Arc<Self>> {
        let mut cmd = tokio::process::Command::new(program);
        env.apply(cmd.as_std_mut());
        let mut child = cmd
            .args(args)
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    ToolboxError::BadRequest(format!(
                        "language server `{program}` is not installed"
                    ))
                } else {
                    ToolboxError::Io {
                        context: format!("starting {program}"),
                        source: e,
                    }
                }
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ToolboxError::Internal(
                "language server pipes missing".into(),
            ));
        };
        let client = Arc::new(Self {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Arc::default(),
            next_id: AtomicI64::new(1),
            child: tokio::sync::Mutex::new(child),
            open_docs: Mutex::new(Vec::new()),
        });
        tokio::spawn(read_replies(
            BufReader::new(stdout),
            client.pending.clone(),
            Arc::downgrade(&client),
        ));
        Ok(client)
    }

    async fn notify(&self, method: &str, params: Value) -> Result<()> {
        let msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
        write_message(&mut *self.stdin.lock().await, &msg)
            .await
            .map_err(|e| ToolboxError::Io {
                context: format!("LSP {method}"),
                source: e,
            })
    }

    async fn request(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        write_message(&mut *self.stdin.lock().await, &msg)
            .await
            .map_err(|e| ToolboxError::Io {
                context: format!("LSP {method}"),
                source: e,
            })?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(err))) => Err(ToolboxError::Internal(format!(
                "LSP {method} failed: {}",
                err.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
            ))),
            Ok(Err(_)) => Err(ToolboxError::Internal(format!(
                "LSP {method}: server exited"
            ))),
            Err(_) => {
                if let Ok(mut p) = self.pending.lock() {
                    p.remove(&id);
                }
                Err(ToolboxError::Internal(format!("LSP {method} timed out")))
            }
        }
    }

    /// Remembers (`open`) or forgets an open document.
    fn track(&self, uri: &str, open: bool) {
        let Ok(mut docs) = self.open_docs.lock() else {
            return;
        };
        docs.retain(|d| d != uri);
        if open {
            docs.push(uri.to_owned());
            if docs.len() > MAX_TRACKED_DOCS {
                docs.remove(0);
            }
        }
    }

    fn open_docs(&self) -> Vec<String> {
        self.open_docs.lock().map(|d| d.clone()).unwrap_or_default()
    }

    async fn shutdown(&self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.request("shutdown", Value::Null),
        )
        .await;
        let _ = self.notify("exit", Value::Null).await;
        let mut child = self.child.lock().await;
        if tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Option<Value> {
    loop {
        let mut len = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse::<usize>().ok();
            }
        }
        let Some(len) = len else { continue };
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).await.ok()?;
        if let Ok(v) = serde_json::from_slice(&body) {
            return Some(v);
        }
    }
}

/// Running servers keyed by (languageId, pathToProject).
#[derive(Default)]
pub struct LspManager {
    servers: tokio::sync::Mutex<HashMap<(String, String), Arc<LspClient>>>,
}

fn file_uri(real: &Path) -> String {
    format!(
        "file://{}",
        percent_encoding::utf8_percent_encode(&real.to_string_lossy(), PATH_SET)
    )
}

/// `file://<real>` → `file://<virtual>`
fn uri_to_virtual(paths: &Paths, uri: &str) -> String {
    match uri.strip_prefix("file://") {
        Some(raw) => {
            let real = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
            let virt = paths.to_virtual(Path::new(real.as_ref()));
            format!(
                "file://{}",
                percent_encoding::utf8_percent_encode(&virt, PATH_SET)
            )
        }
        None => uri.to_owned(),
    }
}

fn server_command(language: &str) -> Result<(&'static str, &'static [&'static str])> {
    match language {
        "python" => Ok(("pylsp", &[])),
        "typescript" | "javascript" => Ok(("typescript-language-server", &["--stdio"])),
        other => Err(ToolboxError::BadRequest(format!(
            "unsupported language: {other}"
        ))),
    }
}

impl LspManager {
    async fn get(&self, language: &str, project: &str) -> Result<Arc<LspClient>> {
        self.servers
            .lock()
            .await
            .get(&(language.to_owned(), project.to_owned()))
            .cloned()
            .ok_or_else(|| ToolboxError::LspNotInitialized(format!("{language} in {project}")))
    }
}

type St = State<Arc<AppState>>;

/// `POST /lsp/start`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/lsp/start",
    tag = "lsp",
    operation_id = "Start",
    summary = "Start a language server",
    request_body = LspServerRequest,
    responses((status = 200, description = "Started"), DaemonErrors)
))]
pub async fn start(State(st): St, JsonBody(req): JsonBody<LspServerRequest>) -> Result<StatusCode> {
    let (program, args) = server_command(&req.language_id)?;
    let root: PathBuf = st.paths.resolve(&req.path_to_project)?;
    if !root.is_dir() {
        return Err(ToolboxError::FileNotFound(req.path_to_project.clone()));
    }
    let key = (req.language_id.clone(), req.path_to_project.clone());
    let mut servers = st.lsp.servers.lock().await;
    if servers.contains_key(&key) {
        return Ok(StatusCode::OK);
    }
    let client = LspClient::spawn(program, args, &root, &st.env).await?;
    let root_uri = file_uri(&root);
    let params = json!({
        "processId": std::process::id(),
        "rootUri": root_uri,
        "rootPath": root.to_string_lossy(),
        "workspaceFolders": [{"uri": root_uri, "name": "workspace"}],
        "capabilities": {
            "textDocument": {
                "synchronization": {"didSave": true},
                "completion": {"completionItem": {"snippetSupport": false}},
                "documentSymbol": {"hierarchicalDocumentSymbolSupport": false}
            },
            "workspace": {"symbol": {}, "workspaceFolders": true, "configuration": true}
        }
    });
    if let Err(e) = client.request("initialize", params).await {
        client.shutdown().await;
        return Err(e);
    }
    client.notify("initialized", json!({})).await?;
    servers.insert(key, client);
    tracing::debug!(language = ?req.language_id, project = ?req.path_to_project, "LSP server started");
    Ok(StatusCode::OK)
}

/// `POST /lsp/stop`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/lsp/stop",
    tag = "lsp",
    operation_id = "Stop",
    summary = "Stop a language server",
    request_body = LspServerRequest,
    responses((status = 200, description = "Stopped"), DaemonErrors)
))]
pub async fn stop(State(st): St, JsonBody(req): JsonBody<LspServerRequest>) -> Result<StatusCode> {
    let client = st
        .lsp
        .servers
        .lock()
        .await
        .remove(&(req.language_id.clone(), req.path_to_project.clone()))
        .ok_or_else(|| {
            ToolboxError::LspNotInitialized(format!(
                "{} in {}",
                req.language_id, req.path_to_project
            ))
        })?;
    client.shutdown().await;
    Ok(StatusCode::OK)
}

/// `POST /lsp/did-open`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/lsp/did-open",
    tag = "lsp",
    operation_id = "DidOpen",
    summary = "Tell the server a document is open",
    request_body = LspDocumentRequest,
    responses((status = 200, description = "Sent"), DaemonErrors)
))]
pub async fn did_open(
    State(st): St,
    JsonBody(req): JsonBody<LspDocumentRequest>,
) -> Result<StatusCode> {
    let client = st.lsp.get(&req.language_id, &req.path_to_project).await?;
    let real = st.paths.resolve_uri(&req.uri)?;
    let text = tokio::fs::read_to_string(&real)
        .await
        .map_err(|e| ToolboxError::io(&req.uri, e))?;
    let uri = file_uri(&real);
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {
                "uri": uri, "languageId": req.language_id, "version": 1, "text": text
            }}),
        )
        .await?;
    client.track(&uri, true);
    Ok(StatusCode::OK)
}

/// `POST /lsp/did-close`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/lsp/did-close",
    tag = "lsp",
    operation_id = "DidClose",
    summary = "Tell the server a document is closed",
    request_body = LspDocumentRequest,
    responses((status = 200, description = "Sent"), DaemonErrors)
))]
pub async fn did_close(
    State(st): St,
    JsonBody(req): JsonBody<LspDocumentRequest>,
) -> Result<StatusCode> {
    let client = st.lsp.get(&req.language_id, &req.path_to_project).await?;
    let real = st.paths.resolve_uri(&req.uri)?;
    let uri = file_uri(&real);
    client
        .notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        )
        .await?;
    client.track(&uri, false);
    Ok(StatusCode::OK)
}

fn completion_item(v: &Value) -> Option<CompletionItem> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let documentation = match v.get("documentation") {
        Some(Value::String(text)) => Some(json!({"kind": "plaintext", "value": text})),
        Some(obj @ Value::Object(_)) => Some(obj.clone()),
        _ => None,
    };
    Some(CompletionItem {
        label: s("label")?,
        kind: v.get("kind").and_then(Value::as_i64),
        detail: s("detail"),
        documentation,
        sort_text: s("sortText"),
        filter_text: s("filterText"),
        insert_text: s("insertText"),
    })
}

/// `POST /lsp/completions`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/lsp/completions",
    tag = "lsp",
    operation_id = "Completions",
    summary = "Completions at a position",
    request_body = LspCompletionParams,
    responses((status = 200, description = "The completion list", body = CompletionList), DaemonErrors)
))]
pub async fn completions(
    State(st): St,
    JsonBody(req): JsonBody<LspCompletionParams>,
) -> Result<Json<CompletionList>> {
    let client = st.lsp.get(&req.language_id, &req.path_to_project).await?;
    let real = st.paths.resolve_uri(&req.uri)?;
    let mut params = json!({
        "textDocument": {"uri": file_uri(&real)},
        "position": {"line": req.position.line, "character": req.position.character},
    });
    if let Some(ctx) = &req.context {
        params["context"] = serde_json::to_value(ctx).unwrap_or(Value::Null);
    }
    let res = client.request("textDocument/completion", params).await?;
    let (incomplete, items) = match &res {
        Value::Array(items) => (false, items.clone()),
        Value::Object(o) => (
            o.get("isIncomplete")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            o.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        ),
        _ => (false, Vec::new()),
    };
    Ok(Json(CompletionList {
        is_incomplete: incomplete,
        items: items.iter().filter_map(completion_item).collect(),
    }))
}

fn position(v: Option<&Value>) -> LspPosition {
    let n = |k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32
    };
    LspPosition {
        line: n("line"),
        character: n("character"),
    }
}

fn range(v: Option<&Value>) -> LspRange {
    LspRange {
        start: position(v.and_then(|v| v.get("start"))),
        end: position(v.and_then(|v| v.get("end"))),
    }
}

/// Flattens SymbolInformation / DocumentSymbol / WorkspaceSymbol results.
fn symbols(paths: &Paths, res: &Value, default_uri: &str, out: &mut Vec<LspSymbol>) {
    let Some(items) = res.as_array() else { return };
    for item in items {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        let kind = item.get("kind").and_then(Value::as_i64).unwrap_or(0);
        let (uri, rng) = match item.get("location") {
            Some(loc) => (
                loc.get("uri")
                    .and_then(Value::as_str)
                    .unwrap_or(default_uri),
                range(loc.get("range")),
            ),
            None => (default_uri, range(item.get("range"))),
        };
        out.push(LspSymbol {
            name: name.to_owned(),
            kind,
            location: LspLocation {
                uri: uri_to_virtual(paths, uri),
                range: rng,
            },
        });
        if let Some(children) = item.get("children") {
            symbols(paths, children, default_uri, out);
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct DocumentSymbolsQuery {
    language_id: String,
    path_to_project: String,
    uri: String,
}

/// `GET /lsp/document-symbols`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/lsp/document-symbols",
    tag = "lsp",
    operation_id = "DocumentSymbols",
    summary = "A document's symbols",
    params(DocumentSymbolsQuery),
    responses((status = 200, description = "The symbols", body = Vec<LspSymbol>), DaemonErrors)
))]
pub async fn document_symbols(
    State(st): St,
    QueryParams(q): QueryParams<DocumentSymbolsQuery>,
) -> Result<Json<Vec<LspSymbol>>> {
    let client = st.lsp.get(&q.language_id, &q.path_to_project).await?;
    let real = st.paths.resolve_uri(&q.uri)?;
    let uri = file_uri(&real);
    let res = client
        .request(
            "textDocument/documentSymbol",
            json!({"textDocument": {"uri": uri}}),
        )
        .await?;
    let mut out = Vec::new();
    symbols(&st.paths, &res, &uri, &mut out);
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct WorkspaceSymbolsQuery {
    query: String,
    language_id: String,
    path_to_project: String,
}

/// `GET /lsp/workspacesymbols`
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/lsp/workspacesymbols",
    tag = "lsp",
    operation_id = "WorkspaceSymbols",
    summary = "Search the workspace symbols",
    description = "The server's `workspace/symbol` answer for `query`. A server without it \
        (pylsp) answers with the symbols of the documents opened on it (`/lsp/did-open`, not \
        closed since) whose name contains `query`, case-insensitively (an empty query matches \
        all).",
    params(WorkspaceSymbolsQuery),
    responses((status = 200, description = "The symbols", body = Vec<LspSymbol>), DaemonErrors)
))]
pub async fn workspace_symbols(
    State(st): St,
    QueryParams(q): QueryParams<WorkspaceSymbolsQuery>,
) -> Result<Json<Vec<LspSymbol>>> {
    let client = st.lsp.get(&q.language_id, &q.path_to_project).await?;
    let res = match client
        .request("workspace/symbol", json!({"query": q.query}))
        .await
    {
        Ok(v) => v,
        // Servers without workspace symbols (pylsp without plugins) answer "method not found".
        Err(ToolboxError::Internal(m)) if m.contains("not found") || m.contains("Method") => {
            Value::Null
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    if res.is_null() {
        // No workspace index: the symbols of the documents open on this server that match.
        let query = q.query.to_lowercase();
        for uri in client.open_docs() {
            let params = json!({"textDocument": {"uri": uri}});
            // A document that went away meanwhile has no symbols, the others still count.
            let Ok(res) = client.request("textDocument/documentSymbol", params).await else {
                continue;
            };
            let mut found = Vec::new();
            symbols(&st.paths, &res, &uri, &mut found);
            out.extend(
                found
                    .into_iter()
                    .filter(|s| s.name.to_lowercase().contains(&query)),
            );
        }
    } else {
        symbols(&st.paths, &res, "", &mut out);
    }
    Ok(Json(out))
}

/// `GET /lsp/workspace-symbols`: another spelling of `/lsp/workspacesymbols`.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/lsp/workspace-symbols",
    tag = "lsp",
    operation_id = "WorkspaceSymbolsAlias",
    summary = "Search the workspace symbols (another spelling of `/lsp/workspacesymbols`)",
    params(WorkspaceSymbolsQuery),
    responses((status = 200, description = "The symbols", body = Vec<LspSymbol>), DaemonErrors)
))]
#[deprecated = "route alias: another spelling of `/lsp/workspacesymbols`"]
pub async fn workspace_symbols_alias(
    st: St,
    q: QueryParams<WorkspaceSymbolsQuery>,
) -> Result<Json<Vec<LspSymbol>>> {
    workspace_symbols(st, q).await
}
