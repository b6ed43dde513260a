//! The code interpreter (`/process/interpreter/*`) against the static daemon and a real
//! `python3`: state, isolation, streaming, errors, timeouts, deletion, bounds.

use crate::common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>;

async fn connect(d: &Daemon) -> Ws {
    let stream = tokio::net::UnixStream::connect(&d.sock)
        .await
        .expect("connect");
    let (ws, resp) =
        tokio_tungstenite::client_async("ws://toolbox/process/interpreter/execute", stream)
            .await
            .expect("websocket handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

/// What one execution produced, as an SDK would see it.
#[derive(Debug, Default)]
struct Run {
    chunks: Vec<Value>,
    /// When each stdout chunk arrived, from the request.
    stdout_at: Vec<Duration>,
    close: Option<(u16, String)>,
    /// When the close arrived, from the request.
    closed_at: Duration,
}

impl Run {
    fn text(&self, kind: &str) -> String {
        self.chunks
            .iter()
            .filter(|c| c["type"] == kind)
            .map(|c| c["text"].as_str().unwrap_or_default())
            .collect()
    }

    fn stdout(&self) -> String {
        self.text("stdout")
    }

    fn error(&self) -> Option<&Value> {
        self.chunks.iter().find(|c| c["type"] == "error")
    }

    fn completed(&self) -> bool {
        self.chunks
            .iter()
            .any(|c| c["type"] == "control" && c["text"] == "completed")
    }

    fn close_code(&self) -> u16 {
        self.close.as_ref().map(|c| c.0).unwrap_or(0)
    }
}

/// Sends `request` as the first message and reads to the close.
async fn run_request(d: &Daemon, request: &str) -> Run {
    let mut ws = connect(d).await;
    ws.send(Message::Text(request.into())).await.expect("send");
    let started = Instant::now();
    let mut run = Run::default();
    let read = async {
        while let Some(m) = ws.next().await {
            match m.expect("frame") {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON chunk");
                    for key in ["type", "text", "name", "value", "traceback"] {
                        assert!(v[key].is_string(), "{key} missing in {v}");
                    }
                    if v["type"] == "stdout" {
                        run.stdout_at.push(started.elapsed());
                    }
                    run.chunks.push(v);
                }
                Message::Close(f) => {
                    run.close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                    run.closed_at = started.elapsed();
                    break;
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the execution ended within 60 s");
    run
}

async fn run_code(d: &Daemon, code: &str, context: Option<&str>) -> Run {
    let mut req = json!({ "code": code });
    if let Some(id) = context {
        req["contextId"] = json!(id);
    }
    run_request(d, &req.to_string()).await
}

async fn create(d: &Daemon, body: Value) -> String {
    let r = d.post_json("/process/interpreter/context", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["language"], "python", "{v}");
    assert_eq!(v["active"], true, "{v}");
    assert!(
        v["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn state_carries_over_and_contexts_are_isolated() {
    let d = Daemon::start().await;
    // The default context exists without a create, with or without its id.
    let r = run_code(&d, "x = 1", None).await;
    assert!(r.completed(), "{r:?}");
    assert_eq!(r.close_code(), 1000, "{r:?}");
    assert!(r.error().is_none(), "{r:?}");
    let r = run_code(&d, "print(x + 1)", None).await;
    assert_eq!(r.stdout(), "2\n", "{r:?}");
    let r = run_code(&d, "print(x + 2)", Some("default")).await;
    assert_eq!(r.stdout(), "3\n", "{r:?}");
    // A created context has its own namespace...
    let a = create(&d, json!({})).await;
    let r = run_code(&d, "print(x)", Some(&a)).await;
    let e = r.error().expect("NameError");
    assert_eq!(e["name"], "NameError", "{r:?}");
    assert!(r.completed(), "{r:?}");
    run_code(
        &d,
        "import math\ndef f(n):\n    return math.factorial(n)\ny = 'a'",
        Some(&a),
    )
    .await;
    let r = run_code(&d, "print(f(5), y)", Some(&a)).await;
    assert_eq!(r.stdout(), "120 a\n", "{r:?}");
    // ...and its own process, in its own directory.
    std::fs::create_dir_all(d.root.join("proj")).expect("dir");
    let b = create(&d, json!({ "cwd": "/proj", "language": "python" })).await;
    let r = run_code(&d, "import os; print(os.getcwd(), os.getpid())", Some(&b)).await;
    let out = r.stdout();
    assert!(
        out.starts_with(&format!("{} ", d.root.join("proj").display())),
        "{out}"
    );
    let r2 = run_code(&d, "import os; print(os.getpid())", Some(&a)).await;
    assert_ne!(out.split_whitespace().nth(1), Some(r2.stdout().trim()));
    // stderr, envs for one execution, stdin at EOF, exit() ends only the cell.
    let r = run_code(
        &d,
        "import sys, os\nsys.stderr.write('warn\\n')\nprint(os.environ.get('COVE_T'))",
        None,
    )
    .await;
    assert_eq!(r.text("stderr"), "warn\n", "{r:?}");
    assert_eq!(r.stdout(), "None\n", "{r:?}");
    let req = json!({"code": "import os; print(os.environ['COVE_T'])", "envs": {"COVE_T": "v"}});
    assert_eq!(run_request(&d, &req.to_string()).await.stdout(), "v\n");
    let r = run_code(&d, "input()", None).await;
    assert_eq!(r.error().expect("EOFError")["name"], "EOFError", "{r:?}");
    let r = run_code(&d, "print('bye'); exit(3)", None).await;
    assert!(r.error().is_none() && r.completed(), "{r:?}");
    assert_eq!(run_code(&d, "print(x)", None).await.stdout(), "1\n");
    // Output of subprocesses is captured too.
    let r = run_code(
        &d,
        "import subprocess; subprocess.run(['echo', 'sub'])",
        None,
    )
    .await;
    assert_eq!(r.stdout(), "sub\n", "{r:?}");
    // The list holds the created contexts only.
    let r = d.get("/process/interpreter/context").await;
    assert_eq!(r.status, StatusCode::OK);
    let ids: Vec<String> = r.json()["contexts"]
        .as_array()
        .expect("contexts")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids, vec![a.clone(), b.clone()]);
}

#[tokio::test]
async fn errors_carry_name_value_and_traceback() {
    let d = Daemon::start().await;
    let r = run_code(&d, "print('before')\n1/0", None).await;
    assert_eq!(r.stdout(), "before\n");
    let e = r.error().expect("error chunk");
    assert_eq!(e["name"], "ZeroDivisionError");
    assert_eq!(e["value"], "division by zero");
    let tb = e["traceback"].as_str().expect("traceback");
    assert!(tb.starts_with("Traceback (most recent call last):"), "{tb}");
    assert!(tb.contains("line 2") && tb.contains("1/0"), "{tb}");
    assert!(
        tb.ends_with("ZeroDivisionError: division by zero\n"),
        "{tb}"
    );
    assert!(!tb.contains("run_cell"), "driver frames leak: {tb}");
    assert!(r.completed(), "{r:?}");
    assert_eq!(r.close_code(), 1000);
    // The error chunk comes after the output and before `completed`.
    let kinds: Vec<&str> = r.chunks.iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(kinds, ["stdout", "error", "control"]);
    // A function of an earlier cell shows its own lines.
    run_code(&d, "def g():\n    raise ValueError('bad ' + 'value')", None).await;
    let r = run_code(&d, "g()", None).await;
    let e = r.error().expect("error");
    assert_eq!(
        (e["name"].as_str(), e["value"].as_str()),
        (Some("ValueError"), Some("bad value"))
    );
    assert!(
        e["traceback"]
            .as_str()
            .unwrap_or_default()
            .contains("raise ValueError"),
        "{e}"
    );
    let r = run_code(&d, "1/", None).await;
    assert_eq!(r.error().expect("error")["name"], "SyntaxError", "{r:?}");
    // The context survives its errors.
    assert_eq!(run_code(&d, "print('ok')", None).await.stdout(), "ok\n");
}

#[tokio::test]
async fn output_streams_while_the_code_runs() {
    let d = Daemon::start().await;
    let code = "import time\nfor i in range(4):\n    print(i)\n    time.sleep(0.3)";
    let r = run_code(&d, code, None).await;
    assert_eq!(r.stdout(), "0\n1\n2\n3\n");
    assert!(r.stdout_at.len() >= 3, "{r:?}");
    // The first line arrived long before the end.
    assert!(
        r.closed_at - r.stdout_at[0] > Duration::from_millis(600),
        "first chunk at {:?}, close at {:?}",
        r.stdout_at[0],
        r.closed_at
    );
    // Huge output arrives whole, in bounded chunks, UTF-8 intact.
    let code = "import sys\nfor i in range(200000):\n    print('é' * 20, i)\nsys.stdout.write('€' * 100000)";
    let r = run_code(&d, code, None).await;
    let mut expected: String = (0..200_000)
        .map(|i| format!("{} {i}\n", "é".repeat(20)))
        .collect();
    expected.push_str(&"€".repeat(100_000));
    let out = r.stdout();
    assert_eq!(out.len(), expected.len());
    assert!(out == expected, "the output differs");
    assert!(r.chunks.len() > 10, "one huge chunk: {}", r.chunks.len());
    assert!(r.completed());
}

#[tokio::test]
async fn timeouts_interrupt_and_the_context_stays_usable() {
    let d = Daemon::start().await;
    let ctx = create(&d, json!({})).await;
    run_code(&d, "kept = 41", Some(&ctx)).await;
    let req = json!({"code": "while True:\n    pass", "contextId": ctx, "timeout": 1});
    let r = run_request(&d, &req.to_string()).await;
    assert_eq!(r.close_code(), 4008, "{r:?}");
    let (_, reason) = r.close.clone().expect("close");
    assert!(reason.contains("timeout"), "{reason}");
    let e = r.error().expect("TimeoutError chunk");
    assert_eq!(e["name"], "TimeoutError");
    assert!(
        e["traceback"]
            .as_str()
            .unwrap_or_default()
            .contains("KeyboardInterrupt"),
        "{e}"
    );
    assert!(
        !r.completed(),
        "completed must not precede a timeout: {r:?}"
    );
    assert!(r.closed_at < Duration::from_secs(3), "{:?}", r.closed_at);
    // Interrupted in time: the state is kept.
    assert_eq!(
        run_code(&d, "print(kept + 1)", Some(&ctx)).await.stdout(),
        "42\n"
    );
    // Code that swallows the interrupt is killed; the next execution gets a fresh interpreter.
    let code = "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass";
    let req = json!({"code": code, "contextId": ctx, "timeout": 1});
    let r = run_request(&d, &req.to_string()).await;
    assert_eq!(r.close_code(), 4008, "{r:?}");
    assert!(r.closed_at < Duration::from_secs(5), "{:?}", r.closed_at);
    let r = run_code(&d, "print(kept)", Some(&ctx)).await;
    assert_eq!(r.error().expect("state lost")["name"], "NameError", "{r:?}");
    assert_eq!(
        run_code(&d, "print('again')", Some(&ctx)).await.stdout(),
        "again\n"
    );
}

#[tokio::test]
async fn executions_of_one_context_run_one_at_a_time() {
    let d = Daemon::start().await;
    let started = Instant::now();
    let slow = run_code(&d, "import time; time.sleep(0.8); v = 'slow'", None);
    let fast = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        run_code(&d, "print(v)", None).await
    };
    let (a, b) = tokio::join!(slow, fast);
    assert!(a.completed());
    // The second waited for the first, and so saw its variable.
    assert_eq!(b.stdout(), "slow\n", "{b:?}");
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn deleting_a_context_kills_its_process() {
    let d = Daemon::start().await;
    let ctx = create(&d, json!({})).await;
    let pid = run_code(&d, "import os; print(os.getpid())", Some(&ctx))
        .await
        .stdout();
    let pid: i32 = pid.trim().parse().expect("pid");
    let r = d
        .req(
            Method::DELETE,
            &format!("/process/interpreter/context/{ctx}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["message"], "Context deleted successfully");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its reaper.
        if stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the interpreter {pid} still runs: {stat}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Using it now: closed as not found; deleting again: 404; the list forgets it.
    let r = run_code(&d, "print(1)", Some(&ctx)).await;
    assert_eq!(r.close_code(), 1008, "{r:?}");
    assert!(
        r.close
            .as_ref()
            .is_some_and(|c| c.1.contains("context not found")),
        "{r:?}"
    );
    let r = d
        .req(
            Method::DELETE,
            &format!("/process/interpreter/context/{ctx}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["code"], "NOT_FOUND");
    assert_eq!(r.json()["source"], "DAYTONA_DAEMON");
    let r = d.get("/process/interpreter/context").await;
    assert_eq!(r.json()["contexts"], json!([]));
    // A deletion during an execution ends it.
    let ctx = create(&d, json!({})).await;
    let running = run_code(&d, "import time; time.sleep(30)", Some(&ctx));
    let delete = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        d.req(
            Method::DELETE,
            &format!("/process/interpreter/context/{ctx}"),
            &[],
            "",
        )
        .await
    };
    let (r, del) = tokio::join!(running, delete);
    assert_eq!(del.status, StatusCode::OK);
    assert_eq!(r.close_code(), 1001, "{r:?}");
    assert_eq!(r.error().expect("error")["name"], "ContextDeleted");
    // The default context cannot be deleted.
    let r = d
        .req(
            Method::DELETE,
            "/process/interpreter/context/default",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let d = Daemon::start().await;
    let r = d
        .post_json("/process/interpreter/context", json!({"language": "ruby"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["code"], "BAD_REQUEST");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ruby")
    );
    let r = d
        .post_json("/process/interpreter/context", json!({"cwd": "/nope"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = d
        .post_json("/process/interpreter/context", json!({"cwd": "../../etc"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // Plain GET of the websocket route: 400 in the envelope.
    let r = d.get("/process/interpreter/execute").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["source"], "DAYTONA_DAEMON");
    // Malformed first messages.
    let r = run_request(&d, "not json").await;
    assert_eq!(r.close_code(), 1002, "{r:?}");
    assert!(
        r.close
            .as_ref()
            .is_some_and(|c| c.1.contains("invalid JSON")),
        "{r:?}"
    );
    assert_eq!(run_request(&d, r#"{"code": ""}"#).await.close_code(), 1008);
    assert_eq!(
        run_request(&d, r#"{"code": "1", "timeout": -1}"#)
            .await
            .close_code(),
        1008
    );
    let r = run_code(&d, "1", Some("no-such-context")).await;
    assert_eq!(r.close_code(), 1008, "{r:?}");
    assert_eq!(
        r.close.expect("close").1,
        "context not found: no-such-context"
    );
}

#[tokio::test]
async fn contexts_are_capped() {
    let d = Daemon::start().await;
    let mut ids = Vec::new();
    for _ in 0..cove_toolbox::interpreter::MAX_CONTEXTS {
        ids.push(create(&d, json!({})).await);
    }
    let r = d.post_json("/process/interpreter/context", json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(r.json()["code"], "CONFLICT");
    // The default context is not one of them.
    assert_eq!(run_code(&d, "print(7)", None).await.stdout(), "7\n");
    let r = d
        .req(
            Method::DELETE,
            &format!("/process/interpreter/context/{}", ids[0]),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    create(&d, json!({})).await;
}

#[tokio::test]
async fn a_client_that_goes_away_interrupts_its_execution() {
    let d = Daemon::start().await;
    run_code(&d, "left = 'kept'", None).await;
    let mut ws = connect(&d).await;
    let req = json!({"code": "import time\nprint('started', flush=True)\ntime.sleep(60)"});
    ws.send(Message::Text(req.to_string().into()))
        .await
        .expect("send");
    // Wait until it runs, then leave without reading further.
    loop {
        match ws.next().await.expect("frame").expect("frame") {
            Message::Text(t) if t.contains("started") => break,
            _ => {}
        }
    }
    drop(ws);
    let started = Instant::now();
    let r = run_code(&d, "print(left)", None).await;
    assert_eq!(r.stdout(), "kept\n", "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
