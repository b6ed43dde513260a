//! The terminal websocket (`…/connect`, `…/create-connect`), as the SDKs' `PtyHandle` speaks it:
//!
//! 1. the daemon sends the text frame `{"type":"control","status":"connected"}`, then the
//!    session's scrollback as one binary frame (if any), then the terminal's output as binary
//!    frames as it comes;
//! 2. every binary (or text) frame from the client is written to the terminal as is;
//! 3. when the shell ends: `{"type":"control","status":"exited","exitCode":N[,"exitReason":…]}`
//!    (only to clients that offered the [`EXIT_CONTROL_PROTOCOL`] subprotocol), then a close frame
//!    with code 1000 (exit 0) or 1011 and reason `{"exitCode":N[,"exitReason":…]}`;
//! 4. a client that takes no output for [`super::CLIENT_STALL`] while its queue is full is closed
//!    with 1008 `slow consumer`; one whose session could not be attached gets
//!    `{"type":"control","status":"error","error":…}` and a 1011 close with reason `{"error":…}`.
//! 5. a client that closes gets the daemon's close reply; the session goes on.
//!
//! The handshake answers with one of the offered subprotocols (Node's `ws` refuses a handshake
//! that picks none): [`EXIT_CONTROL_PROTOCOL`] when offered, else the first other offered token
//! that is not the envs token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use cove_api_types::toolbox::pty::{PtyCloseReason, PtyControl, PtyControlStatus};
use futures::{SinkExt, StreamExt};

use super::session::{Exit, PtySession};
use crate::error::{Result, ToolboxError};
use crate::server::AppState;

/// Offered by clients that want the `exited` control message before the close frame.
pub const EXIT_CONTROL_PROTOCOL: &str = "X-Daytona-Pty-Exit-Control";
/// `create-connect`'s environment: this prefix, then the base64url (unpadded) JSON object.
pub const ENVS_PROTOCOL_PREFIX: &str = "X-Daytona-Pty-Envs~";
/// Largest input message.
const MAX_INPUT_MESSAGE: usize = 1 << 20;
/// How long the daemon waits for the client's close frame after its own.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// A close frame's reason is at most 123 bytes.
const MAX_CLOSE_REASON: usize = 123;

/// What the client offered in `Sec-WebSocket-Protocol`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Offer {
    /// [`EXIT_CONTROL_PROTOCOL`] was offered.
    pub exit_control: bool,
    /// The subprotocol the handshake answers with.
    pub echo: Option<String>,
    /// The envs token's payload (after [`ENVS_PROTOCOL_PREFIX`]).
    pub envs: Option<String>,
}

impl Offer {
    pub fn of(ws: &WebSocketUpgrade) -> Self {
        Self::from_tokens(ws.requested_protocols().filter_map(|v| v.to_str().ok()))
    }

    fn from_tokens<'a>(tokens: impl Iterator<Item = &'a str>) -> Self {
        let mut offer = Self::default();
        let mut other = None;
        for token in tokens {
            if token == EXIT_CONTROL_PROTOCOL {
                offer.exit_control = true;
            } else if let Some(envs) = token.strip_prefix(ENVS_PROTOCOL_PREFIX) {
                offer.envs = Some(envs.to_owned());
            } else if other.is_none() && !token.is_empty() {
                other = Some(token.to_owned());
            }
        }
        offer.echo = if offer.exit_control {
            Some(EXIT_CONTROL_PROTOCOL.to_owned())
        } else {
            other
        };
        offer
    }

    /// The environment of the envs token (empty without one); 400 when it is not base64url of a
    /// JSON object of strings.
    pub fn decode_envs(&self) -> Result<BTreeMap<String, String>> {
        let Some(token) = &self.envs else {
            return Ok(BTreeMap::new());
        };
        let bad =
            |why: String| ToolboxError::BadRequest(format!("invalid envs subprotocol: {why}"));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|e| bad(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
    }
}

/// Completes the handshake and serves the terminal to the client; an attached client counts as
/// work in progress ([`crate::busy`]).
pub fn upgrade(
    ws: WebSocketUpgrade,
    offer: &Offer,
    session: Arc<PtySession>,
    st: Arc<AppState>,
) -> Response {
    let ws = match &offer.echo {
        Some(p) => ws.protocols([p.clone()]),
        None => ws,
    };
    let exit_control = offer.exit_control;
    ws.max_message_size(MAX_INPUT_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _attached = crate::busy::Activity::begin(&st);
            serve(socket, session, exit_control).await;
        })
}

fn control(status: PtyControlStatus, exit: Option<&Exit>, error: Option<String>) -> Message {
    let msg = PtyControl {
        kind: "control".into(),
        status,
        exit_code: exit.map(|e| e.code),
        exit_reason: exit.and_then(|e| e.reason.clone()),
        error,
    };
    Message::Text(serde_json::to_string(&msg).unwrap_or_default().into())
}

/// The close frame's reason as JSON, its `error` shortened to fit [`MAX_CLOSE_REASON`].
fn close_reason(mut reason: PtyCloseReason) -> String {
    loop {
        let json = serde_json::to_string(&reason).unwrap_or_default();
        if json.len() <= MAX_CLOSE_REASON {
            return json;
        }
        match reason.error.as_mut() {
            Some(e) if !e.is_empty() => {
                e.pop();
            }
            _ => return String::new(),
        }
    }
}

/// The close frame after `exit`: 1000 for exit 0, else 1011, reason `{"exitCode",…}`.
fn exit_close(exit: &Exit) -> Message {
    let reason = close_reason(PtyCloseReason {
        exit_code: Some(exit.code),
        exit_reason: exit.reason.clone(),
        error: None,
    });
    Message::Close(Some(CloseFrame {
        code: if exit.code == 0 { 1000 } else { 1011 },
        reason: reason.into(),
    }))
}

fn error_close(error: &str) -> Message {
    let reason = close_reason(PtyCloseReason {
        exit_code: None,
        exit_reason: None,
        error: Some(error.to_owned()),
    });
    Message::Close(Some(CloseFrame {
        code: 1011,
        reason: reason.into(),
    }))
}

async fn serve(socket: WebSocket, session: Arc<PtySession>, exit_control: bool) {
    let (mut tx, mut rx) = socket.split();
    let attached = match session.attach() {
        Ok(a) => a,
        Err(e) => {
            let error = format!("Failed to connect to PTY session: {e}");
            let _ = tx
                .send(control(PtyControlStatus::Error, None, Some(error.clone())))
                .await;
            let _ = tx.send(error_close(&error)).await;
            return;
        }
    };
    tracing::debug!(session = ?session.id, replay_bytes = attached.replay.len(), "pty client attached");
    if tx
        .send(control(PtyControlStatus::Connected, None, None))
        .await
        .is_err()
    {
        return;
    }
    if !attached.replay.is_empty() && tx.send(Message::Binary(attached.replay)).await.is_err() {
        return;
    }
    let input = async {
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Binary(data) => session.input(data).await,
                Message::Text(text) => {
                    session
                        .input(Bytes::copy_from_slice(text.as_str().as_bytes()))
                        .await;
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    };
    let output = async {
        if let Some(mut out) = attached.output {
            while let Some(chunk) = out.recv().await {
                if tx.send(Message::Binary(chunk)).await.is_err() {
                    return false;
                }
            }
        }
        true
    };
    let client_still_there = tokio::select! {
        () = input => false,
        open = output => open,
    };
    if !client_still_there {
        // Completes the close handshake the client began (or closes a broken socket).
        let _ = tokio::time::timeout(CLOSE_WAIT, tx.close()).await;
        tracing::debug!(session = ?session.id, "pty client detached");
        return;
    }
    // The output ended: the shell exited, or this client fell behind and was dropped.
    match session.exit() {
        Some(exit) => {
            if exit_control {
                let _ = tx
                    .send(control(PtyControlStatus::Exited, Some(&exit), None))
                    .await;
            }
            let _ = tx.send(exit_close(&exit)).await;
        }
        None => {
            let close = CloseFrame {
                code: 1008,
                reason: "slow consumer".into(),
            };
            let _ = tx.send(Message::Close(Some(close))).await;
        }
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(msg)) = rx.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers() {
        let o = Offer::from_tokens(
            [
                "X-Daytona-SDK-Version~0.226.1",
                EXIT_CONTROL_PROTOCOL,
                "X-Daytona-Pty-Envs~e30",
            ]
            .into_iter(),
        );
        assert!(o.exit_control);
        assert_eq!(o.echo.as_deref(), Some(EXIT_CONTROL_PROTOCOL));
        assert_eq!(o.envs.as_deref(), Some("e30"));
        assert_eq!(o.decode_envs().expect("envs"), BTreeMap::new());

        let o =
            Offer::from_tokens(["X-Daytona-Pty-Envs~e30", "X-Daytona-SDK-Version~1"].into_iter());
        assert!(!o.exit_control);
        assert_eq!(o.echo.as_deref(), Some("X-Daytona-SDK-Version~1"));

        let o = Offer::from_tokens(std::iter::empty());
        assert_eq!(o, Offer::default());
    }

    #[test]
    fn envs_token() {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"FOO":"bar","X":"a b/c?"}"#);
        let o = Offer {
            envs: Some(token),
            ..Offer::default()
        };
        let envs = o.decode_envs().expect("envs");
        assert_eq!(envs["FOO"], "bar");
        assert_eq!(envs["X"], "a b/c?");
        for bad in ["not!base64", "bm90IGpzb24"] {
            let o = Offer {
                envs: Some(bad.into()),
                ..Offer::default()
            };
            let e = o.decode_envs().expect_err("bad token");
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn close_reasons_fit_a_frame() {
        let long = "x".repeat(500);
        let r = close_reason(PtyCloseReason {
            exit_code: None,
            exit_reason: None,
            error: Some(long),
        });
        assert!(r.len() <= MAX_CLOSE_REASON, "{}", r.len());
        let v: serde_json::Value = serde_json::from_str(&r).expect("json");
        assert!(v["error"].as_str().expect("error").starts_with("xxx"));
        let exit = Exit::new(3);
        let Message::Close(Some(f)) = exit_close(&exit) else {
            panic!("not a close frame");
        };
        assert_eq!(f.code, 1011);
        assert_eq!(
            f.reason.as_str(),
            r#"{"exitCode":3,"exitReason":"non-zero exit"}"#
        );
        let Message::Close(Some(f)) = exit_close(&Exit::new(0)) else {
            panic!("not a close frame");
        };
        assert_eq!((f.code, f.reason.as_str()), (1000, r#"{"exitCode":0}"#));
    }
}
