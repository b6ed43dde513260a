//! The sandbox routes (`/system/metrics`, `/port`, `/env`), the git config/remote/reset/restore
//! routes and Daytona's wording of errors, against the real daemon.

use crate::common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

fn assert_envelope(r: &cove_toolbox::client::Reply, status: u16, code: &str) -> String {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text());
    let v = r.json();
    assert_eq!(v["statusCode"], status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    v["message"].as_str().unwrap_or_default().to_owned()
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an unsigned integer in {v}"))
}

#[tokio::test]
async fn system_metrics_are_sane() {
    let d = Daemon::start().await;
    let r = d.get("/system/metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let m = r.json();
    let keys: Vec<&str> = m
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "cpuCount",
            "cpuUsedPct",
            "diskFree",
            "diskTotal",
            "diskUsed",
            "memCache",
            "memTotal",
            "memUsed",
            "timestamp",
            "timestampUnix"
        ],
        "{m}"
    );
    assert!(u64_of(&m, "cpuCount") >= 1, "{m}");
    let pct = m["cpuUsedPct"].as_f64().expect("a number");
    assert!((0.0..=100.0).contains(&pct), "{m}");
    let mem_total = u64_of(&m, "memTotal");
    assert!(mem_total > 0 && u64_of(&m, "memUsed") <= mem_total, "{m}");
    let disk_total = u64_of(&m, "diskTotal");
    assert!(disk_total > 0, "{m}");
    assert!(u64_of(&m, "diskUsed") <= disk_total, "{m}");
    assert!(
        u64_of(&m, "diskFree") <= disk_total - u64_of(&m, "diskUsed"),
        "{m}"
    );
    // The disk is the work dir's filesystem (here the jail's, a temp dir).
    let vfs = rustix::fs::statvfs(&d.root).expect("statvfs");
    assert_eq!(disk_total, vfs.f_blocks * vfs.f_frsize, "{m}");
    // RFC 3339 UTC, whole seconds, the same instant as timestampUnix.
    let ts = m["timestamp"].as_str().expect("timestamp");
    let parsed = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    assert!(ts.ends_with('Z'), "{ts}");
    assert_eq!(
        parsed.unix_timestamp(),
        m["timestampUnix"].as_i64().expect("unix")
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - parsed.unix_timestamp()).abs() <= 5, "{ts}");

    // CPU burnt between two calls shows in the second (the window is the time between them).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spin = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        })
    };
    let _ = d.get("/system/metrics").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let busy = d.get("/system/metrics").await.json();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spin.join().expect("spinner");
    let pct = busy["cpuUsedPct"].as_f64().expect("a number");
    assert!(pct > 0.0 && pct <= 100.0, "{busy}");
}

#[tokio::test]
async fn ports_in_use_are_listed() {
    let d = Daemon::start().await;
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind v4");
    let p4 = v4.local_addr().expect("addr").port();
    let ports = d.get("/port").await.json();
    let list: Vec<u64> = ports["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| p.as_u64().expect("a port"))
        .collect();
    assert!(list.contains(&u64::from(p4)), "{ports}");
    assert!(
        list.windows(2).all(|w| w[0] < w[1]),
        "ascending, once: {ports}"
    );
    let r = d.get(&format!("/port/{p4}/in-use")).await;
    assert_eq!(r.json(), json!({"isInUse": true}));
    // A connected (not listening) socket does not count; a closed listener is gone.
    let client = std::net::TcpStream::connect(("127.0.0.1", p4)).expect("connect");
    let local = client.local_addr().expect("addr").port();
    assert_eq!(
        d.get(&format!("/port/{local}/in-use")).await.json(),
        json!({"isInUse": false})
    );
    drop(client);
    drop(v4);
    assert_eq!(
        d.get(&format!("/port/{p4}/in-use")).await.json(),
        json!({"isInUse": false})
    );
    // IPv6 listeners count too (when the host has IPv6).
    if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
        let p6 = v6.local_addr().expect("addr").port();
        assert_eq!(
            d.get(&format!("/port/{p6}/in-use")).await.json(),
            json!({"isInUse": true})
        );
    }
    for bad in ["0", "65536", "http", "-1"] {
        let msg = assert_envelope(
            &d.get(&format!("/port/{bad}/in-use")).await,
            400,
            "BAD_REQUEST",
        );
        assert!(msg.contains(bad), "{msg}");
    }
}

#[tokio::test]
async fn env_changes_reach_later_processes() {
    let d = Daemon::start().await;
    // A session started before the change keeps its environment.
    let r = d
        .post_json("/process/session", json!({"sessionId": "before"}))
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let r = d
        .post_json(
            "/env",
            json!({"set": {"COVE_TBX_A": "alpha", "COVE_TBX_S": "secret:1"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"message": "Environment updated successfully"})
    );
    let run = |cmd: &str| {
        let cmd = cmd.to_owned();
        let d = &d;
        async move {
            let r = d
                .post_json("/process/execute", json!({"command": cmd}))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            r.json()["result"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_owned()
        }
    };
    assert_eq!(run("sh -c 'echo $COVE_TBX_A'").await, "alpha");
    // The request's own envs win.
    let r = d
        .post_json(
            "/process/execute",
            json!({"command": "sh -c 'echo $COVE_TBX_A'", "envs": {"COVE_TBX_A": "own"}}),
        )
        .await;
    assert_eq!(r.json()["result"].as_str().map(str::trim), Some("own"));
    // New sessions get it, the old one does not.
    let r = d
        .post_json("/process/session", json!({"sessionId": "after"}))
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    for (sid, want) in [("after", "alpha"), ("before", "")] {
        let r = d
            .post_json(
                &format!("/process/session/{sid}/exec"),
                json!({"command": "echo \"[$COVE_TBX_A]\""}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let out = r.json();
        assert_eq!(
            out["output"]
                .as_str()
                .or(out["stdout"].as_str())
                .map(str::trim),
            Some(format!("[{want}]").as_str()),
            "{out}"
        );
    }
    // unsetValuePrefix removes by value, except the names `set` sets; then unset.
    let r = d
        .post_json(
            "/env",
            json!({"unsetValuePrefix": "secret:", "unset": ["COVE_TBX_A"], "set": {"COVE_TBX_B": "secret:2"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        run("sh -c 'echo \"[$COVE_TBX_A][$COVE_TBX_S][$COVE_TBX_B]\"'").await,
        "[][][secret:2]"
    );
    // Bad names are 400 and change nothing.
    let msg = assert_envelope(
        &d.post_json("/env", json!({"set": {"1BAD": "x", "COVE_TBX_C": "c"}}))
            .await,
        400,
        "BAD_REQUEST",
    );
    assert!(msg.contains("1BAD"), "{msg}");
    assert_eq!(run("sh -c 'echo \"[$COVE_TBX_C]\"'").await, "[]");
    assert_envelope(
        &d.post_json("/env", json!({"set": {"A": 1}})).await,
        400,
        "INVALID_REQUEST_BODY",
    );
}

/// Points the daemon's git at a private `HOME` and system config (through `POST /env`, which
/// git commands of the daemon honour), so no test touches the real ones. Returns the home.
async fn private_git(d: &Daemon) -> std::path::PathBuf {
    let home = d.dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let system = d.dir.path().join("gitconfig-system");
    let r = d
        .post_json(
            "/env",
            json!({
                "set": {
                    "HOME": home.to_str().expect("utf-8"),
                    "XDG_CONFIG_HOME": home.join(".config").to_str().expect("utf-8"),
                    "GIT_CONFIG_SYSTEM": system.to_str().expect("utf-8"),
                },
                "unset": ["GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    home
}

/// A repository at virtual `/repo` with two commits of `a.txt` ("one", then "two").
fn two_commits(d: &Daemon) -> std::path::PathBuf {
    let dir = d.real("/repo");
    std::fs::create_dir_all(&dir).expect("repo dir");
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("a.txt"), "one\n").expect("write");
    git(&dir, &["add", "a.txt"]);
    git(&dir, &["commit", "-q", "-m", "first"]);
    std::fs::write(dir.join("a.txt"), "two\n").expect("write");
    git(&dir, &["commit", "-q", "-am", "second"]);
    dir
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test]
async fn git_config_get_and_set() {
    let d = Daemon::start().await;
    let home = private_git(&d).await;
    let repo = two_commits(&d);
    let get = |query: String| {
        let d = &d;
        async move { d.get(&format!("/git/config?{query}")).await }
    };
    // Unset: null.
    let r = get(format!("key={}", q("cove.nothing"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"value": null}));
    // Global by default, into $HOME/.gitconfig.
    let r = d
        .post_json(
            "/git/config",
            json!({"key": "cove.color", "value": "blue green"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(read(&home.join(".gitconfig")).contains("color = blue green"));
    assert_eq!(
        get("key=cove.color".into()).await.json(),
        json!({"value": "blue green"})
    );
    // Local needs a path; then it is the repository's, and global does not see it.
    let msg = assert_envelope(
        &d.post_json(
            "/git/config",
            json!({"key": "cove.x", "value": "1", "scope": "local"}),
        )
        .await,
        400,
        "BAD_REQUEST",
    );
    assert!(msg.contains("path is required"), "{msg}");
    let r = d
        .post_json(
            "/git/config",
            json!({"key": "cove.x", "value": "", "scope": "local", "path": "/repo"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(read(&repo.join(".git/config")).contains("x = "));
    assert_eq!(
        get("key=cove.x&scope=local&path=%2Frepo".into())
            .await
            .json(),
        json!({"value": ""}),
        "an empty value is not unset"
    );
    assert_eq!(
        get("key=cove.x".into()).await.json(),
        json!({"value": null})
    );
    // System scope goes where git's system config is (here a private file).
    let r = d
        .post_json(
            "/git/config",
            json!({"key": "cove.sys", "value": "s", "scope": "system"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(read(&d.dir.path().join("gitconfig-system")).contains("sys = s"));
    assert_eq!(
        get("key=cove.sys&scope=system".into()).await.json(),
        json!({"value": "s"})
    );
    // A multi-valued key is replaced whole.
    git(&repo, &["config", "--add", "cove.multi", "a"]);
    git(&repo, &["config", "--add", "cove.multi", "b"]);
    let r = d
        .post_json(
            "/git/config",
            json!({"key": "cove.multi", "value": "c", "scope": "local", "path": "/repo"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(git(&repo, &["config", "--get-all", "cove.multi"]), "c");
    // Bad input.
    assert_envelope(
        &get("key=cove.x&scope=worktree".into()).await,
        400,
        "BAD_REQUEST",
    );
    assert_envelope(&get("key=".into()).await, 400, "BAD_REQUEST");
    assert_envelope(&get("key=--list".into()).await, 400, "BAD_REQUEST");
    assert_envelope(&get("key=nosection".into()).await, 400, "BAD_REQUEST");
    assert_envelope(
        &get("key=a.b&scope=local&path=%2Fnope".into()).await,
        404,
        "GIT_REPO_NOT_FOUND",
    );
    assert_envelope(
        &d.post_json("/git/config", json!({"key": "cove.x"})).await,
        400,
        "INVALID_REQUEST_BODY",
    );

    // config/user: both keys, global by default or local.
    let r = d
        .post_json(
            "/git/config/user",
            json!({"name": "Ada Lovelace", "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        get("key=user.name".into()).await.json(),
        json!({"value": "Ada Lovelace"})
    );
    assert_eq!(
        get("key=user.email".into()).await.json(),
        json!({"value": "ada@example.com"})
    );
    let r = d
        .post_json(
            "/git/config/user",
            json!({"name": "Local", "email": "l@example.com", "scope": "local", "path": "/repo"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(git(&repo, &["config", "--local", "user.name"]), "Local");
    assert_envelope(
        &d.post_json("/git/config/user", json!({"name": "", "email": "e@x"}))
            .await,
        400,
        "BAD_REQUEST",
    );
}

#[tokio::test]
async fn git_credentials_are_stored_for_later_commands() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start().await;
    let home = private_git(&d).await;
    let r = d
        .post_json(
            "/git/credentials",
            json!({"username": "bot", "password": "s3cret/tok", "host": "git.example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let store = home.join(".git-credentials");
    let text = read(&store);
    assert!(
        text.contains("https://bot:s3cret%2ftok@git.example.com"),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&store)
            .expect("store")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // `store` is a global helper now (once, however often credentials are stored), so a later
    // git asking for git.example.com gets them.
    let r = d
        .post_json(
            "/git/credentials",
            json!({"username": "bot", "password": "other", "host": "h2.example.com", "protocol": "http"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let gitconfig = read(&home.join(".gitconfig"));
    assert_eq!(
        gitconfig.matches("helper = store").count(),
        1,
        "{gitconfig}"
    );
    assert!(read(&store).contains("http://bot:other@h2.example.com"));
    let r = d
        .post_json(
            "/process/execute",
            json!({"command": "sh -c 'printf \"protocol=https\\nhost=git.example.com\\n\\n\" | git credential fill'"}),
        )
        .await;
    let out = r.json();
    assert_eq!(out["exitCode"], 0, "{out}");
    assert!(
        out["result"]
            .as_str()
            .is_some_and(|s| s.contains("password=s3cret/tok")),
        "{out}"
    );
    // Injection through a newline is refused; required fields too.
    let msg = assert_envelope(
        &d.post_json(
            "/git/credentials",
            json!({"username": "bot", "password": "x\nhost=evil.example.com"}),
        )
        .await,
        400,
        "BAD_REQUEST",
    );
    assert!(msg.contains("newline"), "{msg}");
    assert_envelope(
        &d.post_json("/git/credentials", json!({"username": "bot"}))
            .await,
        400,
        "INVALID_REQUEST_BODY",
    );
    assert!(!read(&store).contains("evil"));
}

#[tokio::test]
async fn git_remotes_list_add_overwrite_fetch() {
    let d = Daemon::start().await;
    let _home = private_git(&d).await;
    let upstream = two_commits(&d);
    let work = d.real("/work");
    std::fs::create_dir_all(&work).expect("work");
    git(&work, &["init", "-q", "-b", "main"]);
    let list = |path: &'static str| {
        let d = &d;
        async move { d.get(&format!("/git/remotes?path={}", q(path))).await }
    };
    assert_eq!(list("/work").await.json(), json!({"remotes": []}));
    let add = |body: Value| {
        let d = &d;
        async move { d.post_json("/git/remotes", body).await }
    };
    let r = add(json!({"path": "/work", "name": "origin", "url": "https://h.example/a.git"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        list("/work").await.json(),
        json!({"remotes": [{"name": "origin", "url": "https://h.example/a.git"}]})
    );
    // Again: 409; with overwrite: the new URL.
    let msg = assert_envelope(
        &add(json!({"path": "/work", "name": "origin", "url": "https://h.example/b.git"})).await,
        409,
        "CONFLICT",
    );
    assert!(msg.contains("already exists"), "{msg}");
    let r = add(json!({"path": "/work", "name": "origin", "url": "https://u:pw@h.example/b.git", "overwrite": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        git(&work, &["remote", "get-url", "origin"]),
        "https://u:pw@h.example/b.git"
    );
    // With fetch: the remote's branches are there at once. The password is not listed.
    let up = upstream.to_str().expect("utf-8");
    let r = add(json!({"path": "/work", "name": "up", "url": up, "fetch": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        git(&work, &["rev-parse", "refs/remotes/up/main"]),
        git(&upstream, &["rev-parse", "HEAD"])
    );
    assert_eq!(
        list("/work").await.json(),
        json!({"remotes": [
            {"name": "origin", "url": "https://u@h.example/b.git"},
            {"name": "up", "url": up},
        ]})
    );
    // A fetch that fails is the transport's error (the remote stays added, as in git).
    let r = add(
        json!({"path": "/work", "name": "gone", "url": "/nonexistent/repo.git", "fetch": true}),
    )
    .await;
    assert_envelope(&r, 404, "GIT_REPO_NOT_FOUND");
    assert!(
        list("/work").await.json()["remotes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == "gone"))
    );
    // Bad input.
    assert_envelope(&list("/nope").await, 404, "GIT_REPO_NOT_FOUND");
    assert_envelope(
        &add(json!({"path": "/work", "name": "-x", "url": "u"})).await,
        400,
        "BAD_REQUEST",
    );
    assert_envelope(
        &add(json!({"path": "/work", "name": "bad name", "url": "u"})).await,
        400,
        "BAD_REQUEST",
    );
    assert_envelope(
        &add(json!({"path": "/work", "name": "x"})).await,
        400,
        "INVALID_REQUEST_BODY",
    );
}

#[tokio::test]
async fn git_reset_and_restore() {
    let d = Daemon::start().await;
    let _home = private_git(&d).await;
    let repo = two_commits(&d);
    let a = repo.join("a.txt");
    let post = |uri: &'static str, body: Value| {
        let d = &d;
        async move { d.post_json(uri, body).await }
    };
    let status = |repo: &std::path::Path| git(repo, &["status", "--porcelain"]);

    // restore: the working tree by default.
    std::fs::write(&a, "dirty\n").expect("write");
    let r = post("/git/restore", json!({"path": "/repo", "files": ["a.txt"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(read(&a), "two\n");
    // staged: unstages, the file keeps its change.
    std::fs::write(&a, "staged\n").expect("write");
    git(&repo, &["add", "a.txt"]);
    let r = post(
        "/git/restore",
        json!({"path": "/repo", "files": ["a.txt"], "staged": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(status(&repo), "M a.txt");
    assert_eq!(read(&a), "staged\n");
    // source: the contents of another revision.
    let r = post(
        "/git/restore",
        json!({"path": "/repo", "files": ["a.txt"], "source": "HEAD~1", "worktree": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(read(&a), "one\n");
    // staged + worktree: both back to HEAD.
    git(&repo, &["add", "a.txt"]);
    let r = post(
        "/git/restore",
        json!({"path": "/repo", "files": ["a.txt"], "staged": true, "worktree": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(status(&repo), "");
    assert_eq!(read(&a), "two\n");
    let msg = assert_envelope(
        &post(
            "/git/restore",
            json!({"path": "/repo", "files": ["nope.txt"]}),
        )
        .await,
        404,
        "NOT_FOUND",
    );
    assert!(msg.contains("pathspec"), "{msg}");
    assert_envelope(
        &post("/git/restore", json!({"path": "/repo", "files": []})).await,
        400,
        "BAD_REQUEST",
    );
    assert_envelope(
        &post(
            "/git/restore",
            json!({"path": "/repo", "files": ["a.txt"], "source": "nope"}),
        )
        .await,
        404,
        "NOT_FOUND",
    );

    // reset: mixed by default (unstages), files only in the index.
    std::fs::write(&a, "three\n").expect("write");
    git(&repo, &["add", "a.txt"]);
    let r = post("/git/reset", json!({"path": "/repo"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(status(&repo), "M a.txt");
    git(&repo, &["add", "a.txt"]);
    let r = post("/git/reset", json!({"path": "/repo", "files": ["a.txt"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(status(&repo), "M a.txt");
    assert_envelope(
        &post(
            "/git/reset",
            json!({"path": "/repo", "mode": "hard", "files": ["a.txt"]}),
        )
        .await,
        400,
        "BAD_REQUEST",
    );
    // soft to HEAD~1: the second commit's change is staged again.
    let second = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(&a, "two\n").expect("write");
    let r = post(
        "/git/reset",
        json!({"path": "/repo", "mode": "soft", "target": "HEAD~1"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(status(&repo), "M  a.txt");
    // hard back to the second commit: clean, its contents.
    let r = post(
        "/git/reset",
        json!({"path": "/repo", "mode": "HARD", "target": second}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), second);
    assert_eq!(status(&repo), "");
    assert_eq!(read(&a), "two\n");
    // Bad input.
    let msg = assert_envelope(
        &post("/git/reset", json!({"path": "/repo", "mode": "sideways"})).await,
        400,
        "BAD_REQUEST",
    );
    assert!(msg.contains("sideways"), "{msg}");
    assert_envelope(
        &post("/git/reset", json!({"path": "/repo", "target": "--hard"})).await,
        400,
        "BAD_REQUEST",
    );
    assert_envelope(
        &post(
            "/git/reset",
            json!({"path": "/repo", "mode": "hard", "target": "nope"}),
        )
        .await,
        404,
        "NOT_FOUND",
    );
    assert_envelope(
        &post("/git/reset", json!({"path": "/nope"})).await,
        404,
        "GIT_REPO_NOT_FOUND",
    );
    assert_eq!(read(&a), "two\n", "failed resets changed nothing");
}

#[tokio::test]
async fn errors_in_daytonas_words() {
    let d = Daemon::start().await;
    let r = d
        .post_json(
            "/process/execute",
            json!({"command": "sleep 30", "timeout": 1}),
        )
        .await;
    let msg = assert_envelope(&r, 408, "PROCESS_EXECUTION_TIMEOUT");
    assert_eq!(
        msg,
        "Command execution timed out after 1 seconds. The timeout can be increased by \
         adjusting the timeout parameter in the request."
    );
    let msg = assert_envelope(
        &d.get(&format!("/files/info?path={}", q("/no/such"))).await,
        404,
        "FILE_NOT_FOUND",
    );
    assert_eq!(msg, "file not found: /no/such");
    // A symlink out of the jail is refused whoever the daemon runs as.
    std::os::unix::fs::symlink("/etc", d.real("/out")).expect("symlink");
    let msg = assert_envelope(
        &d.get(&format!("/files/info?path={}", q("/out/passwd")))
            .await,
        403,
        "FILE_ACCESS_DENIED",
    );
    assert!(msg.starts_with("permission denied: "), "{msg}");
    let msg = assert_envelope(
        &d.post_json("/process/execute", json!({"command": "  "}))
            .await,
        400,
        "BAD_REQUEST",
    );
    assert_eq!(msg, "command cannot be empty");
}

#[tokio::test]
async fn workspace_symbols_of_the_open_documents() {
    let d = Daemon::start().await;
    std::fs::create_dir_all(d.real("/proj")).expect("proj");
    std::fs::write(
        d.real("/proj/a.py"),
        "def greet(name):\n    return name\n\nclass Greeter:\n    pass\n",
    )
    .expect("write");
    std::fs::write(
        d.real("/proj/b.py"),
        "def farewell():\n    pass\n\nGREETING = 1\n",
    )
    .expect("write");
    std::fs::write(d.real("/proj/c.py"), "def greet_unopened():\n    pass\n").expect("write");
    let server = json!({"languageId": "python", "pathToProject": "/proj"});
    let r = d.post_json("/lsp/start", server.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for f in ["a.py", "b.py"] {
        let doc = json!({"languageId": "python", "pathToProject": "/proj", "uri": format!("file:///proj/{f}")});
        let r = d.post_json("/lsp/did-open", doc).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let search = |query: &'static str| {
        let d = &d;
        async move {
            let r = d
                .get(&format!(
                    "/lsp/workspacesymbols?query={}&languageId=python&pathToProject={}",
                    q(query),
                    q("/proj")
                ))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let mut found: Vec<(String, String)> = r
                .json()
                .as_array()
                .expect("symbols")
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_owned(),
                        s["location"]["uri"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            found.sort();
            found
        }
    };
    let a = "file:///proj/a.py".to_owned();
    let b = "file:///proj/b.py".to_owned();
    // Case-insensitive, over both open documents, not the unopened one.
    assert_eq!(
        search("greet").await,
        vec![
            ("GREETING".to_owned(), b.clone()),
            ("Greeter".to_owned(), a.clone()),
            ("greet".to_owned(), a.clone()),
        ]
    );
    assert!(search("").await.iter().any(|(n, _)| n == "farewell"));
    assert_eq!(search("nothing-like-this").await, vec![]);
    // A closed document is no longer searched.
    let doc = json!({"languageId": "python", "pathToProject": "/proj", "uri": "file:///proj/a.py"});
    assert_eq!(
        d.post_json("/lsp/did-close", doc).await.status,
        StatusCode::OK
    );
    assert_eq!(search("greet").await, vec![("GREETING".to_owned(), b)]);
    let _ = d.post_json("/lsp/stop", server).await;
}
