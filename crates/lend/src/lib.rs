//! A runner agent lends verified connections to its sandboxes' toolbox daemons to a preview
//! proxy on the same host, so that preview traffic skips the agent's HTTP hop.
//!
//! The agent listens on a unix socket in its data directory ([`SOCKET_NAME`], mode `0600`,
//! and only peers with the agent's own uid or root are answered). A proxy connects and sends one
//! JSON line, [`Ask`]: the runner's token and a sandbox id. The agent checks the token, that the
//! sandbox is started on it, opens a connection to the sandbox's daemon and verifies its peer
//! (the same checks as for its own toolbox calls), then answers one JSON line, `{"ok":true}`,
//! carrying that connection's descriptor (`SCM_RIGHTS`), or a [`Refusal`] (the HTTP status, code
//! and message the agent would have answered), and closes. An empty sandbox id only asks "are
//! you the runner of this token?" ([`hello`]).
//!
//! A lent connection is the agent's own kind: the process at its other end was verified once
//! and cannot change; it dies with the daemon (a stopped or deleted sandbox).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};

/// Name of the agent's lending socket inside its data directory.
pub const SOCKET_NAME: &str = "lend.sock";

/// Longest line either side sends.
const MAX_LINE: usize = 4096;

/// Deadline of one exchange (either side): a stuck peer never holds a task.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a proxy asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ask {
    /// The runner's token (what the proxy would send as `X-Daytona-Authorization`).
    pub token: String,
    /// The sandbox whose daemon to connect to; empty for [`hello`].
    #[serde(default)]
    pub sandbox_id: String,
}

/// Why the agent lent nothing: what its HTTP API would have answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    refusal: Option<Refusal>,
}

/// Why borrowing failed.
#[derive(Debug, thiserror::Error)]
pub enum LendError {
    /// The socket could not be reached or the exchange broke off (no agent there, or it died).
    #[error("the runner agent's lending socket: {0}")]
    Io(#[from] std::io::Error),
    /// The agent answered no.
    #[error("the runner agent refused: {0}")]
    Refused(Refusal),
    /// The agent said yes but sent no descriptor, or an unreadable answer.
    #[error("the runner agent's answer is malformed")]
    Malformed,
}

/// Whether the agent at `socket` is the runner of `token`.
pub async fn hello(socket: &Path, token: &str) -> Result<(), LendError> {
    exchange(socket, token, "").await.map(drop)
}

/// A connection to the daemon of `sandbox_id`, lent by the agent at `socket`.
pub async fn borrow(socket: &Path, token: &str, sandbox_id: &str) -> Result<UnixStream, LendError> {
    let fd = exchange(socket, token, sandbox_id)
        .await?
        .ok_or(LendError::Malformed)?;
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true)?;
    Ok(UnixStream::from_std(std)?)
}

async fn exchange(
    socket: &Path,
    token: &str,
    sandbox_id: &str,
) -> Result<Option<OwnedFd>, LendError> {
    let ask = Ask {
        token: token.to_owned(),
        sandbox_id: sandbox_id.to_owned(),
    };
    let run = async {
        let mut stream = UnixStream::connect(socket).await?;
        let mut line = serde_json::to_vec(&ask).map_err(std::io::Error::other)?;
        line.push(b'\n');
        stream.write_all(&line).await?;
        read_answer(&stream).await
    };
    let (line, fd) = tokio::time::timeout(EXCHANGE_TIMEOUT, run)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let answer: Answer = serde_json::from_slice(&line).map_err(|_| LendError::Malformed)?;
    match (answer.ok, answer.refusal) {
        (true, _) if sandbox_id.is_empty() => Ok(None),
        (true, _) => fd.map(Some).ok_or(LendError::Malformed),
        (false, Some(r)) => Err(LendError::Refused(r)),
        (false, None) => Err(LendError::Malformed),
    }
}

/// Reads one answer line and the descriptor that came with it (at most one is kept).
async fn read_answer(stream: &UnixStream) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut line = Vec::new();
    let mut fd = None;
    loop {
        let mut chunk = [0u8; 512];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let (n, got) = stream
            .async_io(Interest::READABLE, || {
                let mut cmsg = RecvAncillaryBuffer::new(&mut space);
                let r = rustix::net::recvmsg(
                    stream,
                    &mut [IoSliceMut::new(&mut chunk)],
                    &mut cmsg,
                    RecvFlags::CMSG_CLOEXEC,
                )?;
                if r.flags.contains(ReturnFlags::CTRUNC) {
                    return Err(std::io::Error::other("descriptors were truncated"));
                }
                let mut got = None;
                for msg in cmsg.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = msg {
                        for f in fds {
                            got.get_or_insert(f);
                        }
                    }
                }
                Ok((r.bytes, got))
            })
            .await?;
        if fd.is_none() {
            fd = got;
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            line.truncate(end);
            return Ok((line, fd));
        }
        if line.len() > MAX_LINE {
            return Err(std::io::Error::other("answer too long"));
        }
    }
}

/// Binds the lending socket at `path` (a stale socket there is replaced; anything else is an
/// error), readable and writable by its owner only.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers every proxy that connects to `listener`: `lend` decides (a descriptor to lend, none
/// for a [`hello`], or a refusal). Runs until the task is dropped.
pub async fn serve<F, Fut>(listener: UnixListener, lend: F)
where
    F: Fn(Ask) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<OwnedFd>, Refusal>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "lending socket: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let lend = lend.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(EXCHANGE_TIMEOUT, answer(stream, lend)).await {
                tracing::debug!(error = %e, "lending socket: exchange timed out");
            }
        });
    }
}

/// The peer must run as the agent's own user, or root.
fn peer_allowed(stream: &UnixStream) -> bool {
    let me = rustix::process::geteuid().as_raw();
    stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == me || c.uid() == 0)
}

async fn answer<F, Fut>(mut stream: UnixStream, lend: F)
where
    F: Fn(Ask) -> Fut,
    Fut: Future<Output = Result<Option<OwnedFd>, Refusal>>,
{
    if !peer_allowed(&stream) {
        tracing::warn!("lending socket: a peer of another user was refused");
        return;
    }
    let outcome = match read_ask(&mut stream).await {
        Ok(ask) => lend(ask).await,
        Err(r) => Err(r),
    };
    let (answer, fd) = match outcome {
        Ok(fd) => (
            Answer {
                ok: true,
                refusal: None,
            },
            fd,
        ),
        Err(r) => (
            Answer {
                ok: false,
                refusal: Some(r),
            },
            None,
        ),
    };
    if let Err(e) = send_answer(&mut stream, &answer, fd.as_ref()).await {
        tracing::debug!(error = %e, "lending socket: the answer was not delivered");
    }
}

async fn read_ask(stream: &mut UnixStream) -> Result<Ask, Refusal> {
    let bad = |m: &str| Refusal::new(400, "BAD_REQUEST", m);
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|_| bad("the request broke off"))?;
        if n == 0 {
            return Err(bad("the request broke off"));
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            line.truncate(end);
            return serde_json::from_slice(&line).map_err(|_| bad("malformed request"));
        }
        if line.len() > MAX_LINE {
            return Err(bad("request too long"));
        }
    }
}

async fn send_answer(
    stream: &mut UnixStream,
    answer: &Answer,
    fd: Option<&OwnedFd>,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let sent = {
        let stream = &*stream;
        stream
            .async_io(Interest::WRITABLE, || {
                let fds = fd.map(|f| [f.as_fd()]);
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut cmsg = SendAncillaryBuffer::new(&mut space);
                if let Some(fds) = &fds {
                    cmsg.push(SendAncillaryMessage::ScmRights(fds));
                }
                Ok(rustix::net::sendmsg(
                    stream,
                    &[IoSlice::new(&line)],
                    &mut cmsg,
                    SendFlags::NOSIGNAL,
                )?)
            })
            .await?
    };
    // The descriptor went with the first byte; the rest (rarely any) follows plainly.
    stream.write_all(&line[sent..]).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests;
