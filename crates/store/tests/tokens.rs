//! Client request tokens of `TransactWriteItems`, read off the wire: two stores built the same way
//! from the same generator state (what every fresh component instance looks like: one thread, a
//! monotonic clock starting at zero) still send different tokens, and every attempt gets its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use cove_api_types::ids::{OrganizationId, UserId};
use cove_store::api_keys::ApiKeyRecord;
use cove_store::{Store, StoreConfig, keys};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A stand-in DynamoDB endpoint that answers every request with `{}` and records the
/// `ClientRequestToken` of each `TransactWriteItems`.
async fn recording_endpoint() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = tokens.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(conn, seen.clone()));
        }
    });
    (url, tokens)
}

async fn serve(conn: tokio::net::TcpStream, tokens: Arc<Mutex<Vec<String>>>) {
    let mut conn = BufReader::new(conn);
    loop {
        let (mut target, mut length) = (String::new(), 0usize);
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if let Some(v) = lower.strip_prefix("x-amz-target:") {
                target = v.trim().to_owned();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await.unwrap();
        if target.ends_with("transactwriteitems") {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let token = v["ClientRequestToken"].as_str().unwrap_or_default();
            tokens.lock().unwrap().push(token.to_owned());
        }
        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                      content-length: 2\r\n\r\n{}";
        conn.get_mut().write_all(answer.as_bytes()).await.unwrap();
    }
}

fn api_key(name: &str) -> ApiKeyRecord {
    let k = keys::generate().unwrap();
    ApiKeyRecord {
        organization_id: OrganizationId::new_random(),
        user_id: UserId::parse("u").unwrap(),
        name: name.into(),
        key_hash: k.hash,
        key_prefix: k.prefix,
        key_suffix: k.suffix,
        permissions: vec![],
        created_at: cove_api_types::time::now_rfc3339(),
        expires_at: None,
        last_used_at: None,
        version: 1,
    }
}

/// A store built as a fresh component instance builds it: from the same generator state.
fn fresh_instance(endpoint: &str) -> Store {
    fastrand::seed(0x5eed);
    Store::new(&StoreConfig::local(endpoint, "t"))
}

#[tokio::test(flavor = "current_thread")]
async fn stores_built_the_same_way_send_different_tokens() {
    let (endpoint, tokens) = recording_endpoint().await;
    let a = fresh_instance(&endpoint);
    a.api_keys().create(&api_key("a")).await.unwrap();
    let b = fresh_instance(&endpoint);
    b.api_keys().create(&api_key("a")).await.unwrap();
    // And one store's next transaction gets a new token too.
    b.api_keys().create(&api_key("b")).await.unwrap();

    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    for t in &tokens {
        assert_eq!(t.len(), 36, "a UUID: {t}");
        assert!(uuid_v4_shaped(t), "{t}");
    }
    assert_ne!(tokens[0], tokens[1], "two instances repeated a token");
    assert_ne!(tokens[1], tokens[2], "one instance repeated a token");
}

fn uuid_v4_shaped(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts[2].starts_with('4')
        && t.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
}
