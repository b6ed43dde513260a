//! The SDKs' real-time events (CONTRACT §11) against the real `cove up`: a raw Engine.IO v4 /
//! Socket.IO client on `/api/socket.io/` of the control plane's listener (where the SDKs connect;
//! served by cove-proxy's relay), two organizations, a simulated runner.

use std::time::Duration;

use cove_testkit::api::{Api, Call};
use cove_testkit::cove::{Cove, CoveOptions, Runner};
use cove_testkit::org;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next Socket.IO packet of `ws` (Engine.IO pings answered), `None` within `wait`.
async fn packet(ws: &mut Ws, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        let Message::Text(text) = msg else { continue };
        match text.as_str() {
            "2" => ws.send(Message::text("3")).await.ok()?,
            t => return Some(t.to_owned()),
        }
    }
}

/// Opens a socket with `auth: {"token": token}`: the connect packet's answer (`40…` admitted,
/// `44…` refused) and the socket.
async fn connect(base: &str, token: &str) -> (String, Ws) {
    let url = format!(
        "{}/api/socket.io/?source=cove-test&EIO=4&transport=websocket",
        base.replacen("http://", "ws://", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = packet(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert!(open.starts_with("0{"), "Engine.IO open: {open}");
    let hello = format!("40{}", json!({"token": token}));
    ws.send(Message::text(hello)).await.unwrap();
    let answer = packet(&mut ws, Duration::from_secs(10)).await.unwrap();
    (answer, ws)
}

/// The events `ws` gets within `wait`, as `(name, data)`.
async fn events(
    ws: &mut Ws,
    wait: Duration,
    until: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(p) = packet(ws, deadline - tokio::time::Instant::now()).await {
        let Some(body) = p.strip_prefix("42") else {
            continue;
        };
        let v: Value = serde_json::from_str(body).unwrap();
        let name = v[0].as_str().unwrap().to_owned();
        let stop = until(&name, &v[1]);
        out.push((name, v[1].clone()));
        if stop {
            break;
        }
    }
    out
}

fn sandbox_of(data: &Value) -> &str {
    data["sandbox"]["id"]
        .as_str()
        .or(data["id"].as_str())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_events_reach_the_organizations_sockets_only() {
    let cove = Cove::start(CoveOptions::default().runner(Runner::Fake).fresh_table())
        .await
        .unwrap();
    let api = cove.api();
    let perms = ["write:sandboxes", "delete:sandboxes"];
    let (a, b) = (
        org::tenant(&api, &perms).await,
        org::tenant(&api, &perms).await,
    );

    // A bad token is refused with the packet of connect_error, promptly.
    let (answer, _) = connect(cove.base(), "not-a-key").await;
    assert!(answer.starts_with("44"), "{answer}");
    assert!(answer.contains("Unauthorized"), "{answer}");

    let (answer, mut mine) = connect(cove.base(), &a.key).await;
    assert!(answer.starts_with("40{\"sid\""), "{answer}");
    let (answer, mut theirs) = connect(cove.base(), &b.key).await;
    assert!(answer.starts_with("40"), "{answer}");

    let (s, sb) = api
        .call(
            Call::post("/api/sandbox")
                .token(&a.key)
                .json(&json!({"name": "evented"})),
        )
        .await;
    assert_eq!(s, 200, "{sb}");
    let id = sb["id"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call(Call::post(format!("/api/sandbox/{id}/stop")).token(&a.key))
        .await;
    assert_eq!(s, 200);
    let got = events(&mut mine, Duration::from_secs(20), |n, d| {
        n == "sandbox.state.updated" && d["newState"] == "stopped"
    })
    .await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"sandbox.created"), "{got:?}");
    assert!(got.iter().all(|(_, d)| sandbox_of(d) == id), "{got:?}");
    assert_eq!(got[0].1["name"], "evented");
    let (_, last) = got.last().unwrap();
    assert_eq!(
        (last["newState"].as_str(), last["sandbox"]["id"].as_str()),
        (Some("stopped"), Some(id.as_str()))
    );
    assert!(
        names.contains(&"sandbox.desired-state.updated"),
        "{names:?}"
    );

    // The other organization's socket got none of it.
    let leaked = events(&mut theirs, Duration::from_millis(1500), |_, _| false).await;
    assert!(leaked.is_empty(), "{leaked:?}");
}
