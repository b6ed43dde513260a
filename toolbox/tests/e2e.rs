//! End-to-end tests: the static daemon over its unix socket, jailed in a temp dir.

use crate::common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

fn assert_envelope(r: &cove_toolbox::client::Reply, status: u16, code: &str, path: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text());
    let v = r.json();
    assert_eq!(v["statusCode"], status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["source"], "DAYTONA_DAEMON", "{v}");
    assert_eq!(v["path"], path, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(
        v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
}

#[tokio::test]
async fn info_routes() {
    let d = Daemon::start().await;
    let v = d.get("/version").await;
    assert_eq!(v.status, StatusCode::OK);
    assert!(v.json()["version"].is_string());
    assert_eq!(d.get("/work-dir").await.json(), json!({"dir": "/"}));
    assert_eq!(d.get("/project-dir").await.json(), json!({"dir": "/"}));
    assert_eq!(d.get("/user-home-dir").await.json(), json!({"dir": "/"}));
    let init = d.post_json("/init", json!({"token": "t"})).await;
    assert_eq!(init.status, StatusCode::OK);
    assert_eq!(init.json(), json!({}));
    assert_envelope(
        &d.get("/no/such/route").await,
        404,
        "NOT_FOUND",
        "/no/such/route",
    );
}

#[tokio::test]
async fn file_operations() {
    let d = Daemon::start().await;
    // folder with mode
    let r = d
        .post(&format!("/files/folder?path={}&mode=750", q("/proj/sub")))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let meta = std::fs::metadata(d.real("/proj/sub")).expect("created");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o750);
    // invalid folder mode
    assert_envelope(
        &d.post(&format!("/files/folder?path=x&mode={}", q("rwx")))
            .await,
        400,
        "BAD_REQUEST",
        "/files/folder",
    );

    let up = d
        .upload(&[
            ("/proj/a.txt", b"hello world\nsecond line\nhello again\n"),
            ("proj/sub/b.rs", b"fn main() {}\n"),
            ("/proj/sub/c.txt", b"nothing here\n"),
        ])
        .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.text());
    assert_eq!(
        up.json()["files"][0],
        json!({"path": "/proj/a.txt", "bytes": 36})
    );

    // list
    let list = d.get(&format!("/files?path={}", q("/proj"))).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<String> = list
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["a.txt", "sub"]);
    let deep = d
        .get(&format!("/files?path={}&depth=2", q("/proj")))
        .await
        .json();
    assert_eq!(deep.as_array().map(Vec::len), Some(4), "{deep}");

    // info
    let info = d
        .get(&format!("/files/info?path={}", q("/proj/a.txt")))
        .await;
    let v = info.json();
    assert_eq!(v["name"], "a.txt");
    assert_eq!(v["size"], 36);
    assert_eq!(v["isDir"], false);
    assert_eq!(v["mode"].as_str().map(|m| m.len()), Some(10));
    assert!(
        v["modTime"]
            .as_str()
            .is_some_and(|t| t.ends_with("+0000 UTC"))
    );
    for key in ["owner", "group", "permissions"] {
        assert!(v[key].is_string(), "{key} in {v}");
    }

    // permissions
    let r = d
        .post(&format!(
            "/files/permissions?path={}&mode=600",
            q("/proj/a.txt")
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = d
        .get(&format!("/files/info?path={}", q("/proj/a.txt")))
        .await
        .json();
    assert_eq!(v["permissions"], "0600");
    assert_eq!(v["mode"], "-rw-------");
    for bad in ["999", "abc", "77777", "-1"] {
        assert_envelope(
            &d.post(&format!(
                "/files/permissions?path={}&mode={}",
                q("/proj/a.txt"),
                q(bad)
            ))
            .await,
            400,
            "BAD_REQUEST",
            "/files/permissions",
        );
    }
    assert_envelope(
        &d.post(&format!(
            "/files/permissions?path={}&owner=no-such-user-xyz",
            q("/proj/a.txt")
        ))
        .await,
        400,
        "BAD_REQUEST",
        "/files/permissions",
    );
    assert_envelope(
        &d.post("/files/permissions?path=/missing&mode=644").await,
        404,
        "FILE_NOT_FOUND",
        "/files/permissions",
    );

    // find (content)
    let m = d
        .get(&format!("/files/find?path={}&pattern=hello", q("/proj")))
        .await
        .json();
    assert_eq!(
        m,
        json!([
            {"file": "/proj/a.txt", "line": 1, "content": "hello world"},
            {"file": "/proj/a.txt", "line": 3, "content": "hello again"}
        ])
    );
    // search (names)
    let s = d
        .get(&format!(
            "/files/search?path={}&pattern={}",
            q("/proj"),
            q("*.rs")
        ))
        .await
        .json();
    assert_eq!(s, json!({"files": ["/proj/sub/b.rs"]}));

    // replace
    let r = d
        .post_json(
            "/files/replace",
            json!({"files": ["/proj/a.txt", "/proj/missing.txt"], "pattern": "hello", "newValue": "bye"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v[0]["success"], true);
    assert_eq!(v[1]["success"], false);
    assert_eq!(
        std::fs::read_to_string(d.real("/proj/a.txt")).expect("read"),
        "bye world\nsecond line\nbye again\n"
    );

    // download
    let dl = d
        .get(&format!("/files/download?path={}", q("/proj/sub/b.rs")))
        .await;
    assert_eq!(dl.status, StatusCode::OK);
    assert_eq!(&dl.body[..], b"fn main() {}\n");
    assert_envelope(
        &d.get("/files/download?path=/proj/nope").await,
        404,
        "FILE_NOT_FOUND",
        "/files/download",
    );

    // move
    let mv = d
        .post(&format!(
            "/files/move?source={}&destination={}",
            q("/proj/sub/c.txt"),
            q("/proj/c2.txt")
        ))
        .await;
    assert_eq!(mv.status, StatusCode::OK, "{}", mv.text());
    assert!(d.real("/proj/c2.txt").is_file() && !d.real("/proj/sub/c.txt").exists());
    assert_envelope(
        &d.post(&format!(
            "/files/move?source={}&destination={}",
            q("/proj/c2.txt"),
            q("/proj/a.txt")
        ))
        .await,
        409,
        "CONFLICT",
        "/files/move",
    );
    assert_envelope(
        &d.post(&format!(
            "/files/move?source={}&destination={}",
            q("/proj/zz"),
            q("/proj/yy")
        ))
        .await,
        404,
        "FILE_NOT_FOUND",
        "/files/move",
    );

    // upload-v2
    let (ct, body) = {
        let b = "XvBoundary";
        let body = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"v2.txt\"\r\nContent-Type: text/plain\r\n\r\nv2 data\r\n--{b}--\r\n"
        );
        (format!("multipart/form-data; boundary={b}"), body)
    };
    let r = d
        .req(
            Method::POST,
            &format!("/files/upload-v2?path={}", q("/proj/v2.txt")),
            &[("content-type", &ct)],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["path"], "/proj/v2.txt");
    assert_eq!(
        std::fs::read(d.real("/proj/v2.txt")).expect("v2"),
        b"v2 data"
    );

    // delete
    assert_envelope(
        &d.delete(&format!("/files?path={}", q("/proj/sub"))).await,
        400,
        "BAD_REQUEST",
        "/files",
    );
    assert_eq!(
        d.delete(&format!("/files?path={}", q("/proj/a.txt")))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        d.delete(&format!("/files?path={}&recursive=true", q("/proj")))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert!(!d.real("/proj").exists());
    assert_envelope(
        &d.get(&format!("/files/info?path={}", q("/proj"))).await,
        404,
        "FILE_NOT_FOUND",
        "/files/info",
    );
    assert_envelope(
        &d.delete(&format!("/files?path={}", q("/proj"))).await,
        404,
        "FILE_NOT_FOUND",
        "/files",
    );
}

#[tokio::test]
async fn bulk_upload_and_download_roundtrip() {
    let d = Daemon::start().await;
    let mut files: Vec<(String, Vec<u8>)> = (0..19)
        .map(|i| {
            (
                format!("/data/dir{}/file {i}.bin", i % 4),
                noise(1000 + i * 37, i as u64),
            )
        })
        .collect();
    files.push(("/data/big.bin".into(), noise(10 * 1024 * 1024, 99)));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let up = d.upload(&refs).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.text());
    let results = up.json()["files"].as_array().cloned().expect("files");
    assert_eq!(results.len(), 20);
    assert_eq!(
        results[19],
        json!({"path": "/data/big.bin", "bytes": 10 * 1024 * 1024})
    );
    for (p, b) in &files {
        assert_eq!(&std::fs::read(d.real(p)).expect("uploaded"), b, "{p}");
    }

    // download all, plus one missing path, in a single multipart response
    let mut paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    paths.push("/data/missing.bin".into());
    let r = d
        .req(
            Method::POST,
            "/files/bulk-download",
            &[
                ("content-type", "application/json"),
                ("accept", "multipart/form-data"),
            ],
            json!({ "paths": paths }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ct = r.headers["content-type"].to_str().expect("ct").to_owned();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let parts = parse_multipart(&ct, &r.body);
    assert_eq!(parts.len(), 21);
    for ((p, b), part) in files.iter().zip(&parts) {
        assert_eq!(part.name, "file");
        assert_eq!(&part.filename, p, "filename echoes the requested path");
        assert!(part.body == *b, "bytes of {p} differ");
    }
    let err = &parts[20];
    assert_eq!(err.name, "error");
    assert_eq!(err.filename, "/data/missing.bin");
    assert_eq!(err.content_type, "application/json");
    let ev: Value = serde_json::from_slice(&err.body).expect("error json");
    assert_eq!(ev["code"], "FILE_NOT_FOUND");
    assert_eq!(ev["statusCode"], 404);
    // the closing boundary is present
    assert!(r.body.ends_with(b"--\r\n"));
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let d = Daemon::start().await;
    let r = d
        .req(
            Method::POST,
            "/files/bulk-upload",
            &[("content-type", "multipart/form-data; boundary=abc")],
            "this is not multipart at all",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(
        r.json()["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{}",
        r.text()
    );
    let r = d
        .req(
            Method::POST,
            "/files/bulk-upload",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = d
        .req(
            Method::POST,
            "/files/bulk-upload",
            &[("content-type", "multipart/form-data; boundary=abc")],
            "--abc\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\n/x",
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "truncated multipart: {}",
        r.text()
    );
    assert_envelope(
        &d.req(
            Method::POST,
            "/process/execute",
            &[("content-type", "application/json")],
            "{\"command\":",
        )
        .await,
        400,
        "INVALID_REQUEST_BODY",
        "/process/execute",
    );
    assert_envelope(
        &d.post_json("/process/execute", json!({"cmd": "x"})).await,
        400,
        "INVALID_REQUEST_BODY",
        "/process/execute",
    );
    assert_envelope(
        &d.req(Method::POST, "/files/bulk-download", &[], "[1,2")
            .await,
        400,
        "INVALID_REQUEST_BODY",
        "/files/bulk-download",
    );
    assert_envelope(
        &d.get("/files?depth=abc").await,
        400,
        "BAD_REQUEST",
        "/files",
    );
}

#[tokio::test]
async fn jail_refuses_escapes() {
    let d = Daemon::start().await;
    let outside = d.dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    let sentinel = outside.join("sentinel");
    std::fs::write(&sentinel, b"untouched").expect("sentinel");
    // a symlink inside the jail pointing outside it
    std::os::unix::fs::symlink(&outside, d.root.join("escape")).expect("symlink");

    for p in ["../../etc/shadow", "/../etc/shadow", "../outside/sentinel"] {
        let r = d.get(&format!("/files/info?path={}", q(p))).await;
        assert_envelope(&r, 400, "INVALID_FILE_PATH", "/files/info");
        let r = d.get(&format!("/files/download?path={}", q(p))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // through the symlink: read, write, delete, list are all refused
    assert_envelope(
        &d.get(&format!("/files/download?path={}", q("/escape/sentinel")))
            .await,
        403,
        "FILE_ACCESS_DENIED",
        "/files/download",
    );
    assert_envelope(
        &d.get(&format!("/files?path={}", q("/escape"))).await,
        403,
        "FILE_ACCESS_DENIED",
        "/files",
    );
    assert_envelope(
        &d.delete(&format!("/files?path={}", q("/escape/sentinel")))
            .await,
        403,
        "FILE_ACCESS_DENIED",
        "/files",
    );
    assert_envelope(
        &d.post(&format!(
            "/files/permissions?path={}&mode=777",
            q("/escape/sentinel")
        ))
        .await,
        403,
        "FILE_ACCESS_DENIED",
        "/files/permissions",
    );
    let up = d
        .upload(&[
            ("/escape/sentinel", b"pwned"),
            ("../../outside/sentinel", b"pwned"),
            ("/escape/new", b"x"),
        ])
        .await;
    assert_eq!(up.status, StatusCode::BAD_REQUEST, "{}", up.text());
    assert_eq!(
        up.json()["errors"].as_array().map(Vec::len),
        Some(3),
        "{}",
        up.text()
    );
    let r = d
        .post(&format!(
            "/files/move?source={}&destination={}",
            q("/escape/sentinel"),
            q("/stolen")
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let dl = d
        .post_json(
            "/files/bulk-download",
            json!({"paths": ["/escape/sentinel", "../../etc/shadow"]}),
        )
        .await;
    let parts = parse_multipart(dl.headers["content-type"].to_str().expect("ct"), &dl.body);
    assert!(parts.iter().all(|p| p.name == "error"), "{parts:?}");
    let found = d
        .get(&format!("/files/search?path=/&pattern={}", q("sentinel")))
        .await
        .json();
    assert_eq!(found, json!({"files": []}));

    assert_eq!(std::fs::read(&sentinel).expect("sentinel"), b"untouched");
    assert!(!outside.join("new").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(
        std::fs::metadata(&sentinel)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o777
    );
}

#[tokio::test]
async fn process_execute() {
    let d = Daemon::start().await;
    let r = d
        .post_json(
            "/process/execute",
            json!({"command": "echo out; echo err >&2; exit 3"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["exitCode"], 3);
    assert_eq!(v["stdout"], "out\n");
    assert_eq!(v["stderr"], "err\n");
    assert_eq!(v["result"], "out\nerr\n");

    std::fs::create_dir_all(d.real("/w")).expect("w");
    let v = d
        .post_json("/process/execute", json!({"command": "pwd", "cwd": "/w"}))
        .await
        .json();
    assert_eq!(
        v["result"],
        format!("{}\n", d.real("/w").canonicalize().expect("c").display())
    );
    let v = d
        .post_json(
            "/process/execute",
            json!({"command": "printenv FOO", "envs": {"FOO": "bar"}}),
        )
        .await
        .json();
    assert_eq!(
        (v["exitCode"].clone(), v["result"].clone()),
        (json!(0), json!("bar\n"))
    );
    let v = d
        .post_json(
            "/process/execute",
            json!({"command": "definitely-not-a-command-xyz"}),
        )
        .await
        .json();
    assert_eq!(v["exitCode"], 127);

    let started = Instant::now();
    let r = d
        .post_json(
            "/process/execute",
            json!({"command": "sleep 30", "timeout": 1}),
        )
        .await;
    assert_envelope(&r, 408, "PROCESS_EXECUTION_TIMEOUT", "/process/execute");
    assert!(started.elapsed() < Duration::from_secs(10));

    let r = d
        .post_json(
            "/process/code-run",
            json!({"code": "print(6*7)", "language": "python"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["result"], "42\n");
    assert_eq!(r.json()["exitCode"], 0);
}

async fn ws_connect(
    d: &Daemon,
    uri: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::UnixStream> {
    let stream = tokio::net::UnixStream::connect(&d.sock)
        .await
        .expect("connect");
    let (ws, resp) = tokio_tungstenite::client_async(format!("ws://toolbox{uri}"), stream)
        .await
        .expect("websocket handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

async fn wait_exit(d: &Daemon, sid: &str, cid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = d
            .get(&format!("/process/session/{sid}/command/{cid}"))
            .await
            .json();
        if v.get("exitCode").is_some() {
            return v;
        }
        assert!(Instant::now() < deadline, "command did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sessions() {
    let d = Daemon::start().await;
    assert_eq!(
        d.post_json("/process/session", json!({"sessionId": "s1"}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_envelope(
        &d.post_json("/process/session", json!({"sessionId": "s1"}))
            .await,
        409,
        "CONFLICT",
        "/process/session",
    );
    // state carries across commands
    let sub = d.real("/sub");
    std::fs::create_dir_all(&sub).expect("sub");
    let cd = format!("cd '{}' && export GREETING=hi", sub.display());
    let r = d
        .post_json("/process/session/s1/exec", json!({"command": cd}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["exitCode"], 0);
    let r = d
        .post_json(
            "/process/session/s1/exec",
            json!({"command": "pwd; echo $GREETING; echo oops >&2; false"}),
        )
        .await;
    let v = r.json();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        v["stdout"],
        format!("{}\nhi\n", sub.canonicalize().expect("c").display())
    );
    assert_eq!(v["stderr"], "oops\n");
    assert_eq!(v["exitCode"], 1);
    assert!(v["cmdId"].is_string());

    // async + logs (JSON for new SDKs, text otherwise)
    let r = d
        .post_json(
            "/process/session/s1/exec",
            json!({"command": "echo a; sleep 0.3; echo b >&2; sleep 0.3; echo c", "runAsync": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let cid = r.json()["cmdId"].as_str().expect("cmdId").to_owned();
    let running = d
        .get(&format!("/process/session/s1/command/{cid}"))
        .await
        .json();
    assert!(running.get("exitCode").is_none(), "{running}");
    let mut ws = ws_connect(
        &d,
        &format!("/process/session/s1/command/{cid}/logs?follow=true"),
    )
    .await;
    let mut frames = Vec::new();
    while let Some(msg) = ws.next().await {
        match msg.expect("ws frame") {
            tokio_tungstenite::tungstenite::Message::Binary(b) => frames.push(b.to_vec()),
            tokio_tungstenite::tungstenite::Message::Text(t) => frames.push(t.as_bytes().to_vec()),
            tokio_tungstenite::tungstenite::Message::Close(f) => {
                assert_eq!(f.map(|f| u16::from(f.code)), Some(1000));
                break;
            }
            _ => {}
        }
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for f in &frames {
        if let Some(rest) = f.strip_prefix(b"\x01\x01\x01") {
            out.extend_from_slice(rest);
        } else if let Some(rest) = f.strip_prefix(b"\x02\x02\x02") {
            err.extend_from_slice(rest);
        } else {
            panic!("frame without prefix: {f:?}");
        }
    }
    assert_eq!(out, b"a\nc\n");
    assert_eq!(err, b"b\n");
    let status = wait_exit(&d, "s1", &cid).await;
    assert_eq!(status["exitCode"], 0);
    let logs = d
        .req(
            Method::GET,
            &format!("/process/session/s1/command/{cid}/logs"),
            &[("X-Daytona-SDK-Version", "0.226.1")],
            bytes::Bytes::new(),
        )
        .await
        .json();
    assert_eq!(
        logs,
        json!({"output": "a\nb\nc\n", "stdout": "a\nc\n", "stderr": "b\n"})
    );
    let plain = d
        .get(&format!("/process/session/s1/command/{cid}/logs"))
        .await;
    assert_eq!(plain.text(), "a\nb\nc\n");

    // input to a running command
    let r = d
        .post_json(
            "/process/session/s1/exec",
            json!({"command": "read line; echo got $line", "runAsync": true}),
        )
        .await;
    let cid2 = r.json()["cmdId"].as_str().expect("cmdId").to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = d
        .post_json(
            &format!("/process/session/s1/command/{cid2}/input"),
            json!({"data": "hello\n"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(wait_exit(&d, "s1", &cid2).await["exitCode"], 0);
    let logs = d
        .req(
            Method::GET,
            &format!("/process/session/s1/command/{cid2}/logs"),
            &[("X-Daytona-SDK-Version", "0.226.1")],
            bytes::Bytes::new(),
        )
        .await
        .json();
    assert_eq!(logs["stdout"], "got hello\n");
    assert_envelope(
        &d.post_json(
            &format!("/process/session/s1/command/{cid2}/input"),
            json!({"data": "x"}),
        )
        .await,
        410,
        "COMMAND_ALREADY_COMPLETED",
        &format!("/process/session/s1/command/{cid2}/input"),
    );

    // input sent at once to a command the shell has not reached yet (the session is busy with
    // the one before it): it waits for the command instead of answering 410
    d.post_json(
        "/process/session/s1/exec",
        json!({"command": "sleep 1", "runAsync": true}),
    )
    .await;
    let r = d
        .post_json(
            "/process/session/s1/exec",
            json!({"command": "read line; echo early $line", "runAsync": true}),
        )
        .await;
    let cid3 = r.json()["cmdId"].as_str().expect("cmdId").to_owned();
    let r = d
        .post_json(
            &format!("/process/session/s1/command/{cid3}/input"),
            json!({"data": "bird\n"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(wait_exit(&d, "s1", &cid3).await["exitCode"], 0);
    let logs = d
        .get(&format!("/process/session/s1/command/{cid3}/logs"))
        .await;
    assert_eq!(logs.text(), "early bird\n");

    // listing
    let s = d.get("/process/session/s1").await.json();
    assert_eq!(s["sessionId"], "s1");
    assert_eq!(s["commands"].as_array().map(Vec::len), Some(6));
    assert_eq!(s["commands"][1]["exitCode"], 1);
    let all = d.get("/process/session").await.json();
    assert_eq!(all.as_array().map(Vec::len), Some(1));

    // unknowns
    assert_envelope(
        &d.get("/process/session/nope").await,
        404,
        "NOT_FOUND",
        "/process/session/nope",
    );
    assert_envelope(
        &d.get("/process/session/s1/command/nope").await,
        404,
        "NOT_FOUND",
        "/process/session/s1/command/nope",
    );
    assert_envelope(
        &d.get("/process/session/s1/command/nope/logs").await,
        404,
        "NOT_FOUND",
        "/process/session/s1/command/nope/logs",
    );
    assert_envelope(
        &d.post_json("/process/session/nope/exec", json!({"command": "true"}))
            .await,
        404,
        "NOT_FOUND",
        "/process/session/nope/exec",
    );
    assert_eq!(
        d.delete("/process/session/s1").await.status,
        StatusCode::NO_CONTENT
    );
    assert_envelope(
        &d.delete("/process/session/s1").await,
        404,
        "NOT_FOUND",
        "/process/session/s1",
    );
    assert_eq!(d.get("/process/session").await.json(), json!([]));
}

#[tokio::test]
async fn git_workflow() {
    let d = Daemon::start().await;
    // a bare "remote" with one commit, outside the jail but inside the temp dir
    let bare = d.dir.path().join("remote.git");
    let seed = d.dir.path().join("seed");
    git(
        d.dir.path(),
        &[
            "init",
            "--bare",
            "--initial-branch=main",
            bare.to_str().expect("utf8"),
        ],
    );
    git(
        d.dir.path(),
        &[
            "clone",
            bare.to_str().expect("utf8"),
            seed.to_str().expect("utf8"),
        ],
    );
    std::fs::write(seed.join("README.md"), "# seed\n").expect("write");
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-m", "seed commit"]);
    git(&seed, &["push", "origin", "HEAD:main"]);
    let url = format!("file://{}", bare.display());

    let r = d
        .post_json("/git/clone", json!({"url": url, "path": "repo"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(d.real("/repo/README.md").is_file());
    let r = d
        .post_json(
            "/git/clone",
            json!({"url": format!("file://{}/nope.git", d.dir.path().display()), "path": "other"}),
        )
        .await;
    assert_envelope(&r, 404, "GIT_REPO_NOT_FOUND", "/git/clone");

    let st = d.get("/git/status?path=repo").await.json();
    assert_eq!(st["currentBranch"], "main");
    assert_eq!(st["fileStatus"], json!([]));
    assert_envelope(
        &d.get("/git/status?path=/").await,
        404,
        "GIT_REPO_NOT_FOUND",
        "/git/status",
    );

    std::fs::write(d.real("/repo/new.txt"), "new\n").expect("write");
    let st = d.get("/git/status?path=repo").await.json();
    assert_eq!(
        st["fileStatus"],
        json!([{"name": "new.txt", "staging": "Untracked", "worktree": "Untracked", "extra": ""}])
    );
    assert_eq!(
        d.post_json("/git/add", json!({"path": "repo", "files": ["new.txt"]}))
            .await
            .status,
        StatusCode::OK
    );
    let st = d.get("/git/status?path=repo").await.json();
    assert_eq!(st["fileStatus"][0]["staging"], "Added");
    let r = d
        .post_json(
            "/git/commit",
            json!({"path": "repo", "message": "add new", "author": "Ann", "email": "ann@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let hash = r.json()["hash"].as_str().expect("hash").to_owned();
    assert_eq!(hash.len(), 40);
    let hist = d.get("/git/history?path=repo").await.json();
    assert_eq!(hist[0]["hash"], hash);
    assert_eq!(hist[0]["author"], "Ann");
    assert_eq!(hist[0]["email"], "ann@example.com");
    assert_eq!(hist[0]["message"], "add new");
    assert_eq!(hist[1]["message"], "seed commit");
    assert_eq!(d.get("/git/status?path=repo").await.json()["ahead"], 1);

    // push and verify in the bare repo
    let r = d.post_json("/git/push", json!({"path": "repo"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(git(&bare, &["rev-parse", "main"]), hash);

    // branches
    let r = d
        .post_json("/git/branches", json!({"path": "repo", "name": "feature"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_envelope(
        &d.post_json("/git/branches", json!({"path": "repo", "name": "feature"}))
            .await,
        409,
        "GIT_BRANCH_EXISTS",
        "/git/branches",
    );
    let b = d.get("/git/branches?path=repo").await.json();
    assert_eq!(b["branches"], json!(["feature", "main"]));
    assert_eq!(b["current"], "feature");
    assert_eq!(
        d.post_json("/git/checkout", json!({"path": "repo", "branch": "main"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        d.get("/git/branches?path=repo").await.json()["current"],
        "main"
    );
    assert_envelope(
        &d.post_json("/git/checkout", json!({"path": "repo", "branch": "nope"}))
            .await,
        404,
        "GIT_BRANCH_NOT_FOUND",
        "/git/checkout",
    );
    assert_eq!(
        d.delete_json("/git/branches", json!({"path": "repo", "name": "feature"}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_envelope(
        &d.delete_json("/git/branches", json!({"path": "repo", "name": "feature"}))
            .await,
        404,
        "GIT_BRANCH_NOT_FOUND",
        "/git/branches",
    );

    // pull a commit made elsewhere
    git(&seed, &["pull", "origin", "main"]);
    std::fs::write(seed.join("upstream.txt"), "from upstream\n").expect("write");
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-m", "upstream change"]);
    git(&seed, &["push", "origin", "HEAD:main"]);
    let r = d.post_json("/git/pull", json!({"path": "repo"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        std::fs::read_to_string(d.real("/repo/upstream.txt")).expect("pulled"),
        "from upstream\n"
    );

    // a rejected push (remote moved on)
    std::fs::write(seed.join("again.txt"), "x\n").expect("write");
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-m", "again"]);
    git(&seed, &["push", "origin", "HEAD:main"]);
    std::fs::write(d.real("/repo/local.txt"), "y\n").expect("write");
    d.post_json("/git/add", json!({"path": "repo", "files": ["."]}))
        .await;
    d.post_json(
        "/git/commit",
        json!({"path": "repo", "message": "local", "author": "Ann", "email": "ann@example.com"}),
    )
    .await;
    assert_envelope(
        &d.post_json("/git/push", json!({"path": "repo"})).await,
        409,
        "GIT_PUSH_REJECTED",
        "/git/push",
    );
}

#[tokio::test]
async fn lsp_python() {
    let pylsp = ["/usr/bin/pylsp", "/usr/local/bin/pylsp"]
        .iter()
        .any(|p| std::path::Path::new(p).is_file())
        || std::process::Command::new("pylsp")
            .arg("--help")
            .output()
            .is_ok();
    assert!(
        pylsp,
        "pylsp is not installed: `apt-get install -y python3-pylsp`"
    );
    let d = Daemon::start().await;
    std::fs::create_dir_all(d.real("/proj")).expect("proj");
    std::fs::write(
        d.real("/proj/main.py"),
        "import os\n\ndef greet(name):\n    return name\n\nclass Greeter:\n    pass\n\nos.pa\n",
    )
    .expect("write");
    let doc =
        json!({"languageId": "python", "pathToProject": "/proj", "uri": "file:///proj/main.py"});
    let comp = json!({
        "languageId": "python", "pathToProject": "/proj", "uri": "file:///proj/main.py",
        "position": {"line": 8, "character": 5}
    });
    assert_envelope(
        &d.post_json("/lsp/completions", comp.clone()).await,
        400,
        "LSP_SERVER_NOT_INITIALIZED",
        "/lsp/completions",
    );
    assert_envelope(
        &d.post_json("/lsp/did-open", doc.clone()).await,
        400,
        "LSP_SERVER_NOT_INITIALIZED",
        "/lsp/did-open",
    );
    let r = d
        .post_json(
            "/lsp/start",
            json!({"languageId": "python", "pathToProject": "/proj"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        d.post_json("/lsp/did-open", doc.clone()).await.status,
        StatusCode::OK
    );

    let r = d.post_json("/lsp/completions", comp.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert!(v["isIncomplete"].is_boolean());
    let labels: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["label"].as_str())
        .collect();
    assert!(
        labels.iter().any(|l| l.starts_with("path")),
        "labels: {labels:?}"
    );

    let uri = format!(
        "/lsp/document-symbols?languageId=python&pathToProject={}&uri={}",
        q("/proj"),
        q("file:///proj/main.py")
    );
    let syms = d.get(&uri).await;
    assert_eq!(syms.status, StatusCode::OK, "{}", syms.text());
    let syms = syms.json();
    let names: Vec<&str> = syms
        .as_array()
        .expect("symbols")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        names.contains(&"greet") && names.contains(&"Greeter"),
        "{names:?}"
    );
    let greet = syms
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "greet"))
        .expect("greet");
    assert_eq!(greet["location"]["uri"], "file:///proj/main.py");
    assert_eq!(greet["location"]["range"]["start"]["line"], 2);
    assert_eq!(greet["kind"], 12);

    let ws = d
        .get(&format!(
            "/lsp/workspacesymbols?query=Greet&languageId=python&pathToProject={}",
            q("/proj")
        ))
        .await;
    assert_eq!(ws.status, StatusCode::OK, "{}", ws.text());
    assert!(ws.json().is_array());

    assert_eq!(
        d.post_json("/lsp/did-close", doc.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        d.post_json(
            "/lsp/stop",
            json!({"languageId": "python", "pathToProject": "/proj"})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_envelope(
        &d.post_json("/lsp/completions", comp).await,
        400,
        "LSP_SERVER_NOT_INITIALIZED",
        "/lsp/completions",
    );
}

#[tokio::test]
async fn entrypoint_runs_and_receives_sigterm() {
    let script = "echo started; echo warn >&2; trap 'echo got-term; exit 0' TERM; while :; do sleep 0.05; done";
    let mut d = Daemon::start_with(&["sh", "-c", script]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = d
            .req(
                Method::GET,
                "/process/session/entrypoint/logs",
                &[("X-Daytona-SDK-Version", "0.226.1")],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(logs.status, StatusCode::OK, "{}", logs.text());
        let v = logs.json();
        if v["stdout"] == "started\n" && v["stderr"] == "warn\n" {
            break;
        }
        assert!(Instant::now() < deadline, "entrypoint output missing: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = d.get("/process/session/entrypoint").await.json();
    assert_eq!(s["sessionId"], "entrypoint");
    assert!(s["commands"][0].get("exitCode").is_none(), "{s}");

    let pid = rustix::process::Pid::from_raw(d.child().id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let started = Instant::now();
    let status = loop {
        if let Some(st) = d.child().try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "daemon did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    use std::io::Read;
    d.child()
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert_eq!(
        out, "started\ngot-term\n",
        "entrypoint output passes through and got SIGTERM"
    );
}
