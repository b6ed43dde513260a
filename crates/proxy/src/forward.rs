//! Sends a request to a runner agent and streams its answer back; an upgrade (websocket)
//! answered `101` becomes a byte relay between the client and the runner.

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::api::RunnerTarget;
use crate::auth::{COOKIE_PREFIX, TOKEN_HEADER};
use crate::error::ProxyError;
use crate::{Body, Client};

/// Headers about one hop only (`connection`/`upgrade` stay on an upgrade).
const HOP_BY_HOP: [&str; 7] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Credentials meant for the proxy or the control plane: never sent on.
const PRIVATE: [&str; 4] = [
    "authorization",
    "x-daytona-authorization",
    TOKEN_HEADER,
    "x-daytona-organization-id",
];

fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
}

/// The cookies but the proxy's own.
fn strip_auth_cookies(h: &mut HeaderMap) {
    let kept: Vec<String> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with(COOKIE_PREFIX))
        .map(str::to_owned)
        .collect();
    h.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        h.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
fn outgoing_headers(h: &mut HeaderMap, runner: &RunnerTarget, host: &str, upgrade: bool) {
    hop_headers(h, host, upgrade);
    runner_auth(h, runner);
}

/// The runner's token, as the runner agent's API takes it.
fn runner_auth(h: &mut HeaderMap, runner: &RunnerTarget) {
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", runner.token)) {
        h.insert(HeaderName::from_static("x-daytona-authorization"), v);
    }
}

/// The request's headers for the next hop: no hop-by-hop headers, no credentials meant for the
/// proxy, no Host (the hop sets its own), the client's Host as `X-Forwarded-Host`.
pub(crate) fn hop_headers(h: &mut HeaderMap, host: &str, upgrade: bool) {
    for name in HOP_BY_HOP.iter().chain(PRIVATE.iter()) {
        h.remove(*name);
    }
    if !upgrade {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
    strip_auth_cookies(h);
    h.remove(header::HOST);
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(HeaderName::from_static("x-forwarded-host"), v);
    }
}

/// Why a forward failed.
pub enum Failure {
    /// The runner did not answer: the caller drops its cached address.
    Unreachable(ProxyError),
    Other(ProxyError),
}

/// A request taken apart for the next hop: its parts (URI `path_and_query`, HTTP/1.1, headers
/// of [`hop_headers`]), its body, the client's HTTP version and, for an upgrade, the client's
/// side of it.
pub(crate) struct Outgoing {
    pub parts: http::request::Parts,
    pub body: Incoming,
    pub client_version: Version,
    pub client_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

pub(crate) fn outgoing(
    uri: &str,
    host: &str,
    mut req: Request<Incoming>,
) -> Result<Outgoing, ProxyError> {
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let client_version = parts.version;
    parts.uri = uri
        .parse()
        .map_err(|_| ProxyError::BadRequest("Invalid request path".into()))?;
    parts.version = Version::HTTP_11;
    hop_headers(&mut parts.headers, host, upgrade);
    Ok(Outgoing {
        parts,
        body,
        client_version,
        client_upgrade,
    })
}

/// The hop's answer for the client: a `101` becomes a byte relay between the two upgraded
/// connections; any other answer streams back without hop-by-hop headers, in the client's
/// HTTP version (the version is about one hop).
pub(crate) fn answer(
    mut resp: Response<Incoming>,
    client_version: Version,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<Body> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_side) = client_upgrade
    {
        let hop_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(up), Ok(down)) = (hop_side.await, client_side.await) else {
                return;
            };
            let (mut up, mut down) = (TokioIo::new(up), TokioIo::new(down));
            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
        });
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, crate::empty());
    }
    let (mut parts, body) = resp.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    parts.headers.remove(header::CONNECTION);
    parts.version = client_version;
    Response::from_parts(parts, body.map_err(Into::into).boxed())
}

/// Forwards `req` to `{runner.url}{path_and_query}`.
pub async fn forward(
    client: &Client,
    runner: &RunnerTarget,
    path_and_query: &str,
    host: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let out =
        outgoing(&format!("{}{path_and_query}", runner.url), host, req).map_err(Failure::Other)?;
    let mut parts = out.parts;
    runner_auth(&mut parts.headers, runner);
    let body: Body = out.body.map_err(Into::into).boxed();
    let resp = client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, runner = %runner.url, "runner unreachable");
            Failure::Unreachable(ProxyError::BadGateway(
                "The sandbox's runner did not answer".into(),
            ))
        })?;
    Ok(answer(resp, out.client_version, out.client_upgrade))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    /// A "runner" that answers every websocket with an echo; its address.
    async fn echo_runner() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    #[allow(clippy::result_large_err)] // tungstenite's callback type
                    let check = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                                 resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                        assert_eq!(req.uri().path(), "/sandboxes/x/toolbox/proxy/8765/ws");
                        assert_eq!(req.headers()["x-daytona-authorization"], "Bearer rt");
                        assert!(!req.headers().contains_key(TOKEN_HEADER));
                        Ok(resp)
                    };
                    let mut ws = tokio_tungstenite::accept_hdr_async(s, check).await.unwrap();
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_close() || ws.send(m).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn relays_a_websocket_to_the_runner() {
        let runner = RunnerTarget {
            url: format!("http://{}", echo_runner().await),
            token: "rt".into(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = crate::client();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |req| {
                let (client, runner) = (client.clone(), runner.clone());
                async move {
                    let path = "/sandboxes/x/toolbox/proxy/8765/ws";
                    let host = "8765-x.preview.localhost";
                    match forward(&client, &runner, path, host, req).await {
                        Ok(r) => Ok::<_, std::convert::Infallible>(r),
                        Err(_) => panic!("forward failed"),
                    }
                }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .with_upgrades()
                .await
                .unwrap();
        });
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert(TOKEN_HEADER, "tok".parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        for msg in ["hello".to_owned(), "y".repeat(100_000)] {
            ws.send(Message::text(msg.clone())).await.unwrap();
            let back = ws.next().await.unwrap().unwrap();
            assert_eq!(back.into_text().unwrap().as_str(), msg);
        }
        ws.close(None).await.unwrap();
    }

    #[test]
    fn credentials_never_leave_the_proxy() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer dtn_user".parse().unwrap());
        h.insert(TOKEN_HEADER, "tok".parse().unwrap());
        h.insert(
            header::COOKIE,
            "a=1; daytona-sandbox-auth-x=tok; b=2".parse().unwrap(),
        );
        h.insert(header::CONNECTION, "upgrade".parse().unwrap());
        h.insert(header::HOST, "8080-x.preview.localhost".parse().unwrap());
        let runner = RunnerTarget {
            url: "http://r".into(),
            token: "rt".into(),
        };
        outgoing_headers(&mut h, &runner, "8080-x.preview.localhost", false);
        assert!(!h.contains_key(header::AUTHORIZATION));
        assert!(!h.contains_key(TOKEN_HEADER));
        assert!(!h.contains_key(header::CONNECTION));
        assert_eq!(h["cookie"], "a=1; b=2");
        assert_eq!(h["x-daytona-authorization"], "Bearer rt");
        assert_eq!(h["x-forwarded-host"], "8080-x.preview.localhost");
    }
}
