//! The listener and the request router of the proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::api::{ControlPlane, RunnerTarget};
use crate::auth::{self, Gate};
use crate::cache::TtlCache;
use crate::config::Config;
use crate::error::{HOP_ERROR_HEADER, ProxyError, RequestInfo};
use crate::events::{Relay, RelayLimits};
use crate::forward::{self, Failure};
use crate::host::{self, Preview};
use crate::local::LocalRunner;
use crate::{Body, Client};

/// Everything a request runs against.
pub struct Proxy {
    pub cfg: Config,
    client: Client,
    cp: ControlPlane,
    gate: Gate,
    runners: TtlCache<String, RunnerTarget>,
    toolbox_grants: TtlCache<(String, [u8; 32]), ()>,
    activity: TtlCache<String, ()>,
    /// The runner agent of this host (`--runner-socket`), whose previews skip its HTTP hop.
    local: Option<LocalRunner>,
    /// The Socket.IO relay of the real-time events (`/api/socket.io/`).
    events: Arc<Relay>,
}

impl Proxy {
    pub fn new(cfg: Config) -> Arc<Self> {
        let client = crate::client();
        let cp = ControlPlane::new(client.clone(), &cfg.api_url, &cfg.api_token);
        Arc::new(Self {
            events: Relay::new(cp.clone(), RelayLimits::default()),
            cp,
            client,
            gate: Gate::default(),
            runners: TtlCache::default(),
            toolbox_grants: TtlCache::default(),
            activity: TtlCache::default(),
            local: (cfg.runner_socket.clone()).map(|s| LocalRunner::new(s, cfg.runner_ttl)),
            cfg,
        })
    }
}

impl Proxy {
    /// The Socket.IO relay (`cove up` serves it on the control plane's listener too).
    pub fn events(&self) -> &Arc<Relay> {
        &self.events
    }
}

/// Serves connections from `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(proxy.clone(), stream, peer));
    }
}

async fn connection(proxy: Arc<Proxy>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let svc = hyper::service::service_fn(move |req| {
        let proxy = proxy.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&proxy, req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
        .await
    {
        tracing::debug!(error = %e, %peer, "connection ended");
    }
}

fn request_host(req: &Request<Incoming>) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Serves one request.
pub async fn handle(proxy: &Proxy, req: Request<Incoming>) -> Response<Body> {
    let info = RequestInfo {
        headers: req.headers().clone(),
        path: req.uri().path().to_owned(),
        method: req.method().clone(),
    };
    let host = request_host(&req);
    let result = match host::parse(&host, &proxy.cfg.domain) {
        Err(e) => Err(e),
        Ok(Some(p)) => preview(proxy, p, &host, req).await,
        Ok(None) => own_route(proxy, &host, req).await,
    };
    result.unwrap_or_else(|e| e.into_response(&info))
}

async fn own_route(
    proxy: &Proxy,
    host: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    if req.uri().path() == "/health" {
        return Ok(text(StatusCode::OK, "ok"));
    }
    if Relay::owns(req.uri().path()) {
        return Ok(proxy.events.handle(req).await);
    }
    match crate::toolbox::parse(req.uri().path())? {
        Some((id, rest)) => toolbox(proxy, &id, &rest, host, req).await,
        None => Err(ProxyError::NotFound(format!(
            "No route for {} {} (previews are served on {{port}}-{{sandboxId}}.{})",
            req.method(),
            req.uri().path(),
            proxy.cfg.domain
        ))),
    }
}

fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    let mut r = Response::new(crate::full(Bytes::from_static(s.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn preview(
    proxy: &Proxy,
    p: Preview,
    host: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let (query_token, rest_query) = auth::split_query(req.uri().query());
    let admitted = proxy
        .gate
        .admit(
            &proxy.cp,
            &proxy.cfg,
            &p,
            req.headers(),
            query_token.as_deref(),
        )
        .await?;
    let id = admitted.sandbox_id.clone();
    // The daemon's port-forward path, as the agent's toolbox route passes it on.
    let mut daemon_path = format!("/proxy/{}{}", p.port, req.uri().path());
    if let Some(q) = rest_query {
        daemon_path.push('?');
        daemon_path.push_str(&q);
    }
    let skip_activity = skips_activity(req.headers());
    let mut resp = hop_error(send_preview(proxy, &id, &daemon_path, host, req).await?).await?;
    if !skip_activity {
        record_activity(proxy, &id);
    }
    if let Some(token) = admitted.cookie_token {
        let cookie = format!(
            "{}{id}={token}; Path=/; HttpOnly; SameSite=Lax",
            auth::COOKIE_PREFIX
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// Largest hop error body read to re-answer it.
const HOP_ERROR_LIMIT: usize = 64 << 10;

/// A preview answer marked as the error of a hop (the agent, the daemon's port forward) becomes
/// the proxy's own error (JSON envelope or page); any other answer is passed on unmarked.
async fn hop_error(mut resp: Response<Body>) -> Result<Response<Body>, ProxyError> {
    if resp.headers_mut().remove(HOP_ERROR_HEADER).is_none() || resp.status().as_u16() < 400 {
        return Ok(resp);
    }
    let status = resp.status();
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    while buf.len() <= HOP_ERROR_LIMIT {
        match http_body_util::BodyExt::frame(&mut body).await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                }
            }
            _ => break,
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&buf).unwrap_or_default();
    let message = v["message"].as_str().filter(|m| !m.is_empty()).map_or_else(
        || status.canonical_reason().unwrap_or("Error").to_owned(),
        str::to_owned,
    );
    let code = v["code"].as_str().map(str::to_owned);
    Err(ProxyError::Hop {
        status,
        message,
        code,
    })
}

fn skips_activity(h: &HeaderMap) -> bool {
    h.get("x-daytona-skip-last-activity-update")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Records activity of `id`, at most once per interval (in the background).
fn record_activity(proxy: &Proxy, id: &str) {
    if proxy.activity.get(&id.to_owned()).is_some() {
        return;
    }
    proxy
        .activity
        .put(id.to_owned(), (), proxy.cfg.activity_interval);
    let cp = proxy.cp.clone();
    let id = id.to_owned();
    tokio::spawn(async move { cp.activity(&id).await });
}

/// The runner of `id` (cached).
async fn runner(proxy: &Proxy, id: &str) -> Result<RunnerTarget, ProxyError> {
    if let Some(r) = proxy.runners.get(&id.to_owned()) {
        return Ok(r);
    }
    let r = proxy.cp.runner(id).await?;
    proxy
        .runners
        .put(id.to_owned(), r.clone(), proxy.cfg.runner_ttl);
    Ok(r)
}

/// A preview request to the daemon of `id`: over a lent connection when its runner is this
/// host's agent, else through the agent's toolbox route.
async fn send_preview(
    proxy: &Proxy,
    id: &str,
    daemon_path: &str,
    host: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let r = runner(proxy, id).await?;
    if let Some(local) = &proxy.local
        && local.serves(&r).await
    {
        return local.forward(&r, id, daemon_path, host, req).await;
    }
    let target = format!("/sandboxes/{}/toolbox{daemon_path}", crate::api::enc(id));
    send_to(proxy, id, &r, &target, host, req).await
}

async fn send(
    proxy: &Proxy,
    id: &str,
    target: &str,
    host: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let r = runner(proxy, id).await?;
    send_to(proxy, id, &r, target, host, req).await
}

async fn send_to(
    proxy: &Proxy,
    id: &str,
    r: &RunnerTarget,
    target: &str,
    host: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    match forward::forward(&proxy.client, r, target, host, req).await {
        Ok(resp) => Ok(resp),
        Err(Failure::Unreachable(e)) => {
            proxy.runners.remove(&id.to_owned());
            Err(e)
        }
        Err(Failure::Other(e)) => Err(e),
    }
}

async fn toolbox(
    proxy: &Proxy,
    id: &str,
    rest: &str,
    host: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    if !req.headers().contains_key(header::AUTHORIZATION)
        && let Some(signed) = crate::toolbox::signed(req.method(), rest, req.uri().query())?
    {
        return signed_file(proxy, id, rest, host, signed, req).await;
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .cloned()
        .ok_or_else(|| ProxyError::Unauthorized("Unauthorized".into()))?;
    let org = req.headers().get("x-daytona-organization-id").cloned();
    let key = (id.to_owned(), grant_digest(&auth, org.as_ref()));
    let mut user = HeaderMap::new();
    user.insert(header::AUTHORIZATION, auth);
    if let Some(o) = org {
        user.insert("x-daytona-organization-id", o);
    }
    let cached = proxy.toolbox_grants.get(&key).is_some();
    if !cached {
        proxy.cp.toolbox_access(id, user.clone()).await?;
        proxy
            .toolbox_grants
            .put(key.clone(), (), proxy.cfg.auth_ttl);
        // The runner is looked up again with the grant: a sandbox recovered or restored onto
        // another runner is found there within the grant's TTL, not the runner cache's.
        proxy.runners.remove(&id.to_owned());
    }
    let mut target = format!("/sandboxes/{}/toolbox{rest}", crate::api::enc(id));
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    let mut resp = send(proxy, id, &target, host, req).await?;
    // A remembered grant may be older than a stop or a delete: when the runner no longer
    // serves the sandbox, the control plane's own answer is given (the `toolbox` component's
    // 400 for a stopped sandbox, its 404 for a deleted one), as without the cache. (A 404 or
    // 409 of the daemon itself costs one more check and is then passed on.)
    let refused = matches!(resp.status(), StatusCode::CONFLICT | StatusCode::NOT_FOUND);
    if cached && refused {
        proxy.toolbox_grants.remove(&key);
        proxy.cp.toolbox_access(id, user).await?;
        proxy.toolbox_grants.put(key, (), proxy.cfg.auth_ttl);
    }
    // The daemon runs inside the sandbox: it sets no cookies on the proxy's origin. The
    // agent's own errors are already Daytona envelopes: passed on, unmarked.
    resp.headers_mut().remove(header::SET_COOKIE);
    resp.headers_mut().remove(HOP_ERROR_HEADER);
    Ok(resp)
}

/// A signed file URL (no credentials): verified by the control plane on every request (no
/// cache, so a rotated key refuses at once), then sent to the daemon with `path` alone.
async fn signed_file(
    proxy: &Proxy,
    id: &str,
    rest: &str,
    host: &str,
    signed: crate::toolbox::Signed,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    match proxy
        .cp
        .verify_file_url(id, req.method(), &signed.pairs)
        .await?
    {
        crate::api::Verdict::Yes => {}
        crate::api::Verdict::No => {
            return Err(ProxyError::Unauthorized(
                "Invalid or expired signed URL".into(),
            ));
        }
    }
    let target = format!(
        "/sandboxes/{}/toolbox{rest}?{}",
        crate::api::enc(id),
        signed.daemon_query
    );
    let mut resp = send(proxy, id, &target, host, req).await?;
    resp.headers_mut().remove(header::SET_COOKIE);
    resp.headers_mut().remove(HOP_ERROR_HEADER);
    Ok(resp)
}

fn grant_digest(auth: &HeaderValue, org: Option<&HeaderValue>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(auth.as_bytes());
    h.update([0]);
    h.update(org.map(HeaderValue::as_bytes).unwrap_or_default());
    h.finalize().into()
}
