//! Terminal sessions (`/process/pty*`) against the real daemon: the terminal's bytes both ways
//! over the websocket as the SDKs' `PtyHandle` speaks it (a `connected` control message first,
//! binary frames, the `exited` control message and the exit in the close reason), resizes seen
//! by `stty size`, several clients at once, the scrollback replayed on reconnect, kill and reap,
//! and the error envelopes.

use crate::common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine as _;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const EXIT_CONTROL: &str = "X-Daytona-Pty-Exit-Control";
/// How long any one expectation may wait.
const WAIT: Duration = Duration::from_secs(15);

fn assert_envelope(r: &cove_toolbox::client::Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text());
    let v = r.json();
    assert_eq!(v["statusCode"], status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["source"], "DAYTONA_DAEMON", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

/// The websocket handshake to `uri` offering `protocols`: the socket, or the HTTP refusal.
async fn handshake(
    d: &Daemon,
    uri: &str,
    protocols: &[&str],
) -> Result<(WebSocketStream<tokio::net::UnixStream>, Option<String>), (StatusCode, Value)> {
    let stream = tokio::net::UnixStream::connect(&d.sock)
        .await
        .expect("connect");
    let mut req = format!("ws://toolbox{uri}")
        .into_client_request()
        .expect("request");
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&protocols.join(", ")).expect("protocols"),
        );
    }
    match tokio_tungstenite::client_async(req, stream).await {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
            let proto = resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((ws, proto))
        }
        Err(WsError::Http(resp)) => {
            let body = resp.body().as_deref().unwrap_or_default();
            let v = serde_json::from_slice(body).unwrap_or(Value::Null);
            Err((resp.status(), v))
        }
        Err(e) => panic!("websocket handshake to {uri}: {e}"),
    }
}

/// One attached client: the output so far, the control messages, the close frame.
struct Term {
    ws: WebSocketStream<tokio::net::UnixStream>,
    out: Vec<u8>,
    /// Where the next [`Term::expect`] starts looking.
    cursor: usize,
    controls: Vec<Value>,
    close: Option<(u16, String)>,
    protocol: Option<String>,
}

impl Term {
    /// Attaches and checks the first frame is the `connected` control message.
    async fn open(d: &Daemon, uri: &str, protocols: &[&str]) -> Self {
        let (ws, protocol) = handshake(d, uri, protocols)
            .await
            .unwrap_or_else(|(s, v)| panic!("{uri}: {s} {v}"));
        let mut t = Self {
            ws,
            out: Vec::new(),
            cursor: 0,
            controls: Vec::new(),
            close: None,
            protocol,
        };
        assert!(t.next().await, "closed before the connected message");
        assert_eq!(
            t.controls.first(),
            Some(&json!({"type": "control", "status": "connected"})),
            "first frame; output {:?}",
            String::from_utf8_lossy(&t.out)
        );
        t
    }

    /// Reads one frame; false once the close frame came (or the socket ended).
    async fn next(&mut self) -> bool {
        if self.close.is_some() {
            return false;
        }
        let msg = tokio::time::timeout(WAIT, self.ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no frame within {WAIT:?}; output so far {:?}",
                    String::from_utf8_lossy(&self.out)
                )
            });
        match msg {
            Some(Ok(Message::Binary(b))) => self.out.extend_from_slice(&b),
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("text frames are JSON");
                assert_eq!(v["type"], "control", "{v}");
                self.controls.push(v);
            }
            Some(Ok(Message::Close(f))) => {
                let (code, reason) = f
                    .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                    .unwrap_or((1005, String::new()));
                self.close = Some((code, reason));
                return false;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("websocket error: {e}"),
            None => {
                self.close = Some((1006, String::new()));
                return false;
            }
        }
        true
    }

    async fn send(&mut self, input: &str) {
        self.ws
            .send(Message::Binary(input.as_bytes().to_vec().into()))
            .await
            .expect("send input");
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    /// Waits until output after the cursor contains `needle`; moves the cursor past it.
    async fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        // Only new output is scanned (plus the needle's length back), so a long output stays
        // linear.
        let mut from = self.cursor;
        loop {
            let tail = &self.out[from..];
            if let Some(at) = tail
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                self.cursor = from + at + needle.len();
                return;
            }
            from = self.out.len().saturating_sub(needle.len() - 1).max(from);
            assert!(
                Instant::now() < deadline && self.next().await,
                "{needle:?} never came; output {:?}, close {:?}",
                self.output(),
                self.close
            );
        }
    }

    /// Reads to the close frame: its code and reason.
    async fn closed(&mut self) -> (u16, String) {
        while self.next().await {}
        self.close.clone().expect("closed")
    }
}

async fn create(d: &Daemon, body: Value) -> cove_toolbox::client::Reply {
    d.post_json("/process/pty", body).await
}

/// Digits after `marker` in `text` (e.g. the shell's `$$` after `PID=`), skipping the echo of
/// the command line itself.
fn number_after(text: &str, marker: &str) -> Option<u32> {
    text.match_indices(marker).find_map(|(i, _)| {
        let digits: String = text[i + marker.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

#[tokio::test]
async fn pty_input_output_resize_and_exit() {
    let d = Daemon::start().await;
    let r = create(&d, json!({"id": "t1", "cols": 100, "rows": 30})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json(), json!({"sessionId": "t1"}));
    let info = d.get("/process/pty/t1").await.json();
    assert_eq!(
        (
            &info["id"],
            &info["cols"],
            &info["rows"],
            &info["active"],
            &info["lazyStart"]
        ),
        (
            &json!("t1"),
            &json!(100),
            &json!(30),
            &json!(true),
            &json!(false)
        ),
        "{info}"
    );
    assert_eq!(info["envs"]["TERM"], "xterm-256color", "{info}");
    assert!(info.get("exitCode").is_none(), "{info}");

    let mut t = Term::open(
        &d,
        "/process/pty/t1/connect",
        &["X-Daytona-SDK-Version~0.1", EXIT_CONTROL],
    )
    .await;
    assert_eq!(t.protocol.as_deref(), Some(EXIT_CONTROL));
    // The echo of the command line holds "40+2", only the shell's answer "42".
    t.send("echo $((40+2))\n").await;
    t.expect("42").await;
    t.send("stty size\n").await;
    t.expect("30 100").await;

    let r = d
        .post_json("/process/pty/t1/resize", json!({"cols": 120, "rows": 40}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        (r.json()["cols"].clone(), r.json()["rows"].clone()),
        (json!(120), json!(40))
    );
    // Text frames are input too (a browser may send them).
    t.ws.send(Message::Text("stty size\n".into()))
        .await
        .expect("send");
    t.expect("40 120").await;

    t.send("exit 3\n").await;
    let (code, reason) = t.closed().await;
    assert_eq!(code, 1011);
    let reason: Value = serde_json::from_str(&reason).expect("JSON close reason");
    assert_eq!(
        reason,
        json!({"exitCode": 3, "exitReason": "non-zero exit"})
    );
    assert_eq!(
        t.controls.last(),
        Some(
            &json!({"type": "control", "status": "exited", "exitCode": 3, "exitReason": "non-zero exit"})
        )
    );

    // The ended session stays (with its exit code), cannot be resized, and a late client
    // still gets its scrollback and exit.
    let info = d.get("/process/pty/t1").await.json();
    assert_eq!(
        (&info["active"], &info["exitCode"]),
        (&json!(false), &json!(3)),
        "{info}"
    );
    let r = d
        .post_json("/process/pty/t1/resize", json!({"cols": 80, "rows": 24}))
        .await;
    assert_envelope(&r, 410, "SESSION_ENDED");
    let mut late = Term::open(&d, "/process/pty/t1/connect", &[EXIT_CONTROL]).await;
    let (code, _) = late.closed().await;
    assert_eq!(code, 1011);
    assert!(late.output().contains("42"), "{:?}", late.output());
    assert_eq!(
        late.controls.last().map(|c| c["exitCode"].clone()),
        Some(json!(3))
    );

    // An ended id can be reused; exit 0 closes with 1000.
    let r = create(&d, json!({"id": "t1"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let mut t = Term::open(&d, "/process/pty/t1/connect", &[]).await;
    assert_eq!(t.protocol, None);
    t.send("exit\n").await;
    let (code, reason) = t.closed().await;
    assert_eq!((code, reason.as_str()), (1000, r#"{"exitCode":0}"#));
    // Without the exit-control subprotocol only the close frame tells.
    assert_eq!(t.controls.len(), 1, "{:?}", t.controls);
    let list = d.get("/process/pty").await.json();
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["sessions"][0]["exitCode"], 0, "{list}");
}

#[tokio::test]
async fn pty_clients_share_the_terminal_and_reconnect_replays() {
    let d = Daemon::start().await;
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", d.pid())).map_or(0, Iterator::count);
    let idle_fds = fds();
    let r = create(&d, json!({"id": "shared"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let uri = "/process/pty/shared/connect";
    let mut a = Term::open(&d, uri, &[EXIT_CONTROL]).await;
    let mut b = Term::open(&d, uri, &[EXIT_CONTROL]).await;
    a.send("echo A$((1+1))A\n").await;
    a.expect("A2A").await;
    b.expect("A2A").await;
    // Either may write.
    b.send("echo PID=$$; echo B$((2+2))B\n").await;
    b.expect("B4B").await;
    a.expect("B4B").await;
    let pid = number_after(&a.output(), "PID=").expect("the shell's pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    // A leaves; output produced meanwhile is replayed to the next client.
    drop(a);
    b.send("echo C$((3+3))C\n").await;
    b.expect("C6C").await;
    let mut c = Term::open(&d, uri, &[]).await;
    c.expect("A2A").await;
    c.expect("C6C").await;

    // Kill: both clients learn the exit (137), the session is gone, the shell reaped.
    let r = d.delete("/process/pty/shared").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "PTY session deleted"}));
    let (code, reason) = b.closed().await;
    assert_eq!(code, 1011);
    assert_eq!(
        serde_json::from_str::<Value>(&reason).expect("reason"),
        json!({"exitCode": 137, "exitReason": "SIGKILL"})
    );
    assert_eq!(
        b.controls.last().map(|c| c["status"].clone()),
        Some(json!("exited"))
    );
    let (code, reason) = c.closed().await;
    assert_eq!(code, 1011);
    assert!(reason.contains("137"), "{reason}");
    assert_envelope(&d.get("/process/pty/shared").await, 404, "NOT_FOUND");
    let deadline = Instant::now() + WAIT;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "shell {pid} not reaped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No descriptor of the terminal stays open in the daemon.
    drop((b, c));
    while fds() > idle_fds {
        assert!(
            Instant::now() < deadline,
            "{} fds open, {idle_fds} when idle",
            fds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pty_create_connect_lazy_start_and_envs() {
    let d = Daemon::start().await;
    std::fs::create_dir_all(d.real("/sub dir")).expect("dir");
    // create-connect as the SDKs call it: query for id/cwd/size, envs in a subprotocol token.
    let envs = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"PTY_GREETING":"hello there"}"#);
    let envs = format!("X-Daytona-Pty-Envs~{envs}");
    let uri = format!(
        "/process/pty/create-connect?id=cc&cols=90&rows=20&cwd={}",
        q("/sub dir")
    );
    let mut t = Term::open(&d, &uri, &[EXIT_CONTROL, &envs]).await;
    assert_eq!(t.protocol.as_deref(), Some(EXIT_CONTROL));
    t.send("echo \"[$PTY_GREETING]\"; pwd; stty size\n").await;
    t.expect("[hello there]").await;
    t.expect("sub dir").await;
    t.expect("20 90").await;
    let info = d.get("/process/pty/cc").await.json();
    assert_eq!(
        (&info["cwd"], &info["envs"]["PTY_GREETING"]),
        (&json!("/sub dir"), &json!("hello there")),
        "{info}"
    );
    // The same id again is a conflict, refused before the upgrade.
    let (status, v) = handshake(&d, "/process/pty/create-connect?id=cc", &[EXIT_CONTROL])
        .await
        .map(|_| ())
        .expect_err("duplicate id");
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "CONFLICT", "{v}");
    for bad in [
        "/process/pty/create-connect?id=x&cols=abc",
        "/process/pty/create-connect?id=x&rows=0",
        "/process/pty/create-connect?cols=10",
    ] {
        let (status, v) = handshake(&d, bad, &[]).await.map(|_| ()).expect_err(bad);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let (status, _) = handshake(
        &d,
        "/process/pty/create-connect?id=y",
        &["X-Daytona-Pty-Envs~!!"],
    )
    .await
    .map(|_| ())
    .expect_err("bad envs token");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    t.send("exit 0\n").await;
    assert_eq!(t.closed().await.0, 1000);

    // Lazy: no shell until the first client.
    let r = create(
        &d,
        json!({"id": "lazy", "lazyStart": true, "rows": 12, "cols": 34}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let info = d.get("/process/pty/lazy").await.json();
    assert_eq!(
        (&info["active"], &info["lazyStart"]),
        (&json!(false), &json!(true)),
        "{info}"
    );
    let r = d
        .post_json("/process/pty/lazy/resize", json!({"cols": 44, "rows": 11}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut t = Term::open(&d, "/process/pty/lazy/connect", &[EXIT_CONTROL]).await;
    assert_eq!(d.get("/process/pty/lazy").await.json()["active"], true);
    t.send("stty size\n").await;
    t.expect("11 44").await;
    t.send("kill -9 $$\n").await;
    let (code, reason) = t.closed().await;
    assert_eq!(code, 1011);
    assert_eq!(
        serde_json::from_str::<Value>(&reason).expect("reason")["exitCode"],
        137
    );
}

#[tokio::test]
async fn pty_bad_requests_are_envelopes() {
    let d = Daemon::start().await;
    assert_envelope(&create(&d, json!({})).await, 400, "BAD_REQUEST");
    assert_envelope(&create(&d, json!({"id": ""})).await, 400, "BAD_REQUEST");
    assert_envelope(
        &create(&d, json!({"id": "x".repeat(300)})).await,
        400,
        "BAD_REQUEST",
    );
    for (cols, rows) in [(0, 24), (80, 0), (1001, 24), (80, 1001)] {
        let r = create(&d, json!({"id": "s", "cols": cols, "rows": rows})).await;
        assert_envelope(&r, 400, "BAD_REQUEST");
    }
    assert_envelope(
        &create(&d, json!({"id": "s", "cols": -1})).await,
        400,
        "INVALID_REQUEST_BODY",
    );
    assert_envelope(
        &create(&d, json!({"id": "s", "cwd": "/no/such/dir"})).await,
        400,
        "BAD_REQUEST",
    );
    assert_envelope(&d.get("/process/pty/nope").await, 404, "NOT_FOUND");
    assert_envelope(&d.delete("/process/pty/nope").await, 404, "NOT_FOUND");
    let r = d
        .post_json("/process/pty/nope/resize", json!({"cols": 80, "rows": 24}))
        .await;
    assert_envelope(&r, 404, "NOT_FOUND");
    let (status, v) = handshake(&d, "/process/pty/nope/connect", &[EXIT_CONTROL])
        .await
        .map(|_| ())
        .expect_err("unknown session");
    assert_eq!(
        (status, v["code"].clone()),
        (StatusCode::NOT_FOUND, json!("NOT_FOUND")),
        "{v}"
    );

    let r = create(&d, json!({"id": "s", "lazyStart": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_envelope(&create(&d, json!({"id": "s"})).await, 409, "CONFLICT");
    for body in [
        json!({"cols": 0, "rows": 24}),
        json!({"cols": 80, "rows": 1001}),
    ] {
        let r = d.post_json("/process/pty/s/resize", body).await;
        assert_envelope(&r, 400, "BAD_REQUEST");
    }
    let r = d
        .post_json("/process/pty/s/resize", json!({"cols": 80}))
        .await;
    assert_envelope(&r, 400, "INVALID_REQUEST_BODY");
    // Connect without a websocket upgrade.
    assert_envelope(&d.get("/process/pty/s/connect").await, 400, "BAD_REQUEST");

    // The table is bounded: lazy sessions count (they hold an id), the next is a conflict.
    let max = cove_toolbox::pty::MAX_SESSIONS;
    for i in 1..max {
        let r = create(&d, json!({"id": format!("n{i}"), "lazyStart": true})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{i}: {}", r.text());
    }
    assert_envelope(
        &create(&d, json!({"id": "one-too-many"})).await,
        409,
        "CONFLICT",
    );
    assert_eq!(d.delete("/process/pty/n1").await.status, StatusCode::OK);
    let r = create(&d, json!({"id": "one-too-many", "lazyStart": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let list = d.get("/process/pty").await.json();
    assert_eq!(
        list["sessions"].as_array().map(Vec::len),
        Some(max),
        "{list}"
    );
    assert_eq!(list["sessions"][0]["id"], "s", "creation order: {list}");
}

#[tokio::test]
async fn pty_a_stalled_client_is_dropped_and_the_others_go_on() {
    let d = Daemon::start().await;
    let r = create(&d, json!({"id": "flow"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let uri = "/process/pty/flow/connect";
    let mut reader = Term::open(&d, uri, &[EXIT_CONTROL]).await;
    // Attached, then reads nothing more: its queue and socket fill up.
    let mut stalled = Term::open(&d, uri, &[EXIT_CONTROL]).await;
    let started = Instant::now();
    reader
        .send("head -c 30000000 /dev/zero | tr '\\0' x; echo; echo DONE-$((5+5))\n")
        .await;
    reader.expect("DONE-10").await;
    let took = started.elapsed();
    // The stalled client held the terminal back for the stall bound, not for ever.
    assert!(
        took >= cove_toolbox::pty::CLIENT_STALL,
        "the stalled client never held the terminal back ({took:?})"
    );
    let (code, reason) = stalled.closed().await;
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    assert!(
        stalled.out.len() < 30_000_000,
        "the stalled client got all {} bytes",
        stalled.out.len()
    );
    // The session and the other client are unaffected.
    reader.send("echo OK$((1+2))\n").await;
    reader.expect("OK3").await;
    assert_eq!(d.get("/process/pty/flow").await.json()["active"], true);
}
