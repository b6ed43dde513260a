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
