//! Entrypoint duties: run the image's command as a child, forward SIGTERM/SIGINT to it, and reap
//! zombies when the daemon is PID 1.
//!
//! As PID 1 the binary splits in two: a tiny reaper (this process) that re-executes itself as the
//! daemon, forwards signals to it and `wait`s for every orphan; the daemon then owns only its own
//! children, so reaping never races with tokio's `Child::wait`.

use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};

use crate::sessions::{CommandLog, Stream};

const CHILD_ENV: &str = "COVE_TOOLBOX_REAPER_CHILD";

/// When this process is PID 1, runs the reaper until the daemon exits and returns its exit code.
pub fn reap_as_pid1() -> Option<i32> {
    if rustix::process::getpid() != Pid::INIT || std::env::var_os(CHILD_ENV).is_some() {
        return None;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    Some(rt.block_on(reaper()))
}

async fn reaper() -> i32 {
    let (Ok(mut term), Ok(mut int), Ok(mut chld)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::child()),
    ) else {
        return 1;
    };
    let child = std::process::Command::new("/proc/self/exe")
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .spawn();
    let Some(pid) = child.ok().and_then(|c| Pid::from_raw(c.id() as i32)) else {
        eprintln!("cove-toolbox: cannot start the daemon process");
        return 1;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = term.recv() => { let _ = rustix::process::kill_process(pid, Signal::TERM); }
            _ = int.recv() => { let _ = rustix::process::kill_process(pid, Signal::INT); }
            _ = chld.recv() => {}
            _ = tick.tick() => {}
        }
        while let Ok(Some((reaped, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            if reaped == pid {
                return status
                    .exit_status()
                    .or_else(|| status.terminating_signal().map(|s| 128 + s))
                    .unwrap_or(1);
            }
        }
    }
}

/// A running image entrypoint.
pub struct Entrypoint {
    pub pid: Option<Pid>,
    pub log: Arc<CommandLog>,
}

/// Starts `argv` as the image entrypoint; its output is both logged and passed through.
pub fn spawn_entrypoint(argv: &[String], cwd: &std::path::Path) -> std::io::Result<Entrypoint> {
    let log = CommandLog::new("entrypoint".into(), argv.join(" "), None);
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id().and_then(|p| Pid::from_raw(p as i32));
    let out = child.stdout.take();
    let err = child.stderr.take();
    let log2 = log.clone();
    tokio::spawn(async move {
        let a = async {
            if let Some(out) = out {
                tee(out, tokio::io::stdout(), Stream::Stdout, &log2).await;
            }
        };
        let b = async {
            if let Some(err) = err {
                tee(err, tokio::io::stderr(), Stream::Stderr, &log2).await;
            }
        };
        let (_, _, status) = tokio::join!(a, b, child.wait());
        let code = status
            .ok()
            .and_then(|s| {
                use std::os::unix::process::ExitStatusExt;
                s.code().or_else(|| s.signal().map(|n| 128 + n))
            })
            .unwrap_or(-1);
        tracing::info!(code, "entrypoint exited");
        log2.finish(code);
    });
    Ok(Entrypoint { pid, log })
}

async fn tee(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    stream: Stream,
    log: &CommandLog,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let _ = to.write_all(&buf[..n]).await;
        let _ = to.flush().await;
        log.push(stream, &buf[..n]);
    }
}

/// Waits for SIGTERM or SIGINT; forwards it to the entrypoint and waits (bounded) for it to end.
pub async fn shutdown_signal(entry: Option<Arc<Entrypoint>>) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    let sig = tokio::select! {
        _ = term.recv() => Signal::TERM,
        _ = int.recv() => Signal::INT,
    };
    tracing::info!(signal = ?sig, "shutting down");
    if let Some(entry) = entry
        && entry.log.exit_code().is_none()
    {
        if let Some(pid) = entry.pid {
            let _ = rustix::process::kill_process(pid, sig);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), entry.log.wait()).await;
    }
}
