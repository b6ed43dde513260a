//! The `GET /process/interpreter/execute` websocket, as the SDKs' `run_code` speaks it.
//!
//! 1. The client sends one JSON text (or binary) message, [`InterpreterExecuteRequest`]:
//!    `{"code": str, "contextId"?: str, "timeout"?: seconds, "envs"?: {str: str}}`.
//! 2. The daemon sends JSON text messages, [`InterpreterChunk`] `{type, text, name, value,
//!    traceback}` (every field present): `stdout` / `stderr` chunks while the code runs, as the
//!    output is produced; an `error` (`name`, `value`, `traceback`) when the code raised; then
//!    `control` `completed`; and closes with 1000.
//! 3. Timeout (default 600 s, 0 = none): SIGINT, then SIGKILL after 2 s (the context's next
//!    execution gets a fresh interpreter); the daemon sends an `error` `TimeoutError` and closes
//!    with **4008** `execution timeout` (no `completed`, so the TypeScript SDK reports the
//!    timeout too).
//! 4. Refusals close at once: 1002 (not JSON), 1008 (no `code`, negative `timeout`, `context
//!    not found: <id>`, no request within 60 s), 1013 (too many executions waiting for the
//!    context), 1011 (the interpreter cannot start); a context deleted mid-execution sends an
//!    `error` `ContextDeleted` and closes with 1001.
//!
//! An execution waits for the one before it in the same context. A client that goes away
//! interrupts its execution (as a timeout does), since nobody can receive its results.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use cove_api_types::toolbox::interpreter::{
    InterpreterChunk, InterpreterChunkType, InterpreterExecuteRequest,
};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Context;
use super::worker::{CellResult, Worker, WorkerError, read_now};
use crate::server::AppState;

/// Largest request message (the code): as large as a JSON body may be.
pub const MAX_REQUEST_BYTES: usize = crate::server::JSON_BODY_LIMIT;
/// `timeout` when the request has none: the SDKs' documented default, 10 minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Between SIGINT and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);
/// How long the client may take to send its request.
const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(60);
/// How long one message may take to go out before the client counts as gone.
const WRITE_WAIT: Duration = Duration::from_secs(10);
/// How long the daemon waits for the client's answer to its close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Messages queued for the client; with reads of [`READ_BYTES`] this bounds the output held.
const QUEUE_FRAMES: usize = 16;
const READ_BYTES: usize = 64 * 1024;
/// Output read after the result (what the cell wrote just before ending), at most.
const DRAIN_LIMIT: usize = 16 << 20;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_INTERNAL: u16 = 1011;
const CLOSE_TRY_LATER: u16 = 1013;
/// What the SDKs read as a timeout.
pub const CLOSE_TIMEOUT: u16 = 4008;
/// The reason of a [`CLOSE_TIMEOUT`] close.
pub const TIMEOUT_REASON: &str = "execution timeout";

type Close = (u16, String);

/// Serves one execution on `socket`.
pub(super) async fn serve(st: Arc<AppState>, socket: WebSocket) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel::<Message>(QUEUE_FRAMES);
    let writer = tokio::spawn(write_frames(sink, rx));
    if let Some((code, reason)) = session(&st, &mut stream, &tx).await {
        let frame = CloseFrame {
            code,
            reason: clip_reason(reason).into(),
        };
        let _ = tokio::time::timeout(WRITE_WAIT, tx.send(Message::Close(Some(frame)))).await;
    }
    drop(tx);
    let _ = writer.await;
    // Let the client answer the close (tungstenite replies to its close frame) before dropping.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// A close reason is at most 123 bytes.
fn clip_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("...");
    }
    reason
}

/// Sends the queued messages, stopping after a close or when the client stops reading.
async fn write_frames(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Message>) {
    while let Some(m) = rx.recv().await {
        let close = matches!(m, Message::Close(_));
        match tokio::time::timeout(WRITE_WAIT, sink.send(m)).await {
            Ok(Ok(())) if !close => {}
            _ => return,
        }
    }
}

fn message(chunk: &InterpreterChunk) -> Message {
    Message::Text(serde_json::to_string(chunk).unwrap_or_default().into())
}

/// Reads the request (skipping pings), or the close that refuses it.
async fn read_request(
    stream: &mut SplitStream<WebSocket>,
) -> Result<InterpreterExecuteRequest, Option<Close>> {
    let deadline = Instant::now() + FIRST_MESSAGE_WAIT;
    let data = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                let why = format!(
                    "no execute request within {} s",
                    FIRST_MESSAGE_WAIT.as_secs()
                );
                return Err(Some((CLOSE_POLICY, why)));
            }
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Err(None),
            Ok(Some(Ok(Message::Text(t)))) => break t.as_bytes().to_vec(),
            Ok(Some(Ok(Message::Binary(b)))) => break b.to_vec(),
            Ok(Some(Ok(_))) => {}
        }
    };
    let req: InterpreterExecuteRequest = serde_json::from_slice(&data)
        .map_err(|e| Some((CLOSE_PROTOCOL, format!("invalid JSON payload: {e}"))))?;
    if req.code.is_empty() {
        return Err(Some((CLOSE_POLICY, "code is required".into())));
    }
    if req.timeout.is_some_and(|t| t < 0) {
        let why = "timeout must be greater than or equal to 0".into();
        return Err(Some((CLOSE_POLICY, why)));
    }
    Ok(req)
}

/// The whole execution; returns the close to send (none when the client is gone).
async fn session(
    st: &Arc<AppState>,
    stream: &mut SplitStream<WebSocket>,
    tx: &mpsc::Sender<Message>,
) -> Option<Close> {
    let req = match read_request(stream).await {
        Ok(r) => r,
        Err(close) => return close,
    };
    let not_found = || {
        let id = req.context_id.clone().unwrap_or_default();
        Some((CLOSE_POLICY, format!("context not found: {id}")))
    };
    let Some(ctx) = st.interpreters.get(req.context_id.as_deref()) else {
        return not_found();
    };
    let mut deleted = ctx.deleted.subscribe();
    if ctx.waiting.fetch_add(1, Ordering::AcqRel) >= super::MAX_QUEUED {
        ctx.waiting.fetch_sub(1, Ordering::AcqRel);
        let why = format!(
            "context busy: {} executions already wait for it",
            super::MAX_QUEUED
        );
        return Some((CLOSE_TRY_LATER, why));
    }
    let guard = tokio::select! {
        g = ctx.worker.lock() => Some(g),
        _ = client_closed(stream) => None,
        _ = until_deleted(&mut deleted) => None,
    };
    ctx.waiting.fetch_sub(1, Ordering::AcqRel);
    let mut guard = guard?;
    if *ctx.deleted.borrow() {
        return not_found();
    }
    let _busy = crate::busy::Activity::begin(st);
    if !guard.as_mut().is_some_and(Worker::alive) {
        *guard = None;
        match st.interpreters.spawn_worker(&ctx).await {
            Ok(w) => *guard = Some(w),
            Err(e) => {
                tracing::warn!(context = %ctx.id, error = %e, "interpreter did not start");
                return Some((CLOSE_INTERNAL, format!("cannot start the interpreter: {e}")));
            }
        }
    }
    let worker = guard.as_mut()?;
    let limit = match req.timeout {
        None => Some(DEFAULT_TIMEOUT),
        Some(0) => None,
        Some(s) => Some(Duration::from_secs(s.unsigned_abs())),
    };
    let started = Instant::now();
    let envs = req.envs.clone().unwrap_or_default();
    let cell = Cell {
        code: &req.code,
        envs: &envs,
        limit,
    };
    let outcome = run_cell(worker, cell, tx, stream, &mut deleted).await;
    if outcome.loses_interpreter() {
        guard.take();
    }
    drop(guard);
    tracing::debug!(
        context = %ctx.id,
        outcome = outcome.name(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "interpreter execution ended"
    );
    finish(&ctx, outcome, limit, tx).await
}

/// Resolves once the context is deleted.
async fn until_deleted(deleted: &mut watch::Receiver<bool>) {
    let _ = deleted.wait_for(|d| *d).await;
}

/// Resolves when the client closed (or broke) the connection; other messages are ignored.
async fn client_closed(stream: &mut SplitStream<WebSocket>) {
    loop {
        match stream.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(_)) => {}
        }
    }
}

struct Cell<'a> {
    code: &'a str,
    envs: &'a BTreeMap<String, String>,
    limit: Option<Duration>,
}

/// Why the daemon interrupted a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Timeout,
    ClientGone,
}

#[derive(Debug)]
enum Outcome {
    /// The driver reported the cell's end.
    Finished(CellResult),
    /// Interrupted at the timeout: `Some` when the cell stopped on SIGINT, `None` when the
    /// interpreter had to be killed.
    TimedOut(Option<CellResult>),
    /// The client went away; `killed` when the interpreter did not stop on SIGINT.
    ClientGone { killed: bool },
    /// The interpreter died during the cell.
    Died(String),
    /// The context was deleted during the cell.
    Deleted,
    /// The interpreter broke the protocol or its pipes.
    Broken(WorkerError),
}

impl Outcome {
    fn loses_interpreter(&self) -> bool {
        matches!(
            self,
            Self::TimedOut(None)
                | Self::ClientGone { killed: true }
                | Self::Died(_)
                | Self::Deleted
                | Self::Broken(_)
        )
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Finished(r) if r.status == "ok" => "ok",
            Self::Finished(_) => "error",
            Self::TimedOut(_) => "timeout",
            Self::ClientGone { .. } => "client gone",
            Self::Died(_) => "interpreter died",
            Self::Deleted => "context deleted",
            Self::Broken(_) => "protocol failure",
        }
    }
}

/// Queues the last messages of an execution; returns its close.
async fn finish(
    ctx: &Context,
    outcome: Outcome,
    limit: Option<Duration>,
    tx: &mpsc::Sender<Message>,
) -> Option<Close> {
    let send = |chunk: InterpreterChunk| async move {
        let _ = tokio::time::timeout(WRITE_WAIT, tx.send(message(&chunk))).await;
    };
    let completed = || InterpreterChunk::text(InterpreterChunkType::Control, "completed".into());
    let secs = limit.map(|l| l.as_secs()).unwrap_or_default();
    match outcome {
        Outcome::Finished(r) => {
            if r.status != "ok" {
                send(InterpreterChunk::error(r.name, r.value, r.traceback)).await;
            }
            send(completed()).await;
            Some((CLOSE_NORMAL, String::new()))
        }
        Outcome::TimedOut(r) => {
            let (value, traceback) = match r {
                Some(r) => (
                    format!("execution timed out after {secs} s; interrupted"),
                    r.traceback,
                ),
                None => (
                    format!(
                        "execution timed out after {secs} s; the interpreter did not stop on \
                         SIGINT within {} s and was restarted, the context's state is lost",
                        GRACE.as_secs()
                    ),
                    String::new(),
                ),
            };
            send(InterpreterChunk::error(
                "TimeoutError".into(),
                value,
                traceback,
            ))
            .await;
            Some((CLOSE_TIMEOUT, TIMEOUT_REASON.into()))
        }
        Outcome::ClientGone { .. } => None,
        Outcome::Died(status) => {
            let value = format!(
                "the interpreter process exited during the execution ({status}); the next \
                 execution starts a new one, without the context's state"
            );
            send(InterpreterChunk::error(
                "InterpreterExited".into(),
                value,
                String::new(),
            ))
            .await;
            send(completed()).await;
            Some((CLOSE_NORMAL, String::new()))
        }
        Outcome::Deleted => {
            let value = format!("context {} was deleted during the execution", ctx.id);
            send(InterpreterChunk::error(
                "ContextDeleted".into(),
                value,
                String::new(),
            ))
            .await;
            Some((CLOSE_GOING_AWAY, "context deleted".into()))
        }
        Outcome::Broken(e) => {
            tracing::warn!(context = %ctx.id, error = %e, "interpreter failed");
            Some((CLOSE_INTERNAL, format!("interpreter failure: {e}")))
        }
    }
}

/// Decodes a byte stream as UTF-8 across reads: a character cut by a read boundary waits for
/// its end; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub(super) struct Utf8Stream {
    carry: Vec<u8>,
}

impl Utf8Stream {
    pub(super) fn push(&mut self, data: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(data);
        let keep = incomplete_tail(&bytes);
        self.carry = bytes.split_off(bytes.len() - keep);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub(super) fn finish(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.carry)).into_owned()
    }
}

/// How many trailing bytes of `b` start a UTF-8 sequence that is not complete yet.
fn incomplete_tail(b: &[u8]) -> usize {
    for i in 1..=b.len().min(3) {
        let c = b[b.len() - i];
        if c & 0xC0 == 0x80 {
            continue;
        }
        let need = match c {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if need > i { i } else { 0 };
    }
    0
}

/// The cell's output on its way to the client, with backpressure: at most one message waits
/// outside the channel, and the pipes are not read while it does.
struct Forward<'a> {
    tx: &'a mpsc::Sender<Message>,
    pending: Option<Message>,
    stdout: Utf8Stream,
    stderr: Utf8Stream,
    /// The client is gone: output is read and dropped.
    discard: bool,
}

impl<'a> Forward<'a> {
    fn new(tx: &'a mpsc::Sender<Message>) -> Self {
        Self {
            tx,
            pending: None,
            stdout: Utf8Stream::default(),
            stderr: Utf8Stream::default(),
            discard: false,
        }
    }

    fn ready(&self) -> bool {
        self.pending.is_none()
    }

    fn decode(&mut self, kind: InterpreterChunkType, data: &[u8]) -> Option<Message> {
        let text = match kind {
            InterpreterChunkType::Stderr => self.stderr.push(data),
            _ => self.stdout.push(data),
        };
        (!text.is_empty() && !self.discard).then(|| message(&InterpreterChunk::text(kind, text)))
    }

    /// Queues output without waiting (or keeps it as `pending`).
    fn push(&mut self, kind: InterpreterChunkType, data: &[u8]) {
        let Some(m) = self.decode(kind, data) else {
            return;
        };
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(m)) => self.pending = Some(m),
            Err(mpsc::error::TrySendError::Closed(_)) => self.discard = true,
        }
    }

    async fn send(&mut self, m: Message) {
        if self.discard {
            return;
        }
        if !matches!(
            tokio::time::timeout(WRITE_WAIT, self.tx.send(m)).await,
            Ok(Ok(()))
        ) {
            self.discard = true;
        }
    }

    /// After the cell's end: everything its pipes still hold, then any cut character.
    async fn drain(&mut self, w: &mut Worker) {
        if let Some(m) = self.pending.take() {
            self.send(m).await;
        }
        let mut buf = vec![0u8; READ_BYTES];
        let mut total = 0;
        while total < DRAIN_LIMIT {
            let mut got = 0;
            for kind in [InterpreterChunkType::Stdout, InterpreterChunkType::Stderr] {
                let n = match kind {
                    InterpreterChunkType::Stdout => read_now(&w.stdout, &mut buf),
                    _ => read_now(&w.stderr, &mut buf),
                };
                if let Some(m) = self.decode(kind, &buf[..n]) {
                    self.send(m).await;
                }
                got += n;
            }
            if got == 0 {
                break;
            }
            total += got;
        }
        for kind in [InterpreterChunkType::Stdout, InterpreterChunkType::Stderr] {
            let rest = match kind {
                InterpreterChunkType::Stdout => self.stdout.finish(),
                _ => self.stderr.finish(),
            };
            if !rest.is_empty() {
                self.send(message(&InterpreterChunk::text(kind, rest)))
                    .await;
            }
        }
    }
}

/// Runs one cell to its end, forwarding its output.
async fn run_cell(
    w: &mut Worker,
    cell: Cell<'_>,
    tx: &mpsc::Sender<Message>,
    stream: &mut SplitStream<WebSocket>,
    deleted: &mut watch::Receiver<bool>,
) -> Outcome {
    if let Err(e) = w.send(cell.code, cell.envs).await {
        return if w.alive() {
            Outcome::Broken(e)
        } else {
            Outcome::Died(format!("{e}"))
        };
    }
    let deadline = cell.limit.and_then(|l| Instant::now().checked_add(l));
    let mut interrupted: Option<(Instant, Why)> = None;
    let mut out = Forward::new(tx);
    let (mut out_open, mut err_open, mut client_open) = (true, true, true);
    let (mut obuf, mut ebuf) = (vec![0u8; READ_BYTES], vec![0u8; READ_BYTES]);
    let far = || Instant::now() + Duration::from_secs(86_400);
    loop {
        let timeout_at = deadline.unwrap_or_else(far);
        let kill_at = interrupted.map(|(at, _)| at + GRACE).unwrap_or_else(far);
        tokio::select! {
            r = w.results.next_result() => {
                out.drain(w).await;
                return match (r, interrupted) {
                    (Err(e), _) => Outcome::Broken(e),
                    (Ok(_), Some((_, Why::ClientGone))) => Outcome::ClientGone { killed: false },
                    (Ok(r), Some((_, Why::Timeout))) if r.status == "interrupted" => {
                        Outcome::TimedOut(Some(r))
                    }
                    (Ok(r), _) => Outcome::Finished(r),
                };
            }
            n = w.stdout.read(&mut obuf), if out_open && out.ready() => match n {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => out.push(InterpreterChunkType::Stdout, &obuf[..n]),
            },
            n = w.stderr.read(&mut ebuf), if err_open && out.ready() => match n {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => out.push(InterpreterChunkType::Stderr, &ebuf[..n]),
            },
            permit = tx.reserve(), if out.pending.is_some() => match (permit, out.pending.take()) {
                (Ok(p), Some(m)) => p.send(m),
                _ => out.discard = true,
            },
            status = w.child.wait() => {
                out.drain(w).await;
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                return match w.results.leftover() {
                    Some(r) if interrupted.is_none() => Outcome::Finished(r),
                    _ => Outcome::Died(status),
                };
            }
            _ = tokio::time::sleep_until(timeout_at), if deadline.is_some() && interrupted.is_none() => {
                w.interrupt();
                interrupted = Some((Instant::now(), Why::Timeout));
            }
            _ = tokio::time::sleep_until(kill_at), if interrupted.is_some() => {
                w.kill();
                return match interrupted.map(|(_, why)| why) {
                    Some(Why::ClientGone) => Outcome::ClientGone { killed: true },
                    _ => Outcome::TimedOut(None),
                };
            }
            m = stream.next(), if client_open => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    client_open = false;
                    out.discard = true;
                    out.pending = None;
                    if interrupted.is_none() {
                        w.interrupt();
                        interrupted = Some((Instant::now(), Why::ClientGone));
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = until_deleted(deleted) => {
                w.kill();
                return Outcome::Deleted;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_characters_cut_by_reads_are_joined() {
        let text = "aé€😀z";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let mut s = Utf8Stream::default();
            let mut got = s.push(&bytes[..cut]);
            got.push_str(&s.push(&bytes[cut..]));
            got.push_str(&s.finish());
            assert_eq!(got, text, "cut at {cut}");
        }
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(&[0xE2, 0x82]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
        assert_eq!(s.push(b"\xFFok"), "\u{FFFD}ok");
    }

    #[test]
    fn close_reasons_fit_a_frame() {
        let long = "é".repeat(100);
        let r = clip_reason(long);
        assert!(r.len() <= 123, "{}", r.len());
        assert!(r.ends_with("..."));
        assert_eq!(clip_reason("short".into()), "short");
    }
}
