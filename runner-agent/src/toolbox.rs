//! Talking to a sandbox's toolbox daemon over its unix socket, and forwarding toolbox requests
//! (plain HTTP and websocket upgrades) from the agent's API to it.
//!
//! The socket lives in the per-sandbox host directory, which the sandbox user can write to. So the
//! agent never trusts the path alone: it refuses anything that is not a socket (a symlink planted
//! by the sandbox could point at a host socket such as Docker's), and after connecting it checks
//! with `SO_PEERCRED` that the listening process lives in the sandbox's own container cgroup.
//! A peer whose process the agent cannot see (the agent in its own PID namespace, as in a
//! Kubernetes DaemonSet without `hostPID`) cannot be verified and is refused, unless the
//! deployment accepts it ([`PeerPolicy::AllowUnverified`], `--allow-unverified-toolbox-peer`):
//! then any non-root peer is trusted.
//!
//! Forwarded calls reuse keep-alive connections ([`cove_toolbox::conn_pool`]), one set per
//! sandbox daemon (sandbox id, container id and socket path): the peer of a connection is checked
//! once, when it opens (the process at the other end of a unix socket connection cannot change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use cove_toolbox::conn_pool::{ConnPool, SendError};

use crate::error::{AgentError, Result};

/// Name of the daemon's socket inside the per-sandbox directory.
pub const SOCKET_NAME: &str = "toolbox.sock";

/// Where to reach one sandbox's daemon.
#[derive(Debug, Clone)]
pub struct Target {
    pub sandbox_id: String,
    pub socket: PathBuf,
    pub container_id: String,
    /// Env applied to `process/execute` and `process/code-run` (warm-pool sandboxes, see `pool.rs`).
    pub env_overlay: BTreeMap<String, String>,
}

/// What to do with a toolbox socket whose serving process is not visible to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerPolicy {
    /// Refuse it (default).
    Verified,
    /// Trust it when it is not root (`--allow-unverified-toolbox-peer`).
    AllowUnverified,
}

static PEER_POLICY: std::sync::OnceLock<PeerPolicy> = std::sync::OnceLock::new();

/// Sets the agent's [`PeerPolicy`] once, at start (later calls are ignored).
pub fn set_peer_policy(policy: PeerPolicy) {
    let _ = PEER_POLICY.set(policy);
}

fn peer_policy() -> PeerPolicy {
    PEER_POLICY.get().copied().unwrap_or(PeerPolicy::Verified)
}

/// What the agent learnt about the process serving a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer<'a> {
    /// Its pid is visible: the content of its `/proc/<pid>/cgroup`.
    Visible { cgroup: &'a str },
    /// In a PID namespace the agent does not see: only its uid is known.
    Unverifiable { uid: u32 },
}

fn denied(msg: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, msg)
}

/// Whether `peer` may serve the toolbox of `container_id`.
fn judge(peer: Peer<'_>, container_id: &str, policy: PeerPolicy) -> std::io::Result<()> {
    match (peer, policy) {
        (Peer::Visible { cgroup }, _) if cgroup.contains(container_id) => Ok(()),
        (Peer::Visible { .. }, _) => Err(denied(
            "toolbox socket is not served from the sandbox's container",
        )),
        (Peer::Unverifiable { uid }, PeerPolicy::AllowUnverified) if uid != 0 => Ok(()),
        (Peer::Unverifiable { .. }, PeerPolicy::AllowUnverified) => Err(denied(
            "toolbox socket served by root outside the agent's view",
        )),
        (Peer::Unverifiable { .. }, PeerPolicy::Verified) => Err(denied(
            "the process serving the toolbox socket is not visible to the agent, so it cannot be verified (run the agent in the host's PID namespace, or pass --allow-unverified-toolbox-peer)",
        )),
    }
}

/// Connects to the daemon, refusing symlinks and sockets served from outside the container.
pub async fn connect(socket: &Path, container_id: &str) -> std::io::Result<UnixStream> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::symlink_metadata(socket)?;
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the toolbox socket is not a socket",
        ));
    }
    let stream = UnixStream::connect(socket).await?;
    verify_peer(&stream, container_id)?;
    Ok(stream)
}

/// [`connect`], giving a daemon that is (re)starting a short grace: a missing or refusing socket
/// is retried for up to 3 s before the call fails.
pub async fn connect_patiently(socket: &Path, container_id: &str) -> std::io::Result<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut delay = Duration::from_millis(5);
    loop {
        match connect(socket, container_id).await {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) && Instant::now() < deadline =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

static IN_PROCESS_PEERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The simulated runner (`--runtime fake`) only: accept daemons served by this very process.
pub fn accept_in_process_peers() {
    IN_PROCESS_PEERS.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The listening process must belong to the container's cgroup.
fn verify_peer(stream: &UnixStream, container_id: &str) -> std::io::Result<()> {
    if container_id.is_empty() {
        // Unit tests (fake runtime) have no containers.
        return Ok(());
    }
    let cred = stream.peer_cred()?;
    if IN_PROCESS_PEERS.load(std::sync::atomic::Ordering::SeqCst)
        && cred.pid() == Some(std::process::id() as i32)
    {
        return Ok(());
    }
    match cred.pid().filter(|p| *p > 0) {
        Some(pid) => {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
            judge(
                Peer::Visible { cgroup: &cgroup },
                container_id,
                peer_policy(),
            )
        }
        None => judge(
            Peer::Unverifiable { uid: cred.uid() },
            container_id,
            peer_policy(),
        ),
    }
}

async fn handshake(stream: UnixStream) -> std::io::Result<SendRequest<Body>> {
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// `GET /version` once; the daemon's version on success.
pub async fn probe(socket: &Path, container_id: &str) -> std::io::Result<String> {
    let stream = connect(socket, container_id).await?;
    let mut sender = handshake(stream).await?;
    let req = Request::get("/version")
        .header(header::HOST, "toolbox")
        .body(Body::empty())
        .map_err(std::io::Error::other)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    if !resp.status().is_success() {
        return Err(std::io::Error::other(format!(
            "toolbox answered {}",
            resp.status()
        )));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Ok(v["version"].as_str().unwrap_or_default().to_owned())
}

/// What the daemon's `GET /activity` answers (the fields the agent reads).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonActivity {
    pub busy: bool,
    #[serde(default)]
    pub last_busy_at: Option<String>,
}

/// `GET /activity` once: whether the sandbox's daemon is doing work.
pub async fn activity(socket: &Path, container_id: &str) -> std::io::Result<DaemonActivity> {
    get_json(socket, container_id, "/activity").await
}

/// `GET /system/metrics` once: the sandbox's CPU, memory and disk use, from its cgroup.
pub async fn system_metrics(
    socket: &Path,
    container_id: &str,
) -> std::io::Result<cove_api_types::toolbox::system::SystemMetrics> {
    get_json(socket, container_id, "/system/metrics").await
}

/// One `GET path` on a fresh (verified) connection to the daemon, its JSON answer decoded.
async fn get_json<T: serde::de::DeserializeOwned>(
    socket: &Path,
    container_id: &str,
    path: &str,
) -> std::io::Result<T> {
    let stream = connect(socket, container_id).await?;
    let mut sender = handshake(stream).await?;
    let req = Request::get(path)
        .header(header::HOST, "toolbox")
        .body(Body::empty())
        .map_err(std::io::Error::other)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    if !resp.status().is_success() {
        return Err(std::io::Error::other(format!(
            "toolbox answered {}",
            resp.status()
        )));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

/// Polls [`probe`] until the daemon answers or `timeout` passes.
pub async fn wait_ready(
    socket: &Path,
    container_id: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(2);
    loop {
        match probe(socket, container_id).await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(50));
            }
        }
    }
}

/// Which daemon a pooled connection was opened (and verified) to: the sandbox, its container and
/// its socket, so that a connection never serves another sandbox, nor a recreated container.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DaemonKey {
    sandbox_id: String,
    container_id: String,
    socket: PathBuf,
}

impl DaemonKey {
    fn of(target: &Target) -> Self {
        Self {
            sandbox_id: target.sandbox_id.clone(),
            container_id: target.container_id.clone(),
            socket: target.socket.clone(),
        }
    }
}

/// Verified keep-alive connections to the sandboxes' daemons (the peer is checked once, when
/// the connection opens: the process at the other end of a unix socket connection never changes).
fn daemons() -> &'static Arc<ConnPool<DaemonKey>> {
    static POOL: std::sync::OnceLock<Arc<ConnPool<DaemonKey>>> = std::sync::OnceLock::new();
    POOL.get_or_init(Default::default)
}

async fn connect_and_handshake(target: &Target) -> std::io::Result<SendRequest<Body>> {
    let stream = connect_patiently(&target.socket, &target.container_id).await?;
    handshake(stream).await
}

// Headers that are about one hop and never forwarded as such: the daemon's list.
use cove_toolbox::ports::HOP_BY_HOP;

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Upper bound of a JSON body the agent rewrites (env overlay).
const MAX_REWRITE: usize = 8 << 20;

/// Forwards `req` (whose URI path is already the toolbox path, e.g. `/files/info`) to the daemon.
pub async fn forward(
    target: &Target,
    path: &str,
    mut req: Request<Body>,
) -> Result<Response<Body>> {
    let unavailable = |source: std::io::Error| AgentError::ToolboxUnavailable {
        id: target.sandbox_id.clone(),
        source,
    };
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    let uri = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    parts.uri = uri
        .parse()
        .map_err(|_| AgentError::BadRequest("invalid toolbox path".into()))?;
    let headers = &mut parts.headers;
    headers.remove(header::AUTHORIZATION);
    headers.remove("x-daytona-authorization");
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    headers.insert(header::HOST, HeaderValue::from_static("toolbox"));

    let body = if !target.env_overlay.is_empty()
        && parts.method == axum::http::Method::POST
        && (path == "/process/execute" || path == "/process/code-run")
    {
        let bytes = axum::body::to_bytes(body, MAX_REWRITE)
            .await
            .map_err(|_| AgentError::BadRequest("request body too large".into()))?;
        let rewritten = overlay_env(&bytes, &target.env_overlay);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
        Body::from(rewritten)
    } else {
        body
    };

    let mut resp = daemons()
        .send(
            &DaemonKey::of(target),
            Request::from_parts(parts, body),
            || connect_and_handshake(target),
        )
        .await
        .map_err(|e| match e {
            SendError::Connect(e) => unavailable(e),
            SendError::Request(e) => unavailable(std::io::Error::other(e)),
        })?;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut resp);
        if let Some(client) = client_upgrade {
            cove_toolbox::ports::relay_upgrade(upstream, client, |down, up| {
                crate::relay::copy_idle(down, up, crate::relay::idle_timeout())
            });
        }
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = resp.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    parts.headers.remove(header::CONNECTION);
    // About this hop only: keep the caller's connection alive whatever the daemon spoke.
    parts.version = axum::http::Version::HTTP_11;
    let body = crate::relay::IdleBody::new(body, crate::relay::idle_timeout());
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Merges `env` into the `envs` object of a JSON request (keys of the request win).
fn overlay_env(body: &Bytes, env: &BTreeMap<String, String>) -> Bytes {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        // Not a JSON object: let the daemon produce its own error.
        return body.clone();
    };
    let mut merged: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    if let Some(serde_json::Value::Object(given)) = obj.get("envs") {
        for (k, v) in given {
            merged.insert(k.clone(), v.clone());
        }
    }
    obj.insert("envs".into(), serde_json::Value::Object(merged));
    serde_json::to_vec(&obj)
        .map(Bytes::from)
        .unwrap_or_else(|_| body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_keeps_request_keys() {
        let env = BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "2".to_owned()),
        ]);
        let out = overlay_env(
            &Bytes::from_static(br#"{"command":"env","envs":{"B":"x"}}"#),
            &env,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["envs"]["A"], "1");
        assert_eq!(v["envs"]["B"], "x");
        assert_eq!(v["command"], "env");
        let bad = Bytes::from_static(b"not json");
        assert_eq!(overlay_env(&bad, &env), bad);
    }

    #[test]
    fn unverifiable_peers_need_the_flag() {
        use PeerPolicy::{AllowUnverified, Verified};
        let cid = "0123456789abcdef";
        let mine = Peer::Visible {
            cgroup: "12:pids:/docker/0123456789abcdef\n",
        };
        let other = Peer::Visible {
            cgroup: "12:pids:/user.slice\n",
        };
        for policy in [Verified, AllowUnverified] {
            assert!(judge(mine, cid, policy).is_ok());
            assert!(
                judge(other, cid, policy).is_err(),
                "visible peers are always checked"
            );
        }
        let user = Peer::Unverifiable { uid: 1000 };
        let root = Peer::Unverifiable { uid: 0 };
        let err = judge(user, cid, Verified).expect_err("refused by default");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("--allow-unverified-toolbox-peer"));
        assert!(judge(root, cid, Verified).is_err());
        assert!(judge(user, cid, AllowUnverified).is_ok());
        assert!(judge(root, cid, AllowUnverified).is_err(), "never root");
        assert_eq!(peer_policy(), Verified, "the default");
    }

    #[tokio::test]
    async fn refuses_a_symlink_to_another_socket() {
        let dir = tempfile::tempdir().expect("tmp");
        let real = dir.path().join("real.sock");
        let _l = tokio::net::UnixListener::bind(&real).expect("bind");
        let link = dir.path().join(SOCKET_NAME);
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let err = connect(&link, "cid").await.expect_err("must refuse");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        // A real socket served by a process outside the container is refused too.
        let err = connect(&real, "0123456789abcdef")
            .await
            .expect_err("must refuse");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    }
}
