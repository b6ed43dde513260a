//! The session shells: one `bash` (or `sh`) per session reading a script from the daemon on
//! stdin. Every command gets three FIFOs in the session's state dir: its stdin (`in`, opened
//! read-write so writers never block), stdout and stderr (read by the daemon as they arrive).
//! After the command the shell prints a marker line with the exit code on its own stdout, which
//! only the daemon reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cove_api_types::toolbox::Session as SessionDto;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use super::log::CommandLog;
use crate::env::ProcessEnv;
use crate::error::{Result, ToolboxError};
use crate::output::Stream;

const MARKER: &str = "\x1eCOVE_DONE";
const READ_BYTES: usize = 64 * 1024;

/// Exit-code senders of commands waiting for their marker, by command id.
type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<i32>>>>;

pub(crate) struct Session {
    id: String,
    dir: PathBuf,
    pgid: Option<rustix::process::Pid>,
    stdin: tokio::sync::Mutex<Option<tokio::process::ChildStdin>>,
    commands: Mutex<Vec<Arc<CommandLog>>>,
    waiting: Waiting,
    ended: Arc<AtomicBool>,
}

impl Session {
    pub(crate) fn dto(&self) -> SessionDto {
        SessionDto {
            session_id: self.id.clone(),
            commands: self
                .commands
                .lock()
                .map(|c| c.iter().map(|c| c.dto()).collect())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn find(&self, cid: &str) -> Option<Arc<CommandLog>> {
        self.commands
            .lock()
            .ok()?
            .iter()
            .find(|c| c.id == cid)
            .cloned()
    }

    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Ends the command `cid` with `code` (if it still waits for its marker).
    fn settle(&self, cid: &str, code: i32) {
        let tx = self.waiting.lock().ok().and_then(|mut w| w.remove(cid));
        if let Some(tx) = tx {
            let _ = tx.send(code);
        }
    }
}

/// All sessions of the daemon, plus the entrypoint's log.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    state_dir: PathBuf,
    shell: PathBuf,
    cwd: PathBuf,
    entrypoint: Mutex<Option<Arc<CommandLog>>>,
    /// `POST /env`'s changes, applied to each new session's shell.
    env: Arc<ProcessEnv>,
}

/// Reads the shell's stdout: routes exit codes to waiting commands; at EOF the session ended and
/// the commands still running end with the shell's status.
async fn read_markers(
    sid: String,
    mut child: tokio::process::Child,
    waiting: Waiting,
    ended: Arc<AtomicBool>,
) {
    if let Some(stdout) = child.stdout.take() {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Some(rest) = line.strip_prefix(MARKER) else {
                continue;
            };
            let mut it = rest.split_whitespace();
            if let (Some(cid), Some(code)) = (it.next(), it.next()) {
                let tx = waiting.lock().ok().and_then(|mut w| w.remove(cid));
                if let Some(tx) = tx {
                    let _ = tx.send(code.parse().unwrap_or(-1));
                }
            }
        }
    }
    let status = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
    ended.store(true, Ordering::SeqCst);
    tracing::debug!(session = ?sid, status, "session shell exited");
    let rest: Vec<_> = waiting
        .lock()
        .map(|mut w| w.drain().collect())
        .unwrap_or_default();
    for (_, tx) in rest {
        let _ = tx.send(status);
    }
}

impl Sessions {
    pub fn new(state_dir: PathBuf, shell: PathBuf, cwd: PathBuf, env: Arc<ProcessEnv>) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            state_dir,
            shell,
            cwd,
            entrypoint: Mutex::new(None),
            env,
        }
    }

    pub fn set_entrypoint(&self, log: Arc<CommandLog>) {
        if let Ok(mut e) = self.entrypoint.lock() {
            *e = Some(log);
        }
    }

    pub(crate) fn entrypoint(&self) -> Result<Arc<CommandLog>> {
        self.entrypoint
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .ok_or_else(|| ToolboxError::SessionNotFound("entrypoint".into()))
    }

    pub(crate) fn get(&self, sid: &str) -> Result<Arc<Session>> {
        self.map
            .lock()
            .ok()
            .and_then(|m| m.get(sid).cloned())
            .ok_or_else(|| ToolboxError::SessionNotFound(sid.to_owned()))
    }

    /// Every session, sorted by id.
    pub(crate) fn list(&self) -> Vec<SessionDto> {
        let sessions: Vec<_> = self
            .map
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut out: Vec<_> = sessions.iter().map(|s| s.dto()).collect();
        out.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        out
    }

    /// Session commands that have not exited yet (the entrypoint aside).
    pub(crate) fn running_commands(&self) -> usize {
        let sessions: Vec<_> = self
            .map
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        sessions
            .iter()
            .filter_map(|s| s.commands.lock().ok().map(|c| c.clone()))
            .flatten()
            .filter(|c| c.exit_code().is_none())
            .count()
    }

    fn exists(&self, sid: &str) -> bool {
        self.map
            .lock()
            .map(|m| m.contains_key(sid))
            .unwrap_or(false)
    }

    fn spawn_shell(&self) -> Result<tokio::process::Child> {
        let mut cmd = tokio::process::Command::new(&self.shell);
        self.env.apply(cmd.as_std_mut());
        if self.shell.ends_with("bash") {
            cmd.args(["--noprofile", "--norc"]);
        }
        cmd.current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        cmd.spawn().map_err(|e| ToolboxError::Io {
            context: format!("starting session shell {}", self.shell.display()),
            source: e,
        })
    }

    pub(crate) async fn create(&self, sid: &str) -> Result<()> {
        if sid.is_empty() || sid == "entrypoint" {
            return Err(ToolboxError::BadRequest(format!(
                "invalid session id: {sid:?}"
            )));
        }
        let conflict = || ToolboxError::Conflict(format!("session already exists: {sid}"));
        if self.exists(sid) {
            return Err(conflict());
        }
        let dir = self
            .state_dir
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).map_err(|e| ToolboxError::Io {
            context: format!("creating session dir {}", dir.display()),
            source: e,
        })?;
        let mut child = self.spawn_shell()?;
        let session = Arc::new(Session {
            id: sid.to_owned(),
            dir,
            pgid: child
                .id()
                .and_then(|p| rustix::process::Pid::from_raw(p as i32)),
            stdin: tokio::sync::Mutex::new(child.stdin.take()),
            commands: Mutex::new(Vec::new()),
            waiting: Arc::default(),
            ended: Arc::new(AtomicBool::new(false)),
        });
        let (waiting, ended) = (session.waiting.clone(), session.ended.clone());
        tokio::spawn(read_markers(sid.to_owned(), child, waiting, ended));
        let mut map = self
            .map
            .lock()
            .map_err(|_| ToolboxError::Internal("session map poisoned".into()))?;
        if map.contains_key(sid) {
            session.kill();
            return Err(conflict());
        }
        map.insert(sid.to_owned(), session);
        tracing::debug!(session = ?sid, "session created");
        Ok(())
    }

    pub(crate) fn remove(&self, sid: &str) -> Result<()> {
        let session = self
            .map
            .lock()
            .ok()
            .and_then(|mut m| m.remove(sid))
            .ok_or_else(|| ToolboxError::SessionNotFound(sid.to_owned()))?;
        session.kill();
        Ok(())
    }

    /// Starts `command` in session `sid`; returns its log immediately.
    pub(crate) async fn exec(&self, sid: &str, command: &str) -> Result<Arc<CommandLog>> {
        let session = self.get(sid)?;
        let gone = || ToolboxError::Gone(format!("session process has exited: {sid}"));
        if session.ended.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let cid = uuid::Uuid::new_v4().to_string();
        let fifos = CommandFifos::create(&session.dir.join(&cid), command)?;
        let log = CommandLog::new(cid.clone(), command.to_owned(), Some(fifos.stdin.clone()));
        let (done_tx, done_rx) = oneshot::channel::<i32>();
        session
            .waiting
            .lock()
            .map_err(|_| ToolboxError::Internal("session waiters poisoned".into()))?
            .insert(cid.clone(), done_tx);
        if let Ok(mut c) = session.commands.lock() {
            c.push(log.clone());
        }
        let line = fifos.script_line(&cid);
        fifos.collect(log.clone(), done_rx)?;
        let mut stdin = session.stdin.lock().await;
        let written = match stdin.as_mut() {
            Some(s) => s.write_all(line.as_bytes()).await.and(s.flush().await),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        };
        if written.is_err() {
            session.settle(&cid, -1);
            return Err(gone());
        }
        Ok(log)
    }
}

/// The files of one session command: its script and the FIFOs of its three streams.
struct CommandFifos {
    script: PathBuf,
    stdin: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl CommandFifos {
    fn create(dir: &Path, command: &str) -> Result<Self> {
        let io = |context: &str| {
            let context = format!("{context} in {}", dir.display());
            move |source| ToolboxError::Io { context, source }
        };
        std::fs::create_dir_all(dir).map_err(io("creating command dir"))?;
        let f = Self {
            script: dir.join("cmd.sh"),
            stdin: dir.join("in"),
            stdout: dir.join("out"),
            stderr: dir.join("err"),
        };
        for p in [&f.stdin, &f.stdout, &f.stderr] {
            rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o600))
                .map_err(|e| io("mkfifo")(e.into()))?;
        }
        std::fs::write(&f.script, format!("{command}\n")).map_err(io("writing command"))?;
        Ok(f)
    }

    /// The line the session shell runs: the script with its redirections, then the marker.
    fn script_line(&self, cid: &str) -> String {
        let q = |p: &Path| shell_quote(&p.to_string_lossy());
        format!(
            ". {} 0<>{} >{} 2>{}; printf '{}%s %s\\n' {} \"$?\"\n",
            q(&self.script),
            q(&self.stdin),
            q(&self.stdout),
            q(&self.stderr),
            MARKER,
            cid
        )
    }

    /// Opens the output FIFOs and feeds them into `log` until the exit code arrives on `done`.
    fn collect(self, log: Arc<CommandLog>, done: oneshot::Receiver<i32>) -> Result<()> {
        // Read-write, so the readers never see EOF and the shell's opens never block.
        let open = |p: &Path| {
            pipe::OpenOptions::new()
                .read_write(true)
                .open_receiver(p)
                .map_err(|source| ToolboxError::Io {
                    context: format!("opening fifo {}", p.display()),
                    source,
                })
        };
        let (rout, rerr) = (open(&self.stdout)?, open(&self.stderr)?);
        let (stop_out_tx, stop_out) = oneshot::channel::<()>();
        let (stop_err_tx, stop_err) = oneshot::channel::<()>();
        let r1 = tokio::spawn(read_fifo(rout, Stream::Stdout, log.clone(), stop_out));
        let r2 = tokio::spawn(read_fifo(rerr, Stream::Stderr, log.clone(), stop_err));
        tokio::spawn(async move {
            let code = done.await.unwrap_or(-1);
            let _ = stop_out_tx.send(());
            let _ = stop_err_tx.send(());
            let _ = r1.await;
            let _ = r2.await;
            log.finish(code);
            for p in [&self.stdout, &self.stderr, &self.stdin] {
                let _ = std::fs::remove_file(p);
            }
        });
        Ok(())
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

async fn read_fifo(
    rx: pipe::Receiver,
    stream: Stream,
    log: Arc<CommandLog>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        tokio::select! {
            biased;
            ready = rx.readable() => {
                if ready.is_err() {
                    return;
                }
                match rx.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => log.push(stream, &buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
            _ = &mut stop => {
                // The command has finished: whatever it wrote is already in the pipe.
                while let Ok(n) = rx.try_read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.push(stream, &buf[..n]);
                }
                return;
            }
        }
    }
}
