//! `/process/session/*`: long-lived shells whose state (cwd, variables) carries across commands.
//!
//! Each session is one `bash` (or `sh`) reading a script from the daemon on stdin. Every command
//! gets three FIFOs in the session's state dir: its stdin (`in`, opened read-write so writers never
//! block), stdout and stderr (read by the daemon as they arrive). After the command the shell
//! prints a marker line with the exit code on its own stdout, which only the daemon reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cove_api_types::toolbox::{
    Command, CreateSessionRequest, Session as SessionDto, SessionCommandLogsResponse,
    SessionExecuteRequest, SessionExecuteResponse, SessionSendInputRequest,
};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, watch};

use crate::error::{Result, ToolboxError};
use crate::server::{AppState, JsonBody, QueryParams};

const MARKER: &str = "\x1eCOVE_DONE";
pub const STDOUT_PREFIX: &[u8] = b"\x01\x01\x01";
pub const STDERR_PREFIX: &[u8] = b"\x02\x02\x02";

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Default)]
struct LogState {
    chunks: Vec<(Stream, Bytes)>,
    exit_code: Option<i32>,
}

/// Output and status of one command, shared by the runner, readers and log followers.
#[derive(Debug)]
pub struct CommandLog {
    pub id: String,
    pub command: String,
    state: Mutex<LogState>,
    changed: watch::Sender<u64>,
    stdin_fifo: Option<PathBuf>,
}

impl CommandLog {
    pub fn new(id: String, command: String, stdin_fifo: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            id,
            command,
            state: Mutex::new(LogState::default()),
            changed: watch::channel(0).0,
            stdin_fifo,
        })
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn push(&self, stream: Stream, data: Bytes) {
        if data.is_empty() {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            s.chunks.push((stream, data));
        }
        self.bump();
    }

    pub fn finish(&self, code: i32) {
        if let Ok(mut s) = self.state.lock()
            && s.exit_code.is_none()
        {
            s.exit_code = Some(code);
        }
        self.bump();
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.state.lock().ok().and_then(|s| s.exit_code)
    }

    /// Chunks from index `from` on, and whether the command has finished.
    fn since(&self, from: usize) -> (Vec<(Stream, Bytes)>, bool) {
        match self.state.lock() {
            Ok(s) => (
                s.chunks.get(from..).map(<[_]>::to_vec).unwrap_or_default(),
                s.exit_code.is_some(),
            ),
            Err(_) => (Vec::new(), true),
        }
    }

    /// (combined, stdout, stderr)
    pub fn outputs(&self) -> (String, String, String) {
        let (chunks, _) = self.since(0);
        let mut all = Vec::new();
        let mut out = Vec::new();
        let mut err = Vec::new();
        for (s, b) in &chunks {
            all.extend_from_slice(b);
            match s {
                Stream::Stdout => out.extend_from_slice(b),
                Stream::Stderr => err.extend_from_slice(b),
            }
        }
        let s = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
        (s(all), s(out), s(err))
    }

    /// Waits until the command has an exit code.
    pub async fn wait(&self) -> i32 {
        let mut rx = self.changed.subscribe();
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            if rx.changed().await.is_err() {
                return self.exit_code().unwrap_or(-1);
            }
        }
    }

    fn dto(&self) -> Command {
        Command {
            id: self.id.clone(),
            command: self.command.clone(),
            exit_code: self.exit_code(),
        }
    }
}

struct Session {
    id: String,
    dir: PathBuf,
    pgid: Option<rustix::process::Pid>,
    stdin: tokio::sync::Mutex<Option<tokio::process::ChildStdin>>,
    commands: Mutex<Vec<Arc<CommandLog>>>,
    /// Exit-code senders of commands waiting for their marker.
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<i32>>>>,
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl Session {
    fn dto(&self) -> SessionDto {
        SessionDto {
            session_id: self.id.clone(),
            commands: self
                .commands
                .lock()
                .map(|c| c.iter().map(|c| c.dto()).collect())
                .unwrap_or_default(),
        }
    }

    fn find(&self, cid: &str) -> Option<Arc<CommandLog>> {
        self.commands
            .lock()
            .ok()?
            .iter()
            .find(|c| c.id == cid)
            .cloned()
    }

    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// All sessions of the daemon, plus the entrypoint's log.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    state_dir: PathBuf,
    shell: PathBuf,
    cwd: PathBuf,
    entrypoint: Mutex<Option<Arc<CommandLog>>>,
}

impl Sessions {
    pub fn new(state_dir: PathBuf, shell: PathBuf, cwd: PathBuf) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            state_dir,
            shell,
            cwd,
            entrypoint: Mutex::new(None),
        }
    }

    pub fn set_entrypoint(&self, log: Arc<CommandLog>) {
        if let Ok(mut e) = self.entrypoint.lock() {
            *e = Some(log);
        }
    }

    fn get(&self, sid: &str) -> Result<Arc<Session>> {
        self.map
            .lock()
            .ok()
            .and_then(|m| m.get(sid).cloned())
            .ok_or_else(|| ToolboxError::SessionNotFound(sid.to_owned()))
    }

    async fn create(&self, sid: &str) -> Result<()> {
        if sid.is_empty() || sid == "entrypoint" {
            return Err(ToolboxError::BadRequest(format!(
                "invalid session id: {sid:?}"
            )));
        }
        if self
            .map
            .lock()
            .map(|m| m.contains_key(sid))
            .unwrap_or(false)
        {
            return Err(ToolboxError::Conflict(format!(
                "session already exists: {sid}"
            )));
        }
        let dir = self
            .state_dir
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).map_err(|e| ToolboxError::Io {
            context: format!("creating session dir {}", dir.display()),
            source: e,
        })?;
        let mut cmd = tokio::process::Command::new(&self.shell);
        if self.shell.ends_with("bash") {
            cmd.args(["--noprofile", "--norc"]);
        }
        cmd.current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| ToolboxError::Io {
            context: format!("starting session shell {}", self.shell.display()),
            source: e,
        })?;
        let pgid = child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<i32>>>> = Arc::default();
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The marker reader: routes exit codes to waiting commands; on EOF the session ended.
        {
            let waiting = waiting.clone();
            let ended = ended.clone();
            let sid = sid.to_owned();
            tokio::spawn(async move {
                if let Some(stdout) = stdout {
                    let mut lines = tokio::io::BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let Some(rest) = line.strip_prefix(MARKER) else {
                            continue;
                        };
                        let mut it = rest.split_whitespace();
                        if let (Some(cid), Some(code)) = (it.next(), it.next()) {
                            let code = code.parse().unwrap_or(-1);
                            let tx = waiting.lock().ok().and_then(|mut w| w.remove(cid));
                            if let Some(tx) = tx {
                                let _ = tx.send(code);
                            }
                        }
                    }
                }
                let status = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
                ended.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(session = %sid, status, "session shell exited");
                // Commands still running end with the shell's status.
                let rest: Vec<_> = waiting
                    .lock()
                    .map(|mut w| w.drain().collect())
                    .unwrap_or_default();
                for (_, tx) in rest {
                    let _ = tx.send(status);
                }
            });
        }
        let session = Arc::new(Session {
            id: sid.to_owned(),
            dir,
            pgid,
            stdin: tokio::sync::Mutex::new(stdin),
            commands: Mutex::new(Vec::new()),
            waiting,
            ended,
        });
        let mut map = self
            .map
            .lock()
            .map_err(|_| ToolboxError::Internal("session map poisoned".into()))?;
        if map.contains_key(sid) {
            session.kill();
            return Err(ToolboxError::Conflict(format!(
                "session already exists: {sid}"
            )));
        }
        map.insert(sid.to_owned(), session);
        tracing::info!(session = %sid, "session created");
        Ok(())
    }

    fn remove(&self, sid: &str) -> Result<()> {
        let session = self
            .map
            .lock()
            .ok()
            .and_then(|mut m| m.remove(sid))
            .ok_or_else(|| ToolboxError::SessionNotFound(sid.to_owned()))?;
        session.kill();
        Ok(())
    }

    /// Starts `command` in session `sid`; returns its log immediately.
    async fn exec(&self, sid: &str, command: &str) -> Result<Arc<CommandLog>> {
        let session = self.get(sid)?;
        if session.ended.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ToolboxError::Gone(format!("session {sid} has ended")));
        }
        let cid = uuid::Uuid::new_v4().to_string();
        let dir = session.dir.join(&cid);
        let io = |context: &str| {
            let context = format!("{context} in {}", dir.display());
            move |source| ToolboxError::Io { context, source }
        };
        std::fs::create_dir_all(&dir).map_err(io("creating command dir"))?;
        let (fin, fout, ferr, script) = (
            dir.join("in"),
            dir.join("out"),
            dir.join("err"),
            dir.join("cmd.sh"),
        );
        for f in [&fin, &fout, &ferr] {
            rustix::fs::mkfifoat(rustix::fs::CWD, f, rustix::fs::Mode::from_raw_mode(0o600))
                .map_err(|e| io("mkfifo")(e.into()))?;
        }
        std::fs::write(&script, format!("{command}\n")).map_err(io("writing command"))?;
        // Readers first (read-write, so they never see EOF): the shell's opens then never block.
        let rout = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&fout)
            .map_err(io("opening stdout fifo"))?;
        let rerr = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&ferr)
            .map_err(io("opening stderr fifo"))?;
        let log = CommandLog::new(cid.clone(), command.to_owned(), Some(fin.clone()));
        let (done_tx, done_rx) = oneshot::channel::<i32>();
        session
            .waiting
            .lock()
            .map_err(|_| ToolboxError::Internal("poisoned".into()))?
            .insert(cid.clone(), done_tx);
        if let Ok(mut c) = session.commands.lock() {
            c.push(log.clone());
        }
        let (stop_out_tx, stop_out) = oneshot::channel::<()>();
        let (stop_err_tx, stop_err) = oneshot::channel::<()>();
        let r1 = tokio::spawn(read_fifo(rout, Stream::Stdout, log.clone(), stop_out));
        let r2 = tokio::spawn(read_fifo(rerr, Stream::Stderr, log.clone(), stop_err));
        {
            let log = log.clone();
            let dir = dir.clone();
            tokio::spawn(async move {
                let code = done_rx.await.unwrap_or(-1);
                let _ = stop_out_tx.send(());
                let _ = stop_err_tx.send(());
                let _ = r1.await;
                let _ = r2.await;
                log.finish(code);
                let _ = std::fs::remove_file(dir.join("out"));
                let _ = std::fs::remove_file(dir.join("err"));
                let _ = std::fs::remove_file(dir.join("in"));
            });
        }
        let q = |p: &Path| shell_quote(&p.to_string_lossy());
        let line = format!(
            ". {} 0<>{} >{} 2>{}; printf '{}%s %s\\n' {} \"$?\"\n",
            q(&script),
            q(&fin),
            q(&fout),
            q(&ferr),
            MARKER,
            cid
        );
        let mut stdin = session.stdin.lock().await;
        let written = match stdin.as_mut() {
            Some(s) => s.write_all(line.as_bytes()).await.and(s.flush().await),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        };
        if written.is_err() {
            let tx = session.waiting.lock().ok().and_then(|mut w| w.remove(&cid));
            if let Some(tx) = tx {
                let _ = tx.send(-1);
            }
            return Err(ToolboxError::Gone(format!("session {sid} has ended")));
        }
        Ok(log)
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

async fn read_fifo(
    rx: pipe::Receiver,
    stream: Stream,
    log: Arc<CommandLog>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            ready = rx.readable() => {
                if ready.is_err() {
                    return;
                }
                match rx.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => log.push(stream, Bytes::copy_from_slice(&buf[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
            _ = &mut stop => {
                // The command has finished: whatever it wrote is already in the pipe.
                while let Ok(n) = rx.try_read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.push(stream, Bytes::copy_from_slice(&buf[..n]));
                }
                return;
            }
        }
    }
}

type St = State<Arc<AppState>>;

/// `POST /process/session` → 201
pub async fn create(
    State(st): St,
    JsonBody(req): JsonBody<CreateSessionRequest>,
) -> Result<StatusCode> {
    st.sessions.create(&req.session_id).await?;
    Ok(StatusCode::CREATED)
}

/// `GET /process/session`
pub async fn list(State(st): St) -> Json<Vec<SessionDto>> {
    let sessions: Vec<_> = st
        .sessions
        .map
        .lock()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    let mut out: Vec<_> = sessions.iter().map(|s| s.dto()).collect();
    out.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    Json(out)
}

/// `GET /process/session/{sid}`
pub async fn get(State(st): St, UrlPath(sid): UrlPath<String>) -> Result<Json<SessionDto>> {
    Ok(Json(st.sessions.get(&sid)?.dto()))
}

/// `DELETE /process/session/{sid}` → 204
pub async fn remove(State(st): St, UrlPath(sid): UrlPath<String>) -> Result<StatusCode> {
    st.sessions.remove(&sid)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /process/session/{sid}/exec`: 200 with output, or 202 `{cmdId}` when async.
pub async fn exec(
    State(st): St,
    UrlPath(sid): UrlPath<String>,
    JsonBody(req): JsonBody<SessionExecuteRequest>,
) -> Result<Response> {
    if req.command.trim().is_empty() {
        return Err(ToolboxError::BadRequest("command is empty".into()));
    }
    let log = st.sessions.exec(&sid, &req.command).await?;
    if req.run_async.or(req.legacy_async).unwrap_or(false) {
        let body = SessionExecuteResponse {
            cmd_id: log.id.clone(),
            output: None,
            stdout: None,
            stderr: None,
            exit_code: None,
        };
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let code = log.wait().await;
    let (output, stdout, stderr) = log.outputs();
    Ok(Json(SessionExecuteResponse {
        cmd_id: log.id.clone(),
        output: Some(output),
        stdout: Some(stdout),
        stderr: Some(stderr),
        exit_code: Some(code),
    })
    .into_response())
}

fn command_log(st: &AppState, sid: &str, cid: &str) -> Result<Arc<CommandLog>> {
    st.sessions
        .get(sid)?
        .find(cid)
        .ok_or_else(|| ToolboxError::CommandNotFound(cid.to_owned()))
}

/// `GET /process/session/{sid}/command/{cid}`
pub async fn command(
    State(st): St,
    UrlPath((sid, cid)): UrlPath<(String, String)>,
) -> Result<Json<Command>> {
    Ok(Json(command_log(&st, &sid, &cid)?.dto()))
}

#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    follow: Option<bool>,
}

/// `GET /process/session/{sid}/command/{cid}/logs[?follow=true]`
pub async fn logs(
    State(st): St,
    UrlPath((sid, cid)): UrlPath<(String, String)>,
    QueryParams(q): QueryParams<LogsQuery>,
    headers: HeaderMap,
    ws: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let log = command_log(&st, &sid, &cid)?;
    Ok(logs_response(log, q.follow.unwrap_or(false), &headers, ws))
}

/// `GET /process/session/entrypoint`
pub async fn entrypoint(State(st): St) -> Result<Json<SessionDto>> {
    let log = entrypoint_log(&st)?;
    Ok(Json(SessionDto {
        session_id: "entrypoint".into(),
        commands: vec![log.dto()],
    }))
}

fn entrypoint_log(st: &AppState) -> Result<Arc<CommandLog>> {
    st.sessions
        .entrypoint
        .lock()
        .ok()
        .and_then(|e| e.clone())
        .ok_or_else(|| ToolboxError::SessionNotFound("entrypoint".into()))
}

/// `GET /process/session/entrypoint/logs[?follow=true]`
pub async fn entrypoint_logs(
    State(st): St,
    QueryParams(q): QueryParams<LogsQuery>,
    headers: HeaderMap,
    ws: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let log = entrypoint_log(&st)?;
    Ok(logs_response(log, q.follow.unwrap_or(false), &headers, ws))
}

/// Clients at or above 0.167.0 get JSON logs; others (and unversioned ones) plain text.
fn wants_json(headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get("x-daytona-sdk-version")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let nums: Vec<u64> = v
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let key = (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
        nums.get(2).copied().unwrap_or(0),
    );
    key >= (0, 167, 0)
}

fn logs_response(
    log: Arc<CommandLog>,
    follow: bool,
    headers: &HeaderMap,
    ws: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Response {
    if follow {
        if let Ok(ws) = ws {
            return ws.on_upgrade(move |socket| follow_ws(socket, log));
        }
        // Plain HTTP follow: stream the combined output until the command ends.
        let stream = futures::stream::unfold((log, 0usize, false), |(log, idx, done)| async move {
            if done {
                return None;
            }
            let mut rx = log.changed.subscribe();
            loop {
                let (chunks, finished) = log.since(idx);
                if !chunks.is_empty() || finished {
                    let n = idx + chunks.len();
                    let data: Vec<u8> = chunks.into_iter().flat_map(|(_, b)| b.to_vec()).collect();
                    return Some((
                        Ok::<_, std::io::Error>(Bytes::from(data)),
                        (log, n, finished),
                    ));
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        });
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            Body::from_stream(stream),
        )
            .into_response();
    }
    let (output, stdout, stderr) = log.outputs();
    if wants_json(headers) {
        Json(SessionCommandLogsResponse {
            output,
            stdout,
            stderr,
        })
        .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            output,
        )
            .into_response()
    }
}

/// Streams prefixed chunks (`\x01\x01\x01` stdout, `\x02\x02\x02` stderr) until the command ends.
async fn follow_ws(mut socket: WebSocket, log: Arc<CommandLog>) {
    let mut rx = log.changed.subscribe();
    let mut idx = 0;
    loop {
        let (chunks, finished) = log.since(idx);
        idx += chunks.len();
        for (stream, data) in chunks {
            let prefix = match stream {
                Stream::Stdout => STDOUT_PREFIX,
                Stream::Stderr => STDERR_PREFIX,
            };
            let mut frame = Vec::with_capacity(prefix.len() + data.len());
            frame.extend_from_slice(prefix);
            frame.extend_from_slice(&data);
            if socket.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        if finished {
            break;
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { break },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                _ => {}
            },
        }
    }
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

/// `POST /process/session/{sid}/command/{cid}/input` → 204
pub async fn input(
    State(st): St,
    UrlPath((sid, cid)): UrlPath<(String, String)>,
    JsonBody(req): JsonBody<SessionSendInputRequest>,
) -> Result<StatusCode> {
    let log = command_log(&st, &sid, &cid)?;
    let completed = || ToolboxError::CommandCompleted(cid.clone());
    if log.exit_code().is_some() {
        return Err(completed());
    }
    let Some(fifo) = &log.stdin_fifo else {
        return Err(completed());
    };
    let tx = pipe::OpenOptions::new()
        .open_sender(fifo)
        .map_err(|_| completed())?;
    let mut data = req.data.into_bytes();
    let mut written = 0;
    while written < data.len() {
        tx.writable().await.map_err(|_| completed())?;
        match tx.try_write(&data[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(completed()),
        }
    }
    data.clear();
    Ok(StatusCode::NO_CONTENT)
}
