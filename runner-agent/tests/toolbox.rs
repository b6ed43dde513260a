//! Every toolbox route end to end through the agent's API (agent process → unix socket → daemon
//! in a real container), plus bad input.

use crate::common;

use common::{Agent, sid};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (s, v)
}

/// A daemon error envelope with `code`.
fn assert_envelope(v: &Value, status: u16, code: &str) {
    assert_eq!(v["statusCode"], status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["source"], "DAYTONA_DAEMON", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_routes() {
    let agent = Agent::start(&[]);
    let id = sid("files");
    agent.sandbox(&id, |_| {}).await;
    let home = "/home/daytona";

    // folder, upload, list, info
    let r = agent
        .post(&id, &format!("/files/folder?path={home}/d&mode=755"))
        .send()
        .await
        .expect("folder");
    assert_eq!(r.status(), 201);
    let (code, _) = agent
        .exec(
            &id,
            &format!("printf 'hello\\nfoo bar\\n' > {home}/d/a.txt"),
        )
        .await;
    assert_eq!(code, 0);
    let (s, list) = json_of(
        agent
            .get(&id, &format!("/files?path={home}/d"))
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(list[0]["name"], "a.txt");
    let (s, info) = json_of(
        agent
            .get(&id, &format!("/files/info?path={home}/d/a.txt"))
            .send()
            .await
            .expect("info"),
    )
    .await;
    assert_eq!((s, info["size"].as_u64()), (200, Some(14)));
    assert_eq!(info["isDir"], false);

    // find (content), search (names), replace
    let (s, found) = json_of(
        agent
            .get(&id, &format!("/files/find?path={home}/d&pattern=foo"))
            .send()
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(found[0]["line"], 2);
    assert_eq!(found[0]["content"], "foo bar");
    let (s, search) = json_of(
        agent
            .get(&id, &format!("/files/search?path={home}&pattern=*.txt"))
            .send()
            .await
            .expect("search"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        search["files"]
            .as_array()
            .expect("files")
            .iter()
            .any(|f| f == &json!(format!("{home}/d/a.txt"))),
        "{search}"
    );
    let (s, rep) = json_of(
        agent
            .post(&id, "/files/replace")
            .json(
                &json!({"files": [format!("{home}/d/a.txt")], "pattern": "foo", "newValue": "baz"}),
            )
            .send()
            .await
            .expect("replace"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(rep[0]["success"], true);

    // permissions, move, download
    let r = agent
        .post(
            &id,
            &format!("/files/permissions?path={home}/d/a.txt&mode=600"),
        )
        .send()
        .await
        .expect("chmod");
    assert_eq!(r.status(), 200);
    let (_, info) = json_of(
        agent
            .get(&id, &format!("/files/info?path={home}/d/a.txt"))
            .send()
            .await
            .expect("info"),
    )
    .await;
    assert_eq!(info["permissions"], "0600");
    let r = agent
        .post(
            &id,
            &format!("/files/move?source={home}/d/a.txt&destination={home}/d/b.txt"),
        )
        .send()
        .await
        .expect("move");
    assert_eq!(r.status(), 200);
    let r = agent
        .get(&id, &format!("/files/download?path={home}/d/b.txt"))
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.expect("bytes").as_ref(),
        b"hello\nbaz bar\n"
    );

    // upload-v2 (multipart `file`)
    let boundary = "XbOuNdArYx";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nuploaded!\r\n--{boundary}--\r\n"
    );
    let r = agent
        .post(&id, &format!("/files/upload?path={home}/d/u.txt"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 200);
    let (_, out) = agent.exec(&id, &format!("cat {home}/d/u.txt")).await;
    assert_eq!(out, "uploaded!");

    // delete (recursive)
    let r = agent
        .delete(&id, &format!("/files?path={home}/d&recursive=true"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (s, v) = json_of(
        agent
            .get(&id, &format!("/files/info?path={home}/d"))
            .send()
            .await
            .expect("info"),
    )
    .await;
    assert_eq!(s, 404);
    assert_envelope(&v, 404, "FILE_NOT_FOUND");

    // ---- bad input
    // paths outside the sandbox: the host's /etc/shadow is never read
    let host_shadow = std::fs::read("/etc/shadow").unwrap_or_default();
    for p in [
        "../../etc/shadow",
        "../../../../../../etc/shadow",
        "/etc/shadow",
    ] {
        let r = agent
            .get(&id, &format!("/files/download?path={p}"))
            .send()
            .await
            .expect("download");
        let s = r.status().as_u16();
        let body = r.bytes().await.expect("bytes");
        assert!((400..500).contains(&s), "{p}: {s}");
        assert!(host_shadow.is_empty() || body.as_ref() != host_shadow.as_slice());
        let v: Value = serde_json::from_slice(&body).expect("envelope");
        assert_eq!(v["source"], "DAYTONA_DAEMON", "{v}");
        assert!(
            v["code"] == "FILE_ACCESS_DENIED" || v["code"] == "INVALID_FILE_PATH",
            "{p}: {v}"
        );
    }
    // Nothing on the host is written through a traversal either.
    let marker = format!("/tmp/cove-escape-{id}");
    let r = agent
        .post(
            &id,
            &format!("/files/folder?path=../../../../..{marker}&mode=755"),
        )
        .send()
        .await
        .expect("folder");
    assert!(r.status().is_success() || r.status().is_client_error());
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the host filesystem was touched"
    );
    // missing files, invalid modes
    let (s, v) = json_of(
        agent
            .get(&id, "/files/download?path=/nope/missing")
            .send()
            .await
            .expect("dl"),
    )
    .await;
    assert_eq!(s, 404);
    assert_envelope(&v, 404, "FILE_NOT_FOUND");
    let (s, v) = json_of(
        agent
            .post(&id, &format!("/files/permissions?path={home}&mode=99z"))
            .send()
            .await
            .expect("chmod"),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["source"], "DAYTONA_DAEMON");
    let (s, v) = json_of(
        agent
            .post(&id, &format!("/files/folder?path={home}/x&mode=abc"))
            .send()
            .await
            .expect("folder"),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    // malformed multipart
    let (s, v) = json_of(
        agent.post(&id, "/files/bulk-upload")
            .header("content-type", "multipart/form-data; boundary=zzz")
            .body("--zzz\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\n/home/daytona/m.txt\r\n--zz")
            .send().await.expect("bulk"),
    ).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["source"], "DAYTONA_DAEMON");
    let (s, _) = json_of(
        agent
            .post(&id, "/files/bulk-upload")
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .expect("bulk"),
    )
    .await;
    assert_eq!(s, 400);
    let (s, v) = json_of(
        agent
            .post(&id, "/files/replace")
            .body("{")
            .send()
            .await
            .expect("replace"),
    )
    .await;
    assert_eq!(s, 400);
    assert_envelope(&v, 400, "INVALID_REQUEST_BODY");

    agent.client.destroy_sandbox(&id).await.expect("destroy");
}

/// Splits a `multipart/form-data` body into (filename, content) pairs.
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("boundary")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(rest, delim.as_bytes()).expect("first boundary");
    rest = &rest[start + delim.len()..];
    let next_delim = format!("\r\n--{boundary}");
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = rest.strip_prefix(b"\r\n").expect("crlf after boundary");
        let hdr_end = find(rest, b"\r\n\r\n").expect("headers");
        let headers = String::from_utf8_lossy(&rest[..hdr_end]).into_owned();
        rest = &rest[hdr_end + 4..];
        let end = find(rest, next_delim.as_bytes()).expect("closing boundary");
        let content = rest[..end].to_vec();
        rest = &rest[end + next_delim.len()..];
        let name = headers
            .split("name=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let filename = headers
            .split("filename=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned();
        parts.push((name, filename, content));
    }
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_upload_and_download() {
    let agent = Agent::start(&[]);
    let id = sid("bulk");
    agent.sandbox(&id, |_| {}).await;
    let boundary = "cove-test-boundary-7f3a";
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..20usize {
        let len = if i == 7 { 10 << 20 } else { 1000 + i * 37 };
        let data: Vec<u8> = (0..len).map(|j| ((j * 31 + i * 7) % 251) as u8).collect();
        files.push((format!("/home/daytona/bulk/sub{}/f{i}.bin", i % 3), data));
    }
    let mut body = Vec::new();
    for (i, (path, data)) in files.iter().enumerate() {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files[{i}].path\"\r\n\r\n{path}\r\n").as_bytes());
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files[{i}].file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n", path.trim_start_matches('/')).as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let (s, v) = json_of(
        agent
            .post(&id, "/files/bulk-upload")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("bulk upload"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["files"].as_array().map(Vec::len), Some(20));

    let mut paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    paths.push("/home/daytona/bulk/missing.bin".into());
    let r = agent
        .post(&id, "/files/bulk-download")
        .header("accept", "multipart/form-data")
        .json(&json!({ "paths": paths }))
        .send()
        .await
        .expect("bulk download");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().expect("ct").to_owned();
    assert!(ct.starts_with("multipart/form-data"), "{ct}");
    let body = r.bytes().await.expect("body");
    let parts = parse_multipart(&ct, &body);
    assert_eq!(parts.len(), 21);
    for (path, data) in &files {
        let (_, _, got) = parts
            .iter()
            .find(|(n, f, _)| n == "file" && f == path)
            .unwrap_or_else(|| panic!("no part for {path}"));
        assert!(
            got == data,
            "content of {path} differs ({} vs {} bytes)",
            got.len(),
            data.len()
        );
    }
    let (name, _, err) = parts
        .iter()
        .find(|(_, f, _)| f.ends_with("missing.bin"))
        .expect("error part");
    assert_eq!(name, "error");
    let err: Value = serde_json::from_slice(err).expect("error json");
    assert_eq!(err["code"], "FILE_NOT_FOUND");
    agent.client.destroy_sandbox(&id).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_and_sessions() {
    let agent = Agent::start(&[]);
    let id = sid("proc");
    agent.sandbox(&id, |_| {}).await;

    let (s, v) = json_of(
        agent
            .post(&id, "/process/execute")
            .json(&json!({"command": "echo hi; exit 3", "cwd": "/tmp"}))
            .send()
            .await
            .expect("exec"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["exitCode"].as_i64(), v["result"].as_str()),
        (Some(3), Some("hi\n"))
    );
    let (s, v) = json_of(
        agent
            .post(&id, "/process/execute")
            .json(&json!({"command": "printenv X", "envs": {"X": "y"}}))
            .send()
            .await
            .expect("exec"),
    )
    .await;
    assert_eq!((s, v["result"].as_str()), (200, Some("y\n")));
    let (s, v) = json_of(
        agent
            .post(&id, "/process/execute")
            .json(&json!({"command": "sleep 5", "timeout": 1}))
            .send()
            .await
            .expect("exec"),
    )
    .await;
    assert_eq!(s, 408);
    assert_envelope(&v, 408, "PROCESS_EXECUTION_TIMEOUT");
    let (s, v) = json_of(
        agent
            .post(&id, "/process/code-run")
            .json(&json!({"code": "print(6*7)", "language": "python"}))
            .send()
            .await
            .expect("code-run"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"].as_str().map(str::trim), Some("42"));
    let (s, v) = json_of(agent.get(&id, "/work-dir").send().await.expect("wd")).await;
    assert_eq!((s, v["dir"].as_str()), (200, Some("/home/daytona")));
    let (s, v) = json_of(agent.get(&id, "/user-home-dir").send().await.expect("home")).await;
    assert_eq!((s, v["dir"].as_str()), (200, Some("/home/daytona")));
    let (s, _) = json_of(agent.get(&id, "/version").send().await.expect("version")).await;
    assert_eq!(s, 200);

    // sessions: create, sync exec, async exec, logs (JSON and websocket follow), input, delete
    let r = agent
        .post(&id, "/process/session")
        .json(&json!({"sessionId": "s1"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let r = agent
        .post(&id, "/process/session")
        .json(&json!({"sessionId": "s1"}))
        .send()
        .await
        .expect("dup");
    assert_eq!(r.status(), 409);
    let (s, v) = json_of(
        agent
            .post(&id, "/process/session/s1/exec")
            .json(&json!({"command": "export A=1; echo out; echo err >&2"}))
            .send()
            .await
            .expect("exec"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["stdout"], "out\n");
    assert_eq!(v["stderr"], "err\n");
    let (_, v) = json_of(
        agent
            .post(&id, "/process/session/s1/exec")
            .json(&json!({"command": "echo $A"}))
            .send()
            .await
            .expect("exec"),
    )
    .await;
    assert_eq!(v["output"], "1\n", "session keeps its shell state");

    let (s, v) = json_of(agent.post(&id, "/process/session/s1/exec").json(&json!({"command": "for i in 1 2 3; do echo tick$i; sleep 0.3; done; echo bad >&2", "runAsync": true})).send().await.expect("async")).await;
    assert_eq!(s, 202, "{v}");
    let cmd = v["cmdId"].as_str().expect("cmdId").to_owned();
    // websocket follow through the agent
    let ws_url = format!(
        "{}?follow=true",
        agent
            .tb(&id, &format!("/process/session/s1/command/{cmd}/logs"))
            .replacen("http://", "ws://", 1)
    );
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .expect("ws req");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", common::TOKEN).parse().expect("hdr"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket through the agent");
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while let Some(Ok(msg)) = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
        .await
        .expect("ws in time")
    {
        let data = match msg {
            tokio_tungstenite::tungstenite::Message::Binary(b) => b.to_vec(),
            tokio_tungstenite::tungstenite::Message::Text(t) => t.as_bytes().to_vec(),
            tokio_tungstenite::tungstenite::Message::Close(_) => break,
            _ => continue,
        };
        if let Some(d) = data.strip_prefix(b"\x01\x01\x01") {
            stdout.extend_from_slice(d);
        } else if let Some(d) = data.strip_prefix(b"\x02\x02\x02") {
            stderr.extend_from_slice(d);
        }
    }
    let _ = ws.close(None).await;
    assert_eq!(String::from_utf8_lossy(&stdout), "tick1\ntick2\ntick3\n");
    assert_eq!(String::from_utf8_lossy(&stderr), "bad\n");
    let (s, v) = json_of(
        agent
            .get(&id, &format!("/process/session/s1/command/{cmd}"))
            .send()
            .await
            .expect("cmd"),
    )
    .await;
    assert_eq!((s, v["exitCode"].as_i64()), (200, Some(0)));
    let (s, v) = json_of(
        agent
            .get(&id, &format!("/process/session/s1/command/{cmd}/logs"))
            .header("X-Daytona-SDK-Version", "0.226.1")
            .send()
            .await
            .expect("logs"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["stdout"], "tick1\ntick2\ntick3\n");

    // input to a waiting command
    let (_, v) = json_of(
        agent
            .post(&id, "/process/session/s1/exec")
            .json(&json!({"command": "read x; echo got $x", "runAsync": true}))
            .send()
            .await
            .expect("async"),
    )
    .await;
    let cmd2 = v["cmdId"].as_str().expect("cmdId").to_owned();
    let r = agent
        .post(&id, &format!("/process/session/s1/command/{cmd2}/input"))
        .json(&json!({"data": "abc\n"}))
        .send()
        .await
        .expect("input");
    assert_eq!(r.status(), 204);
    common::wait_until(
        "the command to finish",
        std::time::Duration::from_secs(10),
        || async {
            let (_, v) = json_of(
                agent
                    .get(&id, &format!("/process/session/s1/command/{cmd2}"))
                    .send()
                    .await
                    .expect("cmd"),
            )
            .await;
            v["exitCode"].as_i64() == Some(0)
        },
    )
    .await;
    let (_, v) = json_of(
        agent
            .get(&id, "/process/session/s1")
            .send()
            .await
            .expect("session"),
    )
    .await;
    assert_eq!(v["commands"].as_array().map(Vec::len), Some(4));
    let (s, v) = json_of(
        agent
            .get(&id, "/process/session")
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().map(Vec::len), Some(1));

    // unknown sessions and commands
    let (s, v) = json_of(
        agent
            .get(&id, "/process/session/nope")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(v["source"], "DAYTONA_DAEMON");
    let (s, _) = json_of(
        agent
            .post(&id, "/process/session/nope/exec")
            .json(&json!({"command": "true"}))
            .send()
            .await
            .expect("exec"),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = json_of(
        agent
            .get(&id, "/process/session/s1/command/nope")
            .send()
            .await
            .expect("cmd"),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = json_of(
        agent
            .get(&id, "/process/session/s1/command/nope/logs")
            .send()
            .await
            .expect("logs"),
    )
    .await;
    assert_eq!(s, 404);

    let r = agent
        .delete(&id, "/process/session/s1")
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (s, _) = json_of(
        agent
            .get(&id, "/process/session/s1")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 404);
    agent.client.destroy_sandbox(&id).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_and_lsp() {
    let agent = Agent::start(&[]);
    let id = sid("git");
    agent.sandbox(&id, |_| {}).await;

    // A bare repository served locally inside the sandbox.
    let (code, out) = agent.exec(&id, "set -e; git init -q --bare -b main /tmp/src.git; git clone -q /tmp/src.git /tmp/w 2>/dev/null; cd /tmp/w; echo 'hello git' > README.md; git add README.md; git -c user.email=t@e -c user.name=t commit -q -m init; git push -q origin HEAD:main").await;
    assert_eq!(code, 0, "{out}");
    let r = agent
        .post(&id, "/git/clone")
        .json(&json!({"url": "file:///tmp/src.git", "path": "repo"}))
        .send()
        .await
        .expect("clone");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = agent
        .get(&id, "/files/download?path=repo/README.md")
        .send()
        .await
        .expect("dl");
    assert_eq!(r.text().await.expect("text"), "hello git\n");
    let (s, v) = json_of(
        agent
            .get(&id, "/git/status?path=repo")
            .send()
            .await
            .expect("status"),
    )
    .await;
    assert_eq!((s, v["currentBranch"].as_str()), (200, Some("main")), "{v}");
    let (s, v) = json_of(
        agent
            .get(&id, "/git/history?path=repo")
            .send()
            .await
            .expect("history"),
    )
    .await;
    assert_eq!(
        (s, v[0]["message"].as_str().map(str::trim)),
        (200, Some("init"))
    );
    let (s, v) = json_of(
        agent
            .post(&id, "/git/clone")
            .json(&json!({"url": "file:///tmp/none.git", "path": "repo2"}))
            .send()
            .await
            .expect("clone"),
    )
    .await;
    assert!((400..500).contains(&s), "{s} {v}");
    assert_eq!(v["source"], "DAYTONA_DAEMON");

    // LSP completions from pylsp.
    let (code, _) = agent
        .exec(
            &id,
            "mkdir -p /home/daytona/proj && printf 'import os\\nos.pa' > /home/daytona/proj/m.py",
        )
        .await;
    assert_eq!(code, 0);
    let base = json!({"languageId": "python", "pathToProject": "/home/daytona/proj"});
    let (s, v) = json_of(agent.post(&id, "/lsp/completions").json(&json!({"languageId": "python", "pathToProject": "/home/daytona/proj", "uri": "file:///home/daytona/proj/m.py", "position": {"line": 1, "character": 5}})).send().await.expect("early")).await;
    assert_eq!(s, 400);
    assert_envelope(&v, 400, "LSP_SERVER_NOT_INITIALIZED");
    let r = agent
        .post(&id, "/lsp/start")
        .json(&base)
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let doc = json!({"languageId": "python", "pathToProject": "/home/daytona/proj", "uri": "file:///home/daytona/proj/m.py"});
    let r = agent
        .post(&id, "/lsp/did-open")
        .json(&doc)
        .send()
        .await
        .expect("open");
    assert_eq!(r.status(), 200);
    // pylsp answers the first requests while jedi still loads: ask until it has items.
    let mut labels = Vec::new();
    for _ in 0..40 {
        let (s, v) = json_of(agent.post(&id, "/lsp/completions").json(&json!({"languageId": "python", "pathToProject": "/home/daytona/proj", "uri": "file:///home/daytona/proj/m.py", "position": {"line": 1, "character": 5}})).send().await.expect("completions")).await;
        assert_eq!(s, 200, "{v}");
        labels = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["label"].as_str().map(str::to_owned))
            .collect();
        if !labels.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(labels.iter().any(|l| l.starts_with("path")), "{labels:?}");
    let r = agent
        .post(&id, "/lsp/stop")
        .json(&base)
        .send()
        .await
        .expect("stop");
    assert_eq!(r.status(), 200);
    agent.client.destroy_sandbox(&id).await.expect("destroy");
}

/// Keep `SinkExt` in use for the websocket close path on older tungstenite versions.
#[allow(dead_code)]
async fn _close(ws: &mut (impl SinkExt<tokio_tungstenite::tungstenite::Message> + Unpin)) {
    let _ = ws.close().await;
}
