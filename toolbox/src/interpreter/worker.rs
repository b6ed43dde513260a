//! One context's interpreter process: `python3 -c <driver.py> <results fifo>` in its own
//! process group, with requests on its stdin, the user code's output on its stdout and stderr,
//! and the driver's results on a FIFO (the protocol is at the top of `driver.py`).
//!
//! The results come through a FIFO rather than a fourth inherited descriptor because the
//! daemon spawns without `pre_exec`; the daemon opens it read-write, so it never reads an EOF
//! before the driver opened it, and learns of the driver's death from `wait` instead.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

/// The driver, embedded: run with `python3 -c`.
const DRIVER: &str = include_str!("driver.py");
/// How long a new interpreter may take to report ready.
const START_WAIT: Duration = Duration::from_secs(30);
/// Longest line the driver may write on the results FIFO (its error fields are cut at 256 KiB).
const MAX_RESULT_LINE: usize = 4 << 20;
/// How long writing a request may block (the driver reads them as soon as it is idle).
const REQUEST_WAIT: Duration = Duration::from_secs(30);

/// Why an interpreter could not be started or talked to.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the interpreter exited at start ({status}){stderr}")]
    Exited { status: String, stderr: String },
    #[error("the interpreter did not start within {} s", START_WAIT.as_secs())]
    StartTimeout,
    #[error("the interpreter broke the protocol: {0}")]
    Protocol(String),
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> WorkerError {
    move |source| WorkerError::Io { context, source }
}

/// What the driver reports for one request.
#[derive(Debug, Clone, Deserialize)]
pub struct CellResult {
    /// `ok`, `error` or `interrupted` (a `KeyboardInterrupt` ended the cell).
    pub status: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub traceback: String,
}

#[derive(Debug, Deserialize)]
struct Ready {
    ready: bool,
    #[serde(default)]
    version: String,
}

/// Reads the results FIFO line by line (cancel-safe: a line is taken only whole).
pub struct Results {
    fifo: pipe::Receiver,
    buf: Vec<u8>,
}

impl Results {
    /// The next line, or an error when the driver wrote garbage or an over-long line.
    pub async fn next_line(&mut self) -> Result<Vec<u8>, WorkerError> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let rest = self.buf.split_off(pos + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                return Ok(line);
            }
            if self.buf.len() > MAX_RESULT_LINE {
                return Err(WorkerError::Protocol(format!(
                    "a result line longer than {MAX_RESULT_LINE} bytes"
                )));
            }
            let n = self
                .fifo
                .read(&mut chunk)
                .await
                .map_err(io("reading results"))?;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next cell result.
    pub async fn next_result(&mut self) -> Result<CellResult, WorkerError> {
        let line = self.next_line().await?;
        serde_json::from_slice(&line).map_err(|e| WorkerError::Protocol(e.to_string()))
    }

    /// A result the driver wrote before it died, if one is waiting (non-blocking).
    pub fn leftover(&mut self) -> Option<CellResult> {
        let mut chunk = [0u8; 8192];
        while self.buf.len() <= MAX_RESULT_LINE {
            match rustix::io::read(self.fifo.as_fd(), &mut chunk) {
                Ok(n) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let pos = self.buf.iter().position(|b| *b == b'\n')?;
        serde_json::from_slice(&self.buf[..pos]).ok()
    }
}

/// A running interpreter. Dropping it kills its process group.
pub struct Worker {
    pub child: Child,
    pid: Option<Pid>,
    requests: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
    pub results: Results,
    fifo_path: PathBuf,
    /// The interpreter's Python version (`3.11.7`).
    pub version: String,
}

impl Worker {
    /// Starts `python` in `cwd` and waits until the driver reports ready.
    pub async fn spawn(
        python: &Path,
        cwd: &Path,
        fifo_path: PathBuf,
        env: &crate::env::ProcessEnv,
    ) -> Result<Self, WorkerError> {
        let _ = std::fs::remove_file(&fifo_path);
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo_path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io("creating the results fifo")(e.into()))?;
        let fifo = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&fifo_path)
            .map_err(io("opening the results fifo"));
        let fifo = match fifo {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&fifo_path);
                return Err(e);
            }
        };
        let mut cmd = tokio::process::Command::new(python);
        env.apply(cmd.as_std_mut());
        let spawned = cmd
            .arg("-c")
            .arg(DRIVER)
            .arg(&fifo_path)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&fifo_path);
                return Err(io("starting python3")(e));
            }
        };
        let pid = child.id().and_then(|p| Pid::from_raw(p as i32));
        let (Some(requests), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(WorkerError::Protocol(
                "the child's pipes are missing".into(),
            ));
        };
        let mut worker = Self {
            child,
            pid,
            requests,
            stdout,
            stderr,
            results: Results {
                fifo,
                buf: Vec::new(),
            },
            fifo_path,
            version: String::new(),
        };
        worker.version = worker.await_ready().await?;
        tracing::debug!(pid = ?worker.pid, version = %worker.version, cwd = ?cwd, "interpreter started");
        Ok(worker)
    }

    async fn await_ready(&mut self) -> Result<String, WorkerError> {
        let line = tokio::select! {
            line = self.results.next_line() => line?,
            status = self.child.wait() => {
                let status = status.map_err(io("waiting for python3"))?;
                return Err(self.exited_at_start(status));
            }
            _ = tokio::time::sleep(START_WAIT) => return Err(WorkerError::StartTimeout),
        };
        match serde_json::from_slice::<Ready>(&line) {
            Ok(r) if r.ready => Ok(r.version),
            _ => Err(WorkerError::Protocol(format!(
                "expected the ready line, got {:?}",
                String::from_utf8_lossy(&line)
            ))),
        }
    }

    fn exited_at_start(&mut self, status: ExitStatus) -> WorkerError {
        let mut buf = vec![0u8; 2048];
        let n = rustix::io::read(self.stderr.as_fd(), &mut buf[..]).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
        WorkerError::Exited {
            status: status.to_string(),
            stderr: if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            },
        }
    }

    /// Hands the driver one cell.
    pub async fn send(
        &mut self,
        code: &str,
        envs: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), WorkerError> {
        let mut line = serde_json::to_vec(&serde_json::json!({ "code": code, "envs": envs }))
            .map_err(|e| WorkerError::Protocol(e.to_string()))?;
        line.push(b'\n');
        match tokio::time::timeout(REQUEST_WAIT, self.requests.write_all(&line)).await {
            Ok(r) => r.map_err(io("writing the request")),
            Err(_) => Err(WorkerError::Protocol(
                "the interpreter does not read its requests".into(),
            )),
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGINT to the interpreter alone (its subprocesses are left to it): a `KeyboardInterrupt`
    /// in the running cell.
    pub fn interrupt(&self) {
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process(pid, Signal::INT);
        }
    }

    /// SIGKILL to the whole process group (the interpreter and what it started).
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        let _ = self.child.start_kill();
    }

    /// The interpreter's process id.
    pub fn pid(&self) -> Option<i32> {
        self.pid.map(|p| Pid::as_raw(Some(p)))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.fifo_path);
    }
}

/// Reads what `fd` holds right now without waiting (the descriptor is non-blocking): tokio's
/// readiness may lag behind data written just before a result, which must not be lost.
pub fn read_now(fd: impl AsFd, buf: &mut [u8]) -> usize {
    rustix::io::read(fd, buf).unwrap_or(0)
}
