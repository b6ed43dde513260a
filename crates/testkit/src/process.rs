//! A child process owned by a test: started with piped output, waited for by a readiness line,
//! stopped by its PID (SIGTERM with a deadline, or SIGKILL on drop).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::procfs::{self, Usage};

/// Where a process's stderr goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stderr {
    /// Kept (readable with `stderr()`) and copied to the test's stderr, which the test harness
    /// shows when the test fails.
    #[default]
    Echo,
    /// Kept only.
    Quiet,
    /// Appended to this file (benchmarks keep their logs); `stderr()` reads the file back.
    File(PathBuf),
}

/// Most stderr text kept in memory; older text is dropped first.
const STDERR_KEEP: usize = 4 << 20;

/// A process's stderr as captured so far.
#[derive(Debug, Clone)]
pub(crate) enum StderrSink {
    Memory(Arc<Mutex<String>>),
    File(PathBuf),
}

impl StderrSink {
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Memory(buf) => buf.lock().map(|b| b.clone()).unwrap_or_default(),
            Self::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
        }
    }

    fn collect(stream: ChildStderr, echo: bool) -> (Self, JoinHandle<()>) {
        let buf = Arc::new(Mutex::new(String::new()));
        let sink = buf.clone();
        let reader = std::thread::spawn(move || pump_stderr(stream, &sink, echo));
        (Self::Memory(buf), reader)
    }
}

fn pump_stderr(mut stream: ChildStderr, sink: &Mutex<String>, echo: bool) {
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&chunk[..n]);
        if echo {
            // `eprint!` goes to the test's captured output (inherited by spawned threads).
            eprint!("{text}");
        }
        let Ok(mut buf) = sink.lock() else { break };
        buf.push_str(&text);
        if buf.len() > STDERR_KEEP {
            let mut cut = buf.len() - STDERR_KEEP / 2;
            while !buf.is_char_boundary(cut) {
                cut += 1;
            }
            buf.drain(..cut);
        }
    }
}

/// The lines a process prints on stdout, read on a thread of their own so the process never
/// blocks on a full pipe (lines nobody waits for any more are read and dropped).
pub(crate) struct StdoutLines {
    rx: Receiver<String>,
}

/// How waiting for a line ended without finding it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoLine {
    TimedOut(Vec<String>),
    Closed(Vec<String>),
}

impl StdoutLines {
    pub(crate) fn read(stdout: ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // A receiver that is gone only means nobody waits any more: keep draining.
                let _ = tx.send(line);
            }
        });
        Self { rx }
    }

    /// Every line up to and including the first one `done` accepts.
    pub(crate) fn until(
        &self,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, NoLine> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let last = done(line.trim_end());
                    lines.push(line);
                    if last {
                        return Ok(lines);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Err(NoLine::TimedOut(lines)),
                Err(RecvTimeoutError::Disconnected) => return Err(NoLine::Closed(lines)),
            }
        }
    }
}

/// A started child process; SIGKILLed (by PID) and reaped on drop unless it already exited.
pub struct Proc {
    child: Child,
    what: &'static str,
    stdout: StdoutLines,
    stderr: StderrSink,
    /// The thread copying a piped stderr; it ends when the pipe closes.
    stderr_reader: Option<JoinHandle<()>>,
}

/// How long a process's stderr may stay open after it exited (a child of its own may hold it).
const STDERR_SETTLE: Duration = Duration::from_secs(2);

impl Proc {
    /// Starts `cmd` with stdin closed, stdout piped, stderr as asked.
    pub fn spawn(what: &'static str, cmd: &mut Command, stderr: &Stderr) -> Result<Self> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        match stderr {
            Stderr::Echo | Stderr::Quiet => cmd.stderr(Stdio::piped()),
            Stderr::File(path) => cmd.stderr(append(path)?),
        };
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            what: format!("{what} ({cmd:?})"),
            source,
        })?;
        let (stderr, stderr_reader) = match (stderr, child.stderr.take()) {
            (Stderr::File(path), _) => (StderrSink::File(path.clone()), None),
            (mode, Some(pipe)) => {
                let (sink, reader) = StderrSink::collect(pipe, *mode == Stderr::Echo);
                (sink, Some(reader))
            }
            (_, None) => (StderrSink::Memory(Arc::default()), None),
        };
        let stdout = match child.stdout.take() {
            Some(out) => StdoutLines::read(out),
            None => StdoutLines {
                rx: mpsc::channel().1,
            },
        };
        Ok(Self {
            child,
            what,
            stdout,
            stderr,
            stderr_reader,
        })
    }

    /// Waits for the stdout line `done` accepts; returns every line up to it. On failure the
    /// process is killed and the error carries its output.
    pub fn wait_for_line(
        &mut self,
        want: &'static str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let (exited, stdout) = match self.stdout.until(timeout, done) {
            Ok(lines) => return Ok(lines),
            Err(NoLine::TimedOut(lines)) => (false, lines),
            Err(NoLine::Closed(lines)) => (true, lines),
        };
        self.kill();
        self.settle_stderr();
        Err(Error::NotReady {
            what: self.what,
            want,
            exited,
            waited: timeout,
            stdout,
            stderr: self.stderr(),
        })
    }

    /// The PID (of the process that ran, even once it exited).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has not exited yet.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Once it exited: waits (briefly) until its stderr is read to the end.
    fn settle_stderr(&mut self) {
        let Some(reader) = self.stderr_reader.take() else {
            return;
        };
        let deadline = Instant::now() + STDERR_SETTLE;
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if reader.is_finished() {
            let _ = reader.join();
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; returns its status with its
    /// whole stderr, or `None` (it is then killed).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<(ExitStatus, String)> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    self.kill();
                    return None;
                }
            }
        };
        self.settle_stderr();
        Some((status, self.stderr()))
    }

    /// Memory and CPU time, while it runs.
    pub fn usage(&self) -> Option<Usage> {
        procfs::usage(self.pid())
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after). Returns the exit status
    /// and how long the exit took (zero when it had exited already); `None` if it cannot be
    /// waited for.
    pub fn terminate(&mut self, grace: Duration) -> Option<(ExitStatus, Duration)> {
        let child = &mut self.child;
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, Duration::ZERO));
        }
        let started = Instant::now();
        signal(child.id(), rustix::process::Signal::TERM);
        while started.elapsed() < grace {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let status = child.wait().ok()?;
        Some((status, started.elapsed()))
    }

    /// SIGKILL (by PID, only while it has not been reaped) and reap.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `sig` to `pid`.
pub(crate) fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn append(path: &PathBuf) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Io {
            what: "cannot open the log file",
            path: path.clone(),
            source,
        })
}

/// Runs `cmd` to completion with stdout captured and stderr shown; fails unless it succeeds.
pub(crate) fn run(what: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| Error::Spawn {
            what: what.to_owned(),
            source,
        })?;
    let _ = std::io::stderr().flush();
    if !out.status.success() {
        return Err(Error::Command {
            what: what.to_owned(),
            status: out.status,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, stderr: &Stderr) -> Proc {
        Proc::spawn("sh", Command::new("sh").args(["-c", script]), stderr).expect("sh")
    }

    #[test]
    fn waits_for_the_line_and_keeps_the_ones_before() {
        let mut p = sh("echo one; echo two; echo ready; sleep 30", &Stderr::Quiet);
        let lines = p
            .wait_for_line("ready", Duration::from_secs(10), |l| l == "ready")
            .expect("ready");
        assert_eq!(lines, ["one", "two", "ready"]);
        assert!(p.running());
        let pid = p.pid();
        drop(p);
        // Killed and reaped by the drop: the PID is gone.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn an_exit_before_the_line_is_reported_with_stdout_and_stderr() {
        let mut p = sh("echo partial; echo boom >&2; exit 3", &Stderr::Quiet);
        let e = p
            .wait_for_line("ready", Duration::from_secs(10), |l| l == "ready")
            .expect_err("no ready line");
        match &e {
            Error::NotReady {
                exited,
                stdout,
                want,
                ..
            } => {
                assert!(*exited);
                assert_eq!(stdout, &["partial"]);
                assert_eq!(*want, "ready");
            }
            other => panic!("unexpected {other:?}"),
        }
        // Read to the end before the error was made: it carries the whole stderr.
        assert!(e.to_string().contains("boom"), "{e}");
        assert_eq!(p.stderr(), "boom\n");
    }

    #[test]
    fn a_silent_process_times_out_and_is_killed() {
        let mut p = sh("sleep 30", &Stderr::Quiet);
        let e = p
            .wait_for_line("ready", Duration::from_millis(200), |l| l == "ready")
            .expect_err("timeout");
        assert!(matches!(e, Error::NotReady { exited: false, .. }), "{e}");
        assert!(!p.running());
    }

    #[test]
    fn terminate_sends_sigterm_by_pid_and_reports_the_exit() {
        let mut p = sh(
            "trap 'exit 7' TERM; echo up; while true; do sleep 0.05; done",
            &Stderr::Quiet,
        );
        p.wait_for_line("up", Duration::from_secs(10), |l| l == "up")
            .expect("up");
        let (status, took) = p.terminate(Duration::from_secs(10)).expect("stopped");
        assert_eq!(status.code(), Some(7), "the TERM trap ran");
        assert!(took < Duration::from_secs(10));
        // Stopping again is a no-op that reports the same exit.
        assert_eq!(
            p.terminate(Duration::from_secs(1)).map(|(s, _)| s.code()),
            Some(Some(7))
        );
    }

    #[test]
    fn wait_exit_returns_the_status_and_the_whole_stderr() {
        let mut p = sh("echo first >&2; echo last >&2; exit 4", &Stderr::Quiet);
        let (status, stderr) = p.wait_exit(Duration::from_secs(10)).expect("exits");
        assert_eq!((status.code(), stderr.as_str()), (Some(4), "first\nlast\n"));
        let mut p = sh("sleep 30", &Stderr::Quiet);
        assert!(p.wait_exit(Duration::from_millis(100)).is_none());
        assert!(!p.running(), "killed after the wait");
    }

    #[test]
    fn stderr_to_a_file_is_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("p.log");
        let mut p = sh("echo to-the-log >&2; echo done", &Stderr::File(log.clone()));
        p.wait_for_line("done", Duration::from_secs(10), |l| l == "done")
            .expect("done");
        p.terminate(Duration::from_secs(5));
        assert_eq!(p.stderr(), "to-the-log\n");
    }
}
