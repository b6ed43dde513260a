//! Port forwarding for preview URLs: `/proxy/{port}/{path}` is sent to `127.0.0.1:{port}` on
//! the sandbox's own loopback (so a preview works with the sandbox's network blocked).
//!
//! Requests and responses stream both ways; a websocket (or any HTTP/1.1 upgrade) answered
//! `101` by the server in the sandbox is relayed byte for byte until either side closes. The
//! server gets `Host: 127.0.0.1:{port}` (the preview host, when the proxy names it, comes as
//! `X-Forwarded-Host`). Errors are JSON: 400 for a port outside 1..=65535, 502 when nothing
//! accepts connections on the port, 504 when the connection does not open within 10 s.
//!
//! Connections to a port are kept alive and reused ([`crate::conn_pool`], one set per port).
//!
//! These routes sit outside the toolbox route table (and its body-draining layer): they are
//! not part of Daytona's toolbox API document.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper::client::conn::http1::SendRequest;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::conn_pool::{ConnPool, SendError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers about one hop only, never forwarded as such (`connection` and `upgrade` are left to
/// the caller: they stay on an upgrade). The runner agent's toolbox forward uses this list too.
pub const HOP_BY_HOP: [&str; 7] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Once both halves of an HTTP/1.1 upgrade are done (the server's `101` and the client's
/// connection), relays bytes between them with `relay(client, server)`, in the background.
/// Used here and by the runner agent's toolbox forward (which relays with an idle timeout).
pub fn relay_upgrade<F, Fut>(server: OnUpgrade, client: OnUpgrade, relay: F)
where
    F: FnOnce(TokioIo<Upgraded>, TokioIo<Upgraded>) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<()>> + Send,
{
    tokio::spawn(async move {
        let (Ok(up), Ok(down)) = (server.await, client.await) else {
            return;
        };
        if let Err(e) = relay(TokioIo::new(down), TokioIo::new(up)).await {
            tracing::debug!(error = %e, "upgraded connection ended");
        }
    });
}

/// The forwarding routes (no state).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/proxy/{port}", any(forward_root))
        .route("/proxy/{port}/", any(forward_root))
        .route("/proxy/{port}/{*path}", any(forward_path))
}

/// Marks the forward's own errors (not the answers of the server on the port), so that the
/// proxy can answer them in its own envelope (JSON, or a page for a browser).
pub const HOP_ERROR_HEADER: &str = "x-cove-hop-error";

/// The daemon's error envelope (CONTRACT §2), marked with [`HOP_ERROR_HEADER`].
fn error(status: StatusCode, message: String) -> Response {
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let body = serde_json::json!({
        "statusCode": status.as_u16(),
        "message": message,
        "error": status.canonical_reason().unwrap_or("Error"),
        "code": match status {
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::GATEWAY_TIMEOUT => "GATEWAY_TIMEOUT",
            _ => "BAD_GATEWAY",
        },
        "timestamp": timestamp,
        "source": "DAYTONA_DAEMON",
    });
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(HOP_ERROR_HEADER, HeaderValue::from_static("daemon"));
    resp
}

async fn forward_root(Path(port): Path<String>, req: Request) -> Response {
    forward(&port, "", req).await
}

async fn forward_path(Path((port, path)): Path<(String, String)>, req: Request) -> Response {
    forward(&port, &path, req).await
}

fn parse_port(raw: &str) -> Option<u16> {
    raw.parse::<u16>().ok().filter(|p| *p != 0)
}

/// Opens a connection to the port and its HTTP/1.1 handshake.
async fn connect(port: u16) -> std::io::Result<SendRequest<Body>> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// Keep-alive connections to the sandbox's ports (one set per port; this daemon serves one
/// sandbox, so they are never shared with another).
fn pool() -> &'static Arc<ConnPool<u16>> {
    static POOL: std::sync::OnceLock<Arc<ConnPool<u16>>> = std::sync::OnceLock::new();
    POOL.get_or_init(Default::default)
}

fn send_error(port: u16, e: SendError) -> Response {
    match e {
        SendError::Connect(e) if e.kind() == std::io::ErrorKind::TimedOut => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("Port {port} in the sandbox did not accept the connection within 10 s"),
        ),
        SendError::Connect(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("Nothing accepts connections on port {port} in the sandbox ({e})"),
        ),
        SendError::Request(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("The server on port {port} in the sandbox did not answer ({e})"),
        ),
    }
}

/// Sends `req` to `127.0.0.1:{port}/{path}?{query}` and streams the answer back.
async fn forward(port: &str, path: &str, mut req: Request) -> Response {
    let Some(port) = parse_port(port) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Invalid port {port:?}: must be an integer from 1 to 65535"),
        );
    };
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let target = match parts.uri.query() {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    };
    let Ok(uri) = target.parse() else {
        return error(StatusCode::BAD_REQUEST, "Invalid request path".to_owned());
    };
    parts.uri = uri;
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    if let Ok(host) = HeaderValue::from_str(&format!("127.0.0.1:{port}")) {
        parts.headers.insert(header::HOST, host);
    }
    let req = Request::from_parts(parts, body);
    let mut resp = match pool().send(&port, req, || connect(port)).await {
        Ok(r) => r,
        Err(e) => return send_error(port, e),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client) = client_upgrade
    {
        relay_upgrade(
            hyper::upgrade::on(&mut resp),
            client,
            |mut down, mut up| async move {
                tokio::io::copy_bidirectional(&mut down, &mut up)
                    .await
                    .map(|_| ())
            },
        );
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    let (mut parts, body) = resp.into_parts();
    // The version is about this hop: an HTTP/1.0 server (`python3 -m http.server`) must not
    // make the daemon answer HTTP/1.0 and close the caller's keep-alive connection.
    parts.version = Version::HTTP_11;
    // Only the daemon marks its own errors: a server in the sandbox cannot pose as a hop.
    parts.headers.remove(HOP_ERROR_HEADER);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    #[test]
    fn ports_are_checked() {
        assert_eq!(parse_port("8080"), Some(8080));
        for bad in ["0", "65536", "x", "", "-1"] {
            assert_eq!(parse_port(bad), None, "{bad}");
        }
    }

    async fn send(uri: &str) -> (StatusCode, String) {
        let app: Router = router();
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn forwards_to_loopback_and_reports_refusals() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let line = head.lines().next().unwrap_or_default().to_owned();
            let body = format!("saw {line}");
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
        });
        let (status, body) = send(&format!("/proxy/{port}/a/b?x=1")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "saw GET /a/b?x=1 HTTP/1.1");
        // The listener is gone: nothing accepts connections any more.
        let (status, body) = send(&format!("/proxy/{port}/")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert!(body.contains(&format!("port {port}")), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["statusCode"].as_u64(), v["code"].as_str()),
            (Some(502), Some("BAD_GATEWAY"))
        );
        assert_eq!(v["source"], "DAYTONA_DAEMON");
        assert_eq!(send("/proxy/0/").await.0, StatusCode::BAD_REQUEST);
        assert_eq!(send("/proxy/70000/x").await.0, StatusCode::BAD_REQUEST);
    }

    /// A websocket echo server on a loopback port: `(port, its task)`.
    async fn ws_echo_server() -> (u16, tokio::task::JoinHandle<()>) {
        use futures::{SinkExt, StreamExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_close() {
                    break;
                }
                ws.send(msg).await.unwrap();
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn relays_a_websocket_to_the_port() {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let (port, server) = ws_echo_server().await;
        let daemon = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = daemon.local_addr().unwrap();
        let app: Router = router();
        tokio::spawn(async move { axum::serve(daemon, app).await });
        let url = format!("ws://{addr}/proxy/{port}/echo?x=1");
        let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        for msg in ["hello".to_owned(), "x".repeat(70_000)] {
            ws.send(Message::text(msg.clone())).await.unwrap();
            let back = ws.next().await.unwrap().unwrap();
            assert_eq!(back.into_text().unwrap().as_str(), msg);
        }
        ws.close(None).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server saw the close")
            .unwrap();
    }
}
