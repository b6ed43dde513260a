//! A keep-alive pool of HTTP/1.1 client connections, one set per key: the daemon keeps one per
//! port in the sandbox ([`crate::ports`]), the runner agent one per sandbox daemon (its key names
//! the sandbox, its container and its socket, so a connection is never used for another sandbox).
//!
//! * A connection goes back to its key's set as soon as its answer's head is in (no task is
//!   spawned per request: waking another worker thread for it cost a futex round trip per call),
//!   but is taken again only once hyper says it is ready for the next request, i.e. its answer has
//!   been read to the end; one still streaming its answer stays in the set, skipped. An upgraded
//!   (`101`) connection never goes back.
//! * A broken (closed) one is dropped. A request sent on a pooled connection that fails is retried once on
//!   a new connection, and only when that is safe: hyper gave the request back unsent, or it is
//!   an idempotent request without a body.
//! * At most [`MAX_IDLE_PER_KEY`] idle connections per key; an idle one is closed after
//!   [`IDLE_TIMEOUT`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

/// Idle connections kept per key.
pub const MAX_IDLE_PER_KEY: usize = 16;
/// An idle connection older than this is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// The pool (share it behind an `Arc`).
pub struct ConnPool<K> {
    idle: Mutex<HashMap<K, Vec<Idle>>>,
}

impl<K> Default for ConnPool<K> {
    fn default() -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
        }
    }
}

/// Why a request failed: opening a connection, or the request on one.
#[derive(Debug)]
pub enum SendError {
    Connect(std::io::Error),
    Request(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "{e}"),
            Self::Request(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// A request that can be sent again: idempotent and without a body.
fn replayable(req: &Request<Body>) -> Option<Request<Body>> {
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE | Method::PUT
    );
    let h = req.headers();
    let bodyless = !h.contains_key(header::TRANSFER_ENCODING)
        && h.get(header::CONTENT_LENGTH).is_none_or(|v| v == "0")
        && !h.contains_key(header::UPGRADE);
    if !(idempotent && bodyless) {
        return None;
    }
    let mut copy = Request::new(Body::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

impl<K: Hash + Eq + Clone + Send + 'static> ConnPool<K> {
    /// A live connection of `key` ready for a request, if any (newest first). Closed or idled-out
    /// ones are dropped on the way; busy ones (an answer still streaming) stay.
    fn take(&self, key: &K) -> Option<SendRequest<Body>> {
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let set = map.get_mut(key)?;
        let mut found = None;
        let mut i = set.len();
        while i > 0 {
            i -= 1;
            let idle = &set[i];
            if idle.since.elapsed() >= IDLE_TIMEOUT || idle.sender.is_closed() {
                set.remove(i);
            } else if idle.sender.is_ready() {
                found = Some(set.remove(i).sender);
                break;
            }
        }
        if set.is_empty() {
            map.remove(key);
        }
        found
    }

    /// Puts `sender` back in `key`'s set (taken again once ready, see [`Self::take`]).
    fn give_back(&self, key: K, sender: SendRequest<Body>) {
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Drop what died or idled out, here and for keys no longer used.
        map.retain(|_, set| {
            set.retain(|i| i.since.elapsed() < IDLE_TIMEOUT && !i.sender.is_closed());
            !set.is_empty()
        });
        let set = map.entry(key).or_default();
        if set.len() < MAX_IDLE_PER_KEY {
            set.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Sends `req` on a pooled connection of `key`, or on one `connect` opens.
    pub async fn send<C, Fut>(
        self: &Arc<Self>,
        key: &K,
        req: Request<Body>,
        connect: C,
    ) -> Result<Response<Incoming>, SendError>
    where
        C: Fn() -> Fut,
        Fut: Future<Output = std::io::Result<SendRequest<Body>>>,
    {
        let mut req = req;
        if let Some(mut sender) = self.take(key) {
            let replay = replayable(&req);
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.finish(key, sender, resp)),
                Err(mut e) => match (e.take_message(), replay) {
                    (Some(unsent), _) => req = unsent,
                    (None, Some(copy)) => req = copy,
                    (None, None) => return Err(SendError::Request(e.into_error())),
                },
            }
            tracing::debug!("pooled connection broke, retrying on a new one");
        }
        let mut sender = connect().await.map_err(SendError::Connect)?;
        let resp = sender.send_request(req).await.map_err(SendError::Request)?;
        Ok(self.finish(key, sender, resp))
    }

    fn finish(
        &self,
        key: &K,
        sender: SendRequest<Body>,
        resp: Response<Incoming>,
    ) -> Response<Incoming> {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            self.give_back(key.clone(), sender);
        }
        resp
    }

    /// Connections held for `key` that are ready for a request (tests).
    pub fn idle_count(&self, key: &K) -> usize {
        let map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .map_or(0, |set| set.iter().filter(|i| i.sender.is_ready()).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server counting its connections; answers `conn {n}`, keeping each connection alive or
    /// closing it after one request.
    async fn server_with(keep_alive: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let counter = conns.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(Response::new(Body::from(format!(
                        "conn {n}"
                    ))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(s), svc),
                );
            }
        });
        (addr, conns)
    }

    /// A keep-alive server counting its connections.
    async fn server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        server_with(true).await
    }

    async fn dial(addr: std::net::SocketAddr) -> std::io::Result<SendRequest<Body>> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn get(pool: &Arc<ConnPool<u16>>, key: u16, addr: std::net::SocketAddr) -> String {
        let req = Request::get("/").body(Body::empty()).unwrap();
        let resp = pool.send(&key, req, || dial(addr)).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        // Let the connection go back to the pool.
        for _ in 0..100 {
            if pool.idle_count(&key) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn reuses_a_connection_per_key_only() {
        let (a, conns_a) = server().await;
        let (b, conns_b) = server().await;
        let pool = Arc::new(ConnPool::<u16>::default());
        for _ in 0..5 {
            assert_eq!(get(&pool, 1, a).await, "conn 1");
        }
        assert_eq!(conns_a.load(Ordering::SeqCst), 1, "one connection, reused");
        // Another key never gets key 1's connection.
        assert_eq!(get(&pool, 2, b).await, "conn 1");
        assert_eq!(conns_b.load(Ordering::SeqCst), 1);
        assert_eq!(conns_a.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(&1), 1);
        assert_eq!(pool.idle_count(&2), 1);
    }

    #[tokio::test]
    async fn a_closed_connection_is_replaced() {
        // A server that answers one request per connection, then closes it.
        let (addr, _conns) = server_with(false).await;
        let pool = Arc::new(ConnPool::<u16>::default());
        for i in 1..=3 {
            let req = Request::get("/").body(Body::empty()).unwrap();
            let resp = pool.send(&7, req, || dial(addr)).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("conn {i}").as_bytes());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pool.idle_count(&7), 0, "closed connections are not kept");
    }

    #[test]
    fn only_bodyless_idempotent_requests_are_replayed() {
        let get = Request::get("/x").body(Body::empty()).unwrap();
        assert!(replayable(&get).is_some());
        let post = Request::post("/x").body(Body::empty()).unwrap();
        assert!(replayable(&post).is_none());
        let put = Request::put("/x")
            .header(header::CONTENT_LENGTH, "5")
            .body(Body::from("hello"))
            .unwrap();
        assert!(replayable(&put).is_none());
        let ws = Request::get("/ws")
            .header(header::UPGRADE, "websocket")
            .body(Body::empty())
            .unwrap();
        assert!(replayable(&ws).is_none());
    }
}
