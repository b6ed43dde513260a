//! Previews of sandboxes on the runner agent of this host (`--runner-socket`), sent straight to
//! the sandbox's daemon over connections the agent lends ([`cove_lend`]): one HTTP hop
//! (proxy → daemon → port) instead of two (proxy → agent → daemon → port).
//!
//! * Whether a runner is the local one is asked of the agent once ([`cove_lend::hello`] with the
//!   runner's token) and remembered for the runner TTL (a refusal too; a socket that does not
//!   answer for [`UNREACHABLE_TTL`]); every other runner is reached over HTTP as before.
//! * Lent connections are pooled per (runner, sandbox) ([`cove_toolbox::conn_pool`]): the agent's
//!   checks (runner token, sandbox started, daemon socket and peer) run once per connection;
//!   a connection dies with its daemon (a stopped or deleted sandbox), and the next borrow is
//!   then refused with the agent's own answer (`409 SANDBOX_NOT_STARTED`, `404`, ...).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cove_lend::LendError;
use cove_toolbox::conn_pool::{ConnPool, SendError};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::Body;
use crate::api::RunnerTarget;
use crate::cache::TtlCache;
use crate::error::ProxyError;
use crate::forward;

/// How long a lending socket that did not answer is left alone.
pub const UNREACHABLE_TTL: Duration = Duration::from_secs(2);

type DaemonBody = axum::body::Body;

/// The runner agent of this host, as far as previews go.
pub struct LocalRunner {
    socket: PathBuf,
    /// (runner URL, token) → whether the agent at `socket` is that runner.
    mine: TtlCache<(String, String), bool>,
    /// Lent daemon connections, per (runner URL, sandbox id).
    pool: Arc<ConnPool<(String, String)>>,
    runner_ttl: Duration,
}

impl LocalRunner {
    pub fn new(socket: PathBuf, runner_ttl: Duration) -> Self {
        Self {
            socket,
            mine: TtlCache::default(),
            pool: Arc::default(),
            runner_ttl,
        }
    }

    /// Whether `runner` is the agent behind the lending socket.
    pub async fn serves(&self, runner: &RunnerTarget) -> bool {
        let key = (runner.url.clone(), runner.token.clone());
        if let Some(v) = self.mine.get(&key) {
            return v;
        }
        let (v, ttl) = match cove_lend::hello(&self.socket, &runner.token).await {
            Ok(()) => (true, self.runner_ttl),
            Err(LendError::Refused(_)) => (false, self.runner_ttl),
            Err(e) => {
                tracing::debug!(error = %e, socket = %self.socket.display(), "lending socket unavailable");
                (false, UNREACHABLE_TTL)
            }
        };
        tracing::debug!(runner = %runner.url, local = v, "runner locality");
        self.mine.put(key, v, ttl);
        v
    }

    /// Sends a preview request to `/proxy/{port}{path}` of sandbox `id`'s daemon.
    pub async fn forward(
        &self,
        runner: &RunnerTarget,
        id: &str,
        daemon_path: &str,
        host: &str,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ProxyError> {
        let out = forward::outgoing(daemon_path, host, req)?;
        let mut parts = out.parts;
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_static("toolbox"));
        let req = Request::from_parts(parts, DaemonBody::new(out.body));
        let key = (runner.url.clone(), id.to_owned());
        let (socket, token) = (self.socket.as_path(), runner.token.as_str());
        match self
            .pool
            .send(&key, req, || lend_and_handshake(socket, token, id))
            .await
        {
            Ok(resp) => Ok(forward::answer(
                resp,
                out.client_version,
                out.client_upgrade,
            )),
            Err(SendError::Connect(e)) => Err(self.refused(runner, e)),
            Err(SendError::Request(e)) => {
                tracing::warn!(sandbox = id, error = %e, "daemon connection failed");
                Err(ProxyError::Hop {
                    status: StatusCode::BAD_GATEWAY,
                    message: format!("the toolbox of sandbox {id} is not reachable"),
                    code: Some("TOOLBOX_UNAVAILABLE".into()),
                })
            }
        }
    }

    /// The agent's refusal as its API would have answered it; a socket that did not answer
    /// makes the runner non-local until it is asked again.
    fn refused(&self, runner: &RunnerTarget, e: std::io::Error) -> ProxyError {
        match e.get_ref().and_then(|x| x.downcast_ref::<LendError>()) {
            Some(LendError::Refused(r)) => ProxyError::Hop {
                status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY),
                message: r.message.clone(),
                code: Some(r.code.clone()),
            },
            _ => {
                tracing::warn!(error = %e, runner = %runner.url, "runner agent's lending socket failed");
                self.mine
                    .remove(&(runner.url.clone(), runner.token.clone()));
                ProxyError::BadGateway("The sandbox's runner did not answer".into())
            }
        }
    }
}

async fn lend_and_handshake(
    socket: &Path,
    token: &str,
    id: &str,
) -> std::io::Result<SendRequest<DaemonBody>> {
    let stream = cove_lend::borrow(socket, token, id)
        .await
        .map_err(std::io::Error::other)?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, DaemonBody>(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};

    /// A "daemon" on a unix socket: answers `{method} {uri} host={host} xfh={x-forwarded-host}
    /// auth={authorization?}` on keep-alive connections.
    fn daemon(path: &Path) {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned()
                    };
                    let text = format!(
                        "{} {} host={} xfh={} auth={}",
                        req.method(),
                        req.uri(),
                        h("host"),
                        h("x-forwarded-host"),
                        h("authorization")
                    );
                    Ok::<_, std::convert::Infallible>(Response::new(crate::full(Bytes::from(text))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc),
                );
            }
        });
    }

    /// A lending socket for the runner of token `rt`: lends connections to `daemon_path`
    /// (counted), refuses `sb-stopped` as the agent does.
    fn lender(path: &Path, daemon_path: PathBuf, lent: Arc<AtomicUsize>) {
        let listener = cove_lend::bind(path).unwrap();
        tokio::spawn(cove_lend::serve(listener, move |ask: cove_lend::Ask| {
            let (daemon_path, lent) = (daemon_path.clone(), lent.clone());
            async move {
                if ask.token != "rt" {
                    return Err(cove_lend::Refusal::new(401, "UNAUTHORIZED", "Unauthorized"));
                }
                match ask.sandbox_id.as_str() {
                    "" => Ok(None),
                    "sb-stopped" => Err(cove_lend::Refusal::new(
                        409,
                        "SANDBOX_NOT_STARTED",
                        "Sandbox sb-stopped is not running",
                    )),
                    _ => {
                        lent.fetch_add(1, Ordering::SeqCst);
                        let s = std::os::unix::net::UnixStream::connect(&daemon_path).unwrap();
                        Ok(Some(OwnedFd::from(s)))
                    }
                }
            }
        }));
    }

    /// A front server that sends every request through `local` for sandbox `id` and port 8080;
    /// errors answer their status with the code as the body.
    async fn front(local: Arc<LocalRunner>, runner: RunnerTarget, id: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let (local, runner) = (local.clone(), runner.clone());
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (local, runner) = (local.clone(), runner.clone());
                    async move {
                        let path = format!(
                            "/proxy/8080{}",
                            req.uri().path_and_query().map_or("/", |p| p.as_str())
                        );
                        let host = "8080-x.preview.localhost";
                        let resp = match local.forward(&runner, id, &path, host, req).await {
                            Ok(r) => r,
                            Err(e) => {
                                let mut r = Response::new(crate::full(Bytes::from(e.code())));
                                *r.status_mut() = e.status();
                                r
                            }
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .with_upgrades(),
                );
            }
        });
        addr.to_string()
    }

    async fn get(addr: &str, path: &str) -> (StatusCode, String) {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(header::HOST, "8080-x.preview.localhost")
            .header(header::AUTHORIZATION, "Bearer dtn_user_key")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn runner(token: &str) -> RunnerTarget {
        RunnerTarget {
            // Nothing listens there: only the lent connections can answer.
            url: "http://127.0.0.1:9".into(),
            token: token.into(),
        }
    }

    /// A daemon and a lender in a fresh directory, and a [`LocalRunner`] on the lender: the
    /// directory (kept alive), the lending socket, the count of lent connections, the runner.
    fn fixture() -> (
        tempfile::TempDir,
        PathBuf,
        Arc<AtomicUsize>,
        Arc<LocalRunner>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (daemon_path, lend_path) = (
            dir.path().join("toolbox.sock"),
            dir.path().join("lend.sock"),
        );
        daemon(&daemon_path);
        let lent = Arc::new(AtomicUsize::new(0));
        lender(&lend_path, daemon_path, lent.clone());
        let local = Arc::new(LocalRunner::new(lend_path.clone(), Duration::from_secs(60)));
        (dir, lend_path, lent, local)
    }

    #[tokio::test]
    async fn previews_go_straight_to_the_daemon_on_pooled_lent_connections() {
        let (_dir, _lend_path, lent, local) = fixture();
        assert!(local.serves(&runner("rt")).await, "the agent of token rt");
        assert!(!local.serves(&runner("other")).await, "another runner");

        let addr = front(local.clone(), runner("rt"), "sb-1").await;
        for i in 0..3 {
            let (status, body) = get(&addr, &format!("/page?i={i}")).await;
            assert_eq!(status, StatusCode::OK);
            // The daemon's port-forward path, its own Host, the client's host forwarded, and
            // no user credential.
            assert_eq!(
                body,
                format!(
                    "GET /proxy/8080/page?i={i} host=toolbox xfh=8080-x.preview.localhost auth=-"
                )
            );
        }
        assert_eq!(
            lent.load(Ordering::SeqCst),
            1,
            "one lent connection, reused"
        );
    }

    #[tokio::test]
    async fn refusals_and_a_dead_socket_answer_as_the_agent_would() {
        let (_dir, lend_path, lent, local) = fixture();
        assert!(local.serves(&runner("rt")).await);
        let stopped = front(local.clone(), runner("rt"), "sb-stopped").await;
        let (status, code) = get(&stopped, "/").await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::CONFLICT, "SANDBOX_NOT_STARTED")
        );
        assert_eq!(lent.load(Ordering::SeqCst), 0);

        // The agent's socket goes away: 502, and the runner is no longer taken as local.
        std::fs::remove_file(&lend_path).unwrap();
        let fresh = front(local.clone(), runner("rt"), "sb-2").await;
        let (status, _) = get(&fresh, "/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(!local.serves(&runner("rt")).await);
    }
}
