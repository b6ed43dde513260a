use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::*;

const TOKEN: &str = "runner-token";

/// A lender on a fresh socket: it lends one end of a new socket pair per sandbox `sb-ok` (the
/// other ends are kept in the returned list), refuses `sb-stopped` with 409, and checks the token.
async fn lender() -> (
    tempfile::TempDir,
    PathBuf,
    Arc<Mutex<Vec<std::os::unix::net::UnixStream>>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_NAME);
    let listener = bind(&path).unwrap();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let ends = kept.clone();
    tokio::spawn(serve(listener, move |ask: Ask| {
        let ends = ends.clone();
        async move {
            if ask.token != TOKEN {
                return Err(Refusal::new(401, "UNAUTHORIZED", "Unauthorized"));
            }
            match ask.sandbox_id.as_str() {
                "" => Ok(None),
                "sb-ok" => {
                    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
                    ends.lock().unwrap().push(ours);
                    Ok(Some(OwnedFd::from(theirs)))
                }
                "sb-nofd" => Ok(None),
                "sb-stopped" => Err(Refusal::new(
                    409,
                    "SANDBOX_NOT_STARTED",
                    "Sandbox sb-stopped is not running",
                )),
                other => Err(Refusal::new(
                    404,
                    "SANDBOX_NOT_FOUND",
                    format!("Sandbox {other} not found"),
                )),
            }
        }
    }));
    (dir, path, kept)
}

#[tokio::test]
async fn a_lent_connection_carries_bytes_both_ways() {
    let (_dir, path, kept) = lender().await;
    let mut lent = borrow(&path, TOKEN, "sb-ok").await.unwrap();
    let other = kept.lock().unwrap().pop().expect("the lender kept its end");
    other.set_nonblocking(true).unwrap();
    let mut other = UnixStream::from_std(other).unwrap();
    lent.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    other.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    other.write_all(b"pong!").await.unwrap();
    let mut buf = [0u8; 5];
    lent.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong!");
    // Two borrows are two connections.
    let _second = borrow(&path, TOKEN, "sb-ok").await.unwrap();
    assert_eq!(kept.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn refusals_carry_the_agents_answer() {
    let (_dir, path, kept) = lender().await;
    match borrow(&path, TOKEN, "sb-stopped").await {
        Err(LendError::Refused(r)) => {
            assert_eq!(r.status, 409);
            assert_eq!(r.code, "SANDBOX_NOT_STARTED");
            assert_eq!(r.message, "Sandbox sb-stopped is not running");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match borrow(&path, TOKEN, "sb-gone").await {
        Err(LendError::Refused(r)) => {
            assert_eq!((r.status, r.code.as_str()), (404, "SANDBOX_NOT_FOUND"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match borrow(&path, "another-runner", "sb-ok").await {
        Err(LendError::Refused(r)) => assert_eq!(r.status, 401),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(kept.lock().unwrap().is_empty(), "nothing was lent");
    // "Yes" without a descriptor is not a connection.
    assert!(matches!(
        borrow(&path, TOKEN, "sb-nofd").await,
        Err(LendError::Malformed)
    ));
}

#[tokio::test]
async fn hello_tells_whose_runner_this_is() {
    let (_dir, path, _kept) = lender().await;
    hello(&path, TOKEN).await.unwrap();
    assert!(matches!(
        hello(&path, "another-runner").await,
        Err(LendError::Refused(r)) if r.status == 401
    ));
    let missing = path.with_file_name("nobody.sock");
    assert!(matches!(
        hello(&missing, TOKEN).await,
        Err(LendError::Io(_))
    ));
}

#[tokio::test]
async fn a_malformed_request_gets_a_400() {
    let (_dir, path, kept) = lender().await;
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(b"{\"sandboxId\": 3}\n").await.unwrap();
    let (line, fd) = read_answer(&s).await.unwrap();
    assert!(fd.is_none());
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], 400);
    // An endless line is cut off, not buffered.
    let mut s = UnixStream::connect(&path).await.unwrap();
    let _ = s.write_all(&vec![b'x'; 3 * MAX_LINE]).await;
    let (line, _) = read_answer(&s).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["message"], "request too long");
    assert!(kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bind_replaces_a_stale_socket_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_NAME);
    drop(bind(&path).unwrap());
    // The socket file of a dead agent is replaced.
    let listener = bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    drop(listener);
    // A file that is not a socket is left alone.
    let file = dir.path().join("file");
    std::fs::write(&file, b"keep").unwrap();
    assert!(bind(&file).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
}
