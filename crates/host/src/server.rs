//! The HTTP/1.1 front door: keep-alive connections, `TCP_NODELAY`, a cap on open connections,
//! a header-read timeout, graceful shutdown.
//!
//! * **Connection cap**: at most [`ServerLimits::max_connections`] connections are served at
//!   once. Past that, cove stops accepting: new connections wait in the kernel's listen backlog
//!   (their requests are read once a slot frees) and, when the backlog is full too, the kernel
//!   drops the connection attempts. Nothing is refused with an HTTP error.
//! * **Header-read timeout**: a connection that has not sent a whole request head within
//!   [`ServerLimits::header_read_timeout`] is closed (slowloris). The same clock runs while a
//!   keep-alive connection sits idle between requests, so it is also the idle timeout.
//! * **Native routes** ([`NativeRoute`]): a path prefix served by a handler of the embedding
//!   process before the component router (`cove up` serves cove-proxy's Socket.IO relay at
//!   `/api/socket.io/` this way, where the SDKs look for it). HTTP upgrades work on every
//!   connection, so a native handler may answer a websocket upgrade.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::log_throttle::{self, LogThrottle};
use crate::throttled;

/// How long open connections get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

static ACCEPT_LOG: LogThrottle = LogThrottle::new(log_throttle::WINDOW, log_throttle::BURST);
static CAP_LOG: LogThrottle = LogThrottle::new(log_throttle::WINDOW, 1);

/// Limits of the front door.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// The body a native handler answers.
pub type NativeBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// What serves a native route.
pub type NativeHandler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<NativeBody>> + Send>>
        + Send
        + Sync,
>;

/// A path prefix the embedding process serves itself, before the component router.
#[derive(Clone)]
pub struct NativeRoute {
    prefix: String,
    handler: NativeHandler,
}

impl NativeRoute {
    /// Serves `prefix` (a path without its trailing slash, e.g. `/api/socket.io`) and every path
    /// under it (`/api/socket.io/...`) with `handler`.
    pub fn new(prefix: &str, handler: NativeHandler) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
            handler,
        }
    }

    fn matches(&self, path: &str) -> bool {
        path.strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

impl std::fmt::Debug for NativeRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeRoute")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read the listener's address")]
    LocalAddr(#[source] std::io::Error),
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    serve_with(listener, app, Vec::new(), limits, shutdown).await
}

/// [`serve`], with `native` routes served before the component router (the first match wins).
pub async fn serve_with(
    listener: TcpListener,
    app: Arc<App>,
    native: Vec<NativeRoute>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let native: Arc<[NativeRoute]> = native.into();
    let local = listener.local_addr().map_err(ServerError::LocalAddr)?;
    // Connections watch this to shut down gracefully; every open one holds a slot, so draining
    // is taking all slots back.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let max = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(max as usize));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            () = &mut shutdown => break,
        };
        let Some((stream, remote, permit)) = accepted else {
            continue;
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = service_fn(route(app.clone(), native.clone(), local, remote));
        let conn = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::spawn(drive(conn, stopping.clone(), permit, remote));
    }
    tracing::info!("shutting down: draining open connections");
    let _ = stop.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(max))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "connections still open after the grace period"
        );
    }
    Ok(())
}

/// What serves one request of a connection from `remote`: the first native route whose
/// prefix matches, else the component router.
fn route(
    app: Arc<App>,
    native: Arc<[NativeRoute]>,
    local: SocketAddr,
    remote: SocketAddr,
) -> impl Fn(Request<Incoming>) -> Answer {
    move |request: Request<Incoming>| {
        let app = app.clone();
        let handler = (native.iter())
            .find(|r| r.matches(request.uri().path()))
            .map(|r| r.handler.clone());
        Box::pin(async move {
            Ok(match handler {
                Some(h) => h(request).await.map(Either::Right),
                None => (app.handle_external(request, local, remote).await).map(Either::Left),
            })
        })
    }
}

/// What the server answers: a component's body or a native route's.
type Body = Either<wasmtime_wasi_http::WasiBody, NativeBody>;

/// The answer of one request.
type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Runs one connection to its end; once `stopping` turns true it shuts down gracefully (the
/// request in flight is answered, keep-alive ends). Its slot is free again at the end.
async fn drive<C>(
    conn: C,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
    remote: SocketAddr,
) where
    C: Future<Output = Result<(), hyper::Error>> + GracefulShutdown,
{
    let mut conn = std::pin::pin!(conn);
    let finished = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stopping.wait_for(|s| *s) => None,
    };
    let result = match finished {
        Some(r) => r,
        None => {
            conn.as_mut().shut_down();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %remote, "connection ended with an error");
    }
    drop(permit);
}

/// A connection that can be asked to finish gracefully.
trait GracefulShutdown {
    fn shut_down(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulShutdown for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Waits for a free connection slot, then for a connection. `None` after a failed accept.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = match slots.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            throttled!(
                CAP_LOG,
                tracing::Level::WARN,
                "connection cap reached: new connections wait in the listen backlog"
            );
            // The semaphore is never closed.
            slots.clone().acquire_owned().await.ok()?
        }
    };
    match listener.accept().await {
        Ok((stream, remote)) => Some((stream, remote, permit)),
        Err(error) => {
            // Typically EMFILE; back off instead of spinning.
            throttled!(ACCEPT_LOG, tracing::Level::WARN, %error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The SIGTERM handler is installed when this is called, not
/// when the future is first polled: a SIGTERM right after `cove ready` (the server task not yet
/// scheduled) must shut down cleanly rather than kill the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match term {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
    }
}
