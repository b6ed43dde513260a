//! `…/logs` answers (CONTRACT §10.4): the tail as JSON or text, or a live follow over a
//! websocket (prefixed frames) or chunked plain text.
//!
//! A follower that falls more than the kept tail behind gets [`dropped_marker`] in place of what
//! it missed (a stderr frame on the websocket), then continues with the kept output.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cove_api_types::toolbox::SessionCommandLogsResponse;

use super::Ws;
use super::log::CommandLog;
use crate::output::{Stream, dropped_marker};

pub const STDOUT_PREFIX: &[u8] = b"\x01\x01\x01";
pub const STDERR_PREFIX: &[u8] = b"\x02\x02\x02";

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

/// `busy`: the daemon's state, whose activity counts an attached websocket while it lasts.
pub(super) fn logs_response(
    busy: &Arc<crate::server::AppState>,
    log: Arc<CommandLog>,
    follow: bool,
    headers: &HeaderMap,
    ws: Ws,
) -> Response {
    if follow {
        if let Ok(ws) = ws {
            let busy = Arc::clone(busy);
            return ws.on_upgrade(move |socket| async move {
                let _attached = crate::busy::Activity::begin(&busy);
                follow_ws(socket, log).await;
            });
        }
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            Body::from_stream(follow_text(log)),
        )
            .into_response();
    }
    let text = log.outputs();
    if wants_json(headers) {
        Json(SessionCommandLogsResponse {
            output: text.combined,
            stdout: text.stdout,
            stderr: text.stderr,
        })
        .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text.combined,
        )
            .into_response()
    }
}

/// Plain HTTP follow: the combined output as it arrives, until the command ends.
fn follow_text(log: Arc<CommandLog>) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    futures::stream::unfold((log, 0u64, false), |(log, from, done)| async move {
        if done {
            return None;
        }
        let mut rx = log.subscribe();
        loop {
            let (since, finished) = log.since(from);
            if !since.chunks.is_empty() || since.missed > 0 || finished {
                let mut data = Vec::new();
                if since.missed > 0 {
                    data.extend_from_slice(dropped_marker(since.missed).as_bytes());
                }
                for (_, chunk) in since.chunks {
                    data.extend_from_slice(&chunk);
                }
                return Some((Ok(Bytes::from(data)), (log, since.next, finished)));
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    })
}

fn frame(stream: Stream, data: &[u8]) -> Message {
    let prefix = match stream {
        Stream::Stdout => STDOUT_PREFIX,
        Stream::Stderr => STDERR_PREFIX,
    };
    let mut frame = Vec::with_capacity(prefix.len() + data.len());
    frame.extend_from_slice(prefix);
    frame.extend_from_slice(data);
    Message::Binary(frame.into())
}

/// Streams prefixed chunks (`\x01\x01\x01` stdout, `\x02\x02\x02` stderr) until the command ends.
async fn follow_ws(mut socket: WebSocket, log: Arc<CommandLog>) {
    let mut rx = log.subscribe();
    let mut from = 0;
    loop {
        let (since, finished) = log.since(from);
        from = since.next;
        let gap = (since.missed > 0).then(|| (Stream::Stderr, dropped_marker(since.missed)));
        let frames = gap
            .into_iter()
            .map(|(s, m)| frame(s, m.as_bytes()))
            .chain(since.chunks.iter().map(|(s, d)| frame(*s, d)));
        for f in frames {
            if socket.send(f).await.is_err() {
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
    let close = CloseFrame {
        code: 1000,
        reason: "".into(),
    };
    let _ = socket.send(Message::Close(Some(close))).await;
}
