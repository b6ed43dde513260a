//! Idle timeouts of the toolbox pass-through: toolbox calls have no request deadline (a
//! download, a log stream or a websocket may last for hours), but a websocket relay or a
//! response stream with no traffic either way for `--idle-timeout-secs` is closed.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

static IDLE: OnceLock<Duration> = OnceLock::new();

/// Default of `--idle-timeout-secs`.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(900);

/// Sets the idle timeout once, at startup.
pub fn set_idle_timeout(idle: Duration) {
    let _ = IDLE.set(idle);
}

pub fn idle_timeout() -> Duration {
    IDLE.get().copied().unwrap_or(DEFAULT_IDLE)
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "idle timeout")
}

/// Relays bytes both ways until either side closes, or nothing moved for `idle`.
pub async fn copy_idle<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let (mut buf_a, mut buf_b) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    loop {
        let step = tokio::time::timeout(idle, async {
            tokio::select! {
                r = ar.read(&mut buf_a) => (true, r),
                r = br.read(&mut buf_b) => (false, r),
            }
        })
        .await;
        let Ok((from_a, read)) = step else {
            let _ = aw.shutdown().await;
            let _ = bw.shutdown().await;
            return Err(idle_error());
        };
        let n = read?;
        if n == 0 {
            let _ = aw.shutdown().await;
            let _ = bw.shutdown().await;
            return Ok(());
        }
        let write = async {
            if from_a {
                bw.write_all(&buf_a[..n]).await
            } else {
                aw.write_all(&buf_b[..n]).await
            }
        };
        tokio::time::timeout(idle, write)
            .await
            .map_err(|_| idle_error())??;
    }
}

/// A response body that fails once no frame came for `idle`.
///
/// Its timer is armed only when the inner body has nothing ready: a small answer read with its
/// head (most previews and toolbox calls) never registers one with the runtime.
pub struct IdleBody<B> {
    inner: B,
    idle: Duration,
    /// When the last frame came (or the body was made).
    last: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            last: tokio::time::Instant::now(),
            timer: None,
        }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.last = tokio::time::Instant::now();
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = this.last + this.idle;
                let timer = match &mut this.timer {
                    Some(t) => {
                        if t.deadline() != deadline {
                            t.as_mut().reset(deadline);
                        }
                        t
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(idle_error())))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_relay_is_closed_and_a_busy_one_is_not() {
        let (a, mut a_peer) = tokio::io::duplex(1024);
        let (b, mut b_peer) = tokio::io::duplex(1024);
        let relay = tokio::spawn(copy_idle(a, b, Duration::from_millis(150)));
        // Traffic keeps it open past the idle timeout.
        for _ in 0..4 {
            a_peer.write_all(b"ping").await.expect("write");
            let mut buf = [0u8; 4];
            b_peer.read_exact(&mut buf).await.expect("relayed");
            assert_eq!(&buf, b"ping");
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        assert!(!relay.is_finished());
        // Then silence closes it.
        let res = tokio::time::timeout(Duration::from_secs(2), relay)
            .await
            .expect("closed in time")
            .expect("join");
        assert_eq!(res.expect_err("idle").kind(), std::io::ErrorKind::TimedOut);
        let mut rest = Vec::new();
        b_peer.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty());
    }
}
