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

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
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
    let local = listener.local_addr().map_err(ServerError::LocalAddr)?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let app = app.clone();
        let service = service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle_external(request, local, remote).await) }
        });
        let conn = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, %remote, "connection ended with an error");
            }
            drop(permit);
        });
    }
    tracing::info!("shutting down: draining open connections");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
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
