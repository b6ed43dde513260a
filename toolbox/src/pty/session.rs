//! The terminal sessions: a shell on a real pseudo-terminal per session, its output fanned out to
//! every attached client and kept as a bounded scrollback for the next one.
//!
//! Per session one task (the pump) reads the terminal and waits for the shell; another writes the
//! clients' input. The session's state (phase, size, scrollback, clients) sits under one mutex,
//! so a client that attaches gets the scrollback and then every later byte, nothing twice.
//!
//! Bounds: [`MAX_SESSIONS`] sessions (an ended one is evicted first), [`MAX_CLIENTS`] clients per
//! session, [`SCROLLBACK_BYTES`] of scrollback, [`CLIENT_QUEUE`] chunks queued per client (a client
//! that falls behind holds the terminal back, like a slow real terminal, for at most
//! [`CLIENT_STALL`]; then it is dropped, its websocket closed with 1008), an ended session is removed
//! [`EXITED_RETENTION`] after its exit and a lazy one nobody started [`LAZY_RETENTION`] after its
//! creation.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use cove_api_types::toolbox::pty::PtySessionInfo;
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::{Result, ToolboxError};

/// Most sessions at once, ended ones included (those are evicted, oldest first, to make room).
pub const MAX_SESSIONS: usize = 64;
/// Most clients attached to one session.
pub const MAX_CLIENTS: usize = 16;
/// Output kept per session and replayed to a client that attaches.
pub const SCROLLBACK_BYTES: usize = 64 * 1024;
/// Output chunks (each at most 32 KiB) queued per client before it holds the terminal back.
pub const CLIENT_QUEUE: usize = 64;
/// How long a client with a full queue may hold the terminal back before it is dropped.
pub const CLIENT_STALL: Duration = Duration::from_secs(5);
/// How long an ended session stays listed (with its exit code and scrollback).
pub const EXITED_RETENTION: Duration = Duration::from_secs(5 * 60);
/// How long a lazy session waits for its first client.
pub const LAZY_RETENTION: Duration = Duration::from_secs(60 * 60);
/// After the shell exits, output still buffered (or written by processes that kept the
/// terminal open) is forwarded for this long at most.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Largest `cols`/`rows` (Daytona's bound, below the kernel's `u16`).
pub const MAX_DIMENSION: u32 = 1000;
/// Longest session id.
pub const MAX_ID_BYTES: usize = 256;
/// Input messages queued per session before a client's reads wait.
const INPUT_QUEUE: usize = 64;
const READ_BYTES: usize = 32 * 1024;

/// A terminal size, both in `1..=MAX_DIMENSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub cols: u16,
    pub rows: u16,
}

impl Size {
    /// Checks `cols`/`rows` (400 outside `1..=MAX_DIMENSION`).
    pub fn new(cols: u32, rows: u32) -> Result<Self> {
        let check = |name: &str, v: u32| {
            if (1..=MAX_DIMENSION).contains(&v) {
                Ok(v as u16)
            } else {
                Err(ToolboxError::BadRequest(format!(
                    "invalid value for {name}: {v} (must be 1 to {MAX_DIMENSION})"
                )))
            }
        };
        Ok(Self {
            cols: check("cols", cols)?,
            rows: check("rows", rows)?,
        })
    }

    fn winsize(self) -> rustix::termios::Winsize {
        rustix::termios::Winsize {
            ws_row: self.rows,
            ws_col: self.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }
    }
}

/// How a shell ended: its exit status (128 + N for signal N) and, when non-zero, a short reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub reason: Option<String>,
}

impl Exit {
    pub fn new(code: i32) -> Self {
        let reason = match code {
            0 => None,
            130 => Some("Ctrl+C".to_owned()),
            137 => Some("SIGKILL".to_owned()),
            143 => Some("SIGTERM".to_owned()),
            c if c > 128 => Some(format!("signal {}", c - 128)),
            _ => Some("non-zero exit".to_owned()),
        };
        Self { code, reason }
    }
}

/// What a new session runs and where.
#[derive(Debug, Clone)]
pub struct Spec {
    pub id: String,
    /// As the client sees it (virtual).
    pub cwd: String,
    /// Where the shell starts (real).
    pub real_cwd: PathBuf,
    pub envs: BTreeMap<String, String>,
    pub size: Size,
    pub lazy_start: bool,
}

/// The last [`SCROLLBACK_BYTES`] of output.
#[derive(Debug, Default)]
struct Scrollback(VecDeque<u8>);

impl Scrollback {
    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(SCROLLBACK_BYTES)..];
        let excess = (self.0.len() + data.len()).saturating_sub(SCROLLBACK_BYTES);
        self.0.drain(..excess);
        self.0.extend(data);
    }

    fn snapshot(&self) -> Bytes {
        let (a, b) = self.0.as_slices();
        let mut out = Vec::with_capacity(a.len() + b.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        out.into()
    }
}

enum Phase {
    /// Lazy: no shell until the first client attaches.
    NotStarted,
    Running {
        /// The shell: leader of its own session, whose id equals this pid.
        pid: Pid,
        input: mpsc::Sender<Bytes>,
        /// A duplicate of the terminal's master side, for resizing.
        control: OwnedFd,
        /// The task writing input; aborted when the shell ends.
        writer: tokio::task::AbortHandle,
    },
    Exited(Exit),
}

/// What a retention timer waits for.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    NeverStarted,
    Ended,
}

struct Inner {
    phase: Phase,
    size: Size,
    scrollback: Scrollback,
    clients: Vec<mpsc::Sender<Bytes>>,
}

/// One terminal session.
pub struct PtySession {
    pub id: String,
    cwd: String,
    real_cwd: PathBuf,
    envs: BTreeMap<String, String>,
    created_at: String,
    /// Creation order, for listing.
    seq: u64,
    lazy_start: bool,
    shell: PathBuf,
    /// `POST /env`'s changes, read when the shell starts (a lazy one starts late).
    env: Arc<crate::env::ProcessEnv>,
    registry: Weak<Registry>,
    inner: Mutex<Inner>,
}

/// A client's view at the moment it attached.
pub struct Attached {
    /// The scrollback (output before this moment).
    pub replay: Bytes,
    /// Later output; ends when the session ends or drops this client. `None` when the session
    /// had already ended.
    pub output: Option<mpsc::Receiver<Bytes>>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Exit status of a shell as a number: its code, or 128 + the signal that ended it.
fn status_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    status
        .ok()
        .and_then(|s| s.code().or_else(|| s.signal().map(|n| 128 + n)))
        .unwrap_or(-1)
}

/// Sends `sig` to every process of the terminal session led by `leader` (found in `/proc`), and
/// to its process group (should `/proc` be missing). A shell with job control puts each job in a
/// group of its own, so the session is the unit that holds them all.
fn signal_session(leader: Pid, sig: Signal) {
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
                .and_then(Pid::from_raw);
            if let Some(pid) = pid
                && rustix::process::getsid(Some(pid)).ok() == Some(leader)
            {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    }
    let _ = rustix::process::kill_process_group(leader, sig);
}

impl PtySession {
    pub fn info(&self) -> PtySessionInfo {
        let inner = lock(&self.inner);
        let (active, exit_code) = match &inner.phase {
            Phase::NotStarted => (false, None),
            Phase::Running { .. } => (true, None),
            Phase::Exited(exit) => (false, Some(exit.code)),
        };
        PtySessionInfo {
            id: self.id.clone(),
            cwd: self.cwd.clone(),
            envs: self.envs.clone(),
            cols: inner.size.cols,
            rows: inner.size.rows,
            created_at: self.created_at.clone(),
            active,
            lazy_start: self.lazy_start,
            exit_code,
        }
    }

    /// How the shell ended, once it has.
    pub fn exit(&self) -> Option<Exit> {
        match &lock(&self.inner).phase {
            Phase::Exited(exit) => Some(exit.clone()),
            _ => None,
        }
    }

    fn is_live(&self) -> bool {
        !matches!(lock(&self.inner).phase, Phase::Exited(_))
    }

    /// Starts the shell if it has not been started (a lazy session); a no-op otherwise.
    pub fn ensure_started(self: &Arc<Self>) -> Result<()> {
        let mut inner = lock(&self.inner);
        if !matches!(inner.phase, Phase::NotStarted) {
            return Ok(());
        }
        inner.phase = self.spawn(inner.size)?;
        Ok(())
    }

    /// Spawns the shell on a new terminal of `size` and its pump and input tasks.
    fn spawn(self: &Arc<Self>, size: Size) -> Result<Phase> {
        let io = |context: &str| {
            let context = context.to_owned();
            move |e: pty_process::Error| ToolboxError::Io {
                context: context.clone(),
                source: match e {
                    pty_process::Error::Io(e) => e,
                    pty_process::Error::Rustix(e) => e.into(),
                    other => std::io::Error::other(other.to_string()),
                },
            }
        };
        let (pty, pts) = pty_process::open().map_err(io("opening a pseudo-terminal"))?;
        pty.resize(pty_process::Size::new(size.rows, size.cols))
            .map_err(io("sizing the pseudo-terminal"))?;
        let control = rustix::io::fcntl_dupfd_cloexec(&pty, 0).map_err(|e| ToolboxError::Io {
            context: "duplicating the pseudo-terminal".into(),
            source: e.into(),
        })?;
        let child = pty_process::Command::new(&self.shell)
            .args(["-i", "-l"])
            .current_dir(&self.real_cwd)
            .env_clear()
            .envs(self.env.effective())
            .env("TERM", "xterm-256color")
            .envs(&self.envs)
            .spawn(pts)
            .map_err(io(&format!("starting {}", self.shell.display())))?;
        let pid = child
            .id()
            .and_then(|p| Pid::from_raw(p as i32))
            .ok_or_else(|| ToolboxError::Internal("the shell has no pid".into()))?;
        tracing::debug!(session = ?self.id, pid = pid.as_raw_nonzero().get(), cols = size.cols, rows = size.rows, "pty session started");
        let (reader, mut writer) = pty.into_split();
        let (input, mut input_rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
        let writer_task = tokio::spawn(async move {
            while let Some(data) = input_rx.recv().await {
                if writer.write_all(&data).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(Arc::clone(self).pump(reader, child, pid));
        Ok(Phase::Running {
            pid,
            input,
            control,
            writer: writer_task.abort_handle(),
        })
    }

    /// Reads the terminal until it hangs up and waits for the shell; then records the exit,
    /// ends the clients' streams and schedules the session's removal.
    async fn pump(
        self: Arc<Self>,
        mut reader: pty_process::OwnedReadPty,
        mut child: tokio::process::Child,
        pid: Pid,
    ) {
        let mut buf = vec![0u8; READ_BYTES];
        let mut code = None;
        let drain = tokio::time::sleep(Duration::MAX);
        tokio::pin!(drain);
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    // EIO: every slave side is closed.
                    Ok(0) | Err(_) => break,
                    Ok(n) => self.publish(&buf[..n]).await,
                },
                status = child.wait(), if code.is_none() => {
                    code = Some(status_code(status));
                    // Hang up on what the shell left on the terminal (as closing a terminal
                    // window does); keep forwarding their last words for a moment.
                    signal_session(pid, Signal::HUP);
                    drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                },
                () = &mut drain => break,
            }
        }
        let code = match code {
            Some(c) => c,
            None => status_code(child.wait().await),
        };
        drop(reader);
        self.finish(Exit::new(code));
    }

    /// Appends output to the scrollback and hands it to every client. A client whose queue is
    /// full holds the pump back (the terminal's flow control: the shell's writes block, as on a
    /// slow real terminal) for at most [`CLIENT_STALL`]; then it is dropped (its websocket
    /// closes with 1008) and the others go on. A client that left is dropped at once.
    ///
    /// The scrollback grows under the lock and the client list is taken with it, so a client
    /// attaching meanwhile has this chunk in its replay and not in its queue; the pump is the
    /// only publisher, so every client sees the chunks in order.
    async fn publish(&self, data: &[u8]) {
        let chunk = Bytes::copy_from_slice(data);
        let clients = {
            let mut inner = lock(&self.inner);
            inner.scrollback.push(data);
            inner.clients.clone()
        };
        let mut dropped = Vec::new();
        for tx in clients {
            let sent = match tx.try_send(chunk.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
                Err(mpsc::error::TrySendError::Full(chunk)) => {
                    match tokio::time::timeout(CLIENT_STALL, tx.send(chunk)).await {
                        Ok(sent) => sent.is_ok(),
                        Err(_) => {
                            tracing::debug!(session = ?self.id, stall = ?CLIENT_STALL, "pty client too slow, dropped");
                            false
                        }
                    }
                }
            };
            if !sent {
                dropped.push(tx);
            }
        }
        if !dropped.is_empty() {
            lock(&self.inner)
                .clients
                .retain(|tx| !dropped.iter().any(|d| d.same_channel(tx)));
        }
    }

    fn finish(self: &Arc<Self>, exit: Exit) {
        tracing::debug!(session = ?self.id, code = exit.code, "pty session ended");
        {
            let mut inner = lock(&self.inner);
            if let Phase::Running { writer, .. } = &inner.phase {
                writer.abort();
            }
            // Drops the input sender and the control fd: the terminal closes.
            inner.phase = Phase::Exited(exit);
            inner.clients.clear();
        }
        self.remove_after(EXITED_RETENTION, Expiry::Ended);
    }

    /// Removes this session from the registry after `delay` if it is then still `phase` (and
    /// was neither replaced nor removed meanwhile).
    fn remove_after(self: &Arc<Self>, delay: Duration, phase: Expiry) {
        let me = Arc::downgrade(self);
        let registry = self.registry.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let (Some(me), Some(registry)) = (me.upgrade(), registry.upgrade()) else {
                return;
            };
            let expired = matches!(
                (&lock(&me.inner).phase, phase),
                (Phase::NotStarted, Expiry::NeverStarted) | (Phase::Exited(_), Expiry::Ended)
            );
            let mut map = registry.lock();
            if expired && map.get(&me.id).is_some_and(|s| Arc::ptr_eq(s, &me)) {
                tracing::debug!(session = ?me.id, "pty session expired");
                map.remove(&me.id);
            }
        });
    }

    /// Registers a client: the scrollback so far and a stream of what follows.
    pub fn attach(&self) -> Result<Attached> {
        let mut inner = lock(&self.inner);
        let replay = inner.scrollback.snapshot();
        if matches!(inner.phase, Phase::Exited(_)) {
            return Ok(Attached {
                replay,
                output: None,
            });
        }
        inner.clients.retain(|tx| !tx.is_closed());
        if inner.clients.len() >= MAX_CLIENTS {
            return Err(ToolboxError::Conflict(format!(
                "PTY session '{}' already has {MAX_CLIENTS} clients",
                self.id
            )));
        }
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        inner.clients.push(tx);
        Ok(Attached {
            replay,
            output: Some(rx),
        })
    }

    /// Writes `data` to the terminal (waits while the input queue is full); dropped once the
    /// shell has ended.
    pub async fn input(&self, data: Bytes) {
        let tx = match &lock(&self.inner).phase {
            Phase::Running { input, .. } => input.clone(),
            _ => return,
        };
        let _ = tx.send(data).await;
    }

    /// Resizes the terminal (the kernel signals `SIGWINCH` to its foreground job); 410 once the
    /// shell has ended.
    pub fn resize(&self, size: Size) -> Result<()> {
        let mut inner = lock(&self.inner);
        match &inner.phase {
            Phase::Exited(_) => {
                return Err(ToolboxError::Gone(format!(
                    "PTY session '{}' has terminated and cannot be resized",
                    self.id
                )));
            }
            Phase::Running { control, .. } => {
                rustix::termios::tcsetwinsize(control, size.winsize()).map_err(|e| {
                    ToolboxError::Io {
                        context: "resizing the pseudo-terminal".into(),
                        source: e.into(),
                    }
                })?;
            }
            Phase::NotStarted => {}
        }
        inner.size = size;
        Ok(())
    }

    /// Kills every process of the terminal session (SIGKILL); the pump then reports exit 137.
    fn kill(&self) {
        if let Phase::Running { pid, .. } = &lock(&self.inner).phase {
            signal_session(*pid, Signal::KILL);
        }
    }
}

/// The sessions by id.
pub struct Registry(Mutex<HashMap<String, Arc<PtySession>>>);

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PtySession>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every terminal session of the daemon.
pub struct PtyManager {
    registry: Arc<Registry>,
    shell: PathBuf,
    /// `POST /env`'s changes, applied to each shell started afterwards.
    env: Arc<crate::env::ProcessEnv>,
    seq: std::sync::atomic::AtomicU64,
}

impl PtyManager {
    /// Sessions run `shell` (a login, interactive shell).
    pub fn new(shell: PathBuf, env: Arc<crate::env::ProcessEnv>) -> Self {
        Self {
            registry: Arc::new(Registry(Mutex::new(HashMap::new()))),
            shell,
            env,
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Creates a session (and starts its shell unless it is lazy). 409 when a live session has
    /// the id (an ended one is replaced), 409 too when [`MAX_SESSIONS`] live ones exist.
    pub fn create(&self, spec: Spec) -> Result<Arc<PtySession>> {
        if spec.id.is_empty() {
            return Err(ToolboxError::BadRequest("session ID is required".into()));
        }
        if spec.id.len() > MAX_ID_BYTES {
            return Err(ToolboxError::BadRequest(format!(
                "session ID is longer than {MAX_ID_BYTES} bytes"
            )));
        }
        let mut envs = spec.envs;
        envs.entry("TERM".into())
            .or_insert_with(|| "xterm-256color".into());
        let session = Arc::new(PtySession {
            id: spec.id.clone(),
            cwd: spec.cwd,
            real_cwd: spec.real_cwd,
            envs,
            created_at: crate::error::now_rfc3339(),
            seq: self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            lazy_start: spec.lazy_start,
            shell: self.shell.clone(),
            env: Arc::clone(&self.env),
            registry: Arc::downgrade(&self.registry),
            inner: Mutex::new(Inner {
                phase: Phase::NotStarted,
                size: spec.size,
                scrollback: Scrollback::default(),
                clients: Vec::new(),
            }),
        });
        {
            let mut map = self.registry.lock();
            if map.get(&spec.id).is_some_and(|s| s.is_live()) {
                return Err(ToolboxError::Conflict(format!(
                    "PTY session with ID '{}' already exists",
                    spec.id
                )));
            }
            map.remove(&spec.id);
            if map.len() >= MAX_SESSIONS {
                let oldest_ended = map
                    .values()
                    .filter(|s| !s.is_live())
                    .min_by_key(|s| s.seq)
                    .map(|s| s.id.clone());
                let Some(evict) = oldest_ended else {
                    return Err(ToolboxError::Conflict(format!(
                        "too many PTY sessions (at most {MAX_SESSIONS}); kill one first"
                    )));
                };
                map.remove(&evict);
            }
            // Registered before the start, so the id is taken while the shell spawns.
            map.insert(spec.id.clone(), Arc::clone(&session));
        }
        if spec.lazy_start {
            session.remove_after(LAZY_RETENTION, Expiry::NeverStarted);
        } else if let Err(e) = session.ensure_started() {
            let mut map = self.registry.lock();
            if map.get(&spec.id).is_some_and(|s| Arc::ptr_eq(s, &session)) {
                map.remove(&spec.id);
            }
            return Err(e);
        }
        Ok(session)
    }

    pub fn get(&self, id: &str) -> Result<Arc<PtySession>> {
        self.registry
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| ToolboxError::NotFound(format!("PTY session '{id}' not found")))
    }

    /// Every session, in creation order.
    pub fn list(&self) -> Vec<PtySessionInfo> {
        let mut sessions: Vec<_> = self.registry.lock().values().cloned().collect();
        sessions.sort_by_key(|s| s.seq);
        sessions.iter().map(|s| s.info()).collect()
    }

    /// Removes a session and kills its processes.
    pub fn kill(&self, id: &str) -> Result<()> {
        let session = self
            .registry
            .lock()
            .remove(id)
            .ok_or_else(|| ToolboxError::NotFound(format!("PTY session '{id}' not found")))?;
        session.kill();
        tracing::debug!(session = ?id, "pty session killed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrollback_keeps_the_last_bytes() {
        let mut s = Scrollback::default();
        s.push(b"hello ");
        s.push(b"world");
        assert_eq!(&s.snapshot()[..], b"hello world");
        let big: Vec<u8> = (0..SCROLLBACK_BYTES + 10)
            .map(|i| (i % 251) as u8)
            .collect();
        s.push(&big);
        let snap = s.snapshot();
        assert_eq!(snap.len(), SCROLLBACK_BYTES);
        assert_eq!(&snap[..], &big[10..]);
        s.push(b"xy");
        let snap = s.snapshot();
        assert_eq!(snap.len(), SCROLLBACK_BYTES);
        assert_eq!(&snap[SCROLLBACK_BYTES - 2..], b"xy");
        assert_eq!(snap[0], big[12]);
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(Size::new(80, 24).is_ok());
        assert!(Size::new(1000, 1000).is_ok());
        for (c, r) in [(0, 24), (80, 0), (1001, 24), (80, 1001)] {
            let e = Size::new(c, r).expect_err("out of bounds");
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn exit_reasons() {
        assert_eq!(Exit::new(0).reason, None);
        assert_eq!(Exit::new(3).reason.as_deref(), Some("non-zero exit"));
        assert_eq!(Exit::new(130).reason.as_deref(), Some("Ctrl+C"));
        assert_eq!(Exit::new(137).reason.as_deref(), Some("SIGKILL"));
        assert_eq!(Exit::new(129).reason.as_deref(), Some("signal 1"));
    }
}
