//! `POST /process/execute` and `POST /process/code-run`: one-shot commands.
//!
//! Simple commands (no shell syntax) are spawned directly, which keeps `true` at about a
//! millisecond; anything else goes through the shell with `-c`.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use cove_api_types::toolbox::{
    CodeRunArtifacts, CodeRunRequest, CodeRunResponse, ExecuteRequest, ExecuteResponse,
};
use tokio::io::{AsyncRead, AsyncReadExt};

#[cfg(feature = "openapi")]
use crate::error::DaemonErrors;
use crate::error::{Result, ToolboxError};
use crate::output::{OutputTail, Stream, TAIL_BYTES};
use crate::server::{AppState, JsonBody};

/// Shell keywords and builtins that change shell state or only exist inside a shell.
const SHELL_WORDS: &[&str] = &[
    "cd", "export", "source", ".", "alias", "unalias", "unset", "set", "exit", "eval", "exec",
    "if", "for", "while", "until", "case", "function", "select", "time", "ulimit", "umask", "read",
    "wait", "trap", "let", "declare", "local", "typeset", "type", "command", "builtin", "hash",
    "history", "jobs", "fg", "bg", "readonly", "shift", "getopts", "return", "break", "continue",
    "[[", "!", "{", "}",
];

/// The argv to spawn directly, or `None` when the command needs a shell.
pub fn direct_argv(command: &str) -> Option<Vec<&str>> {
    const META: &[char] = &[
        '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[', ']', '#', '~',
        '=', '{', '}', '%', '!', '\n', '\r',
    ];
    if command.contains(META) {
        return None;
    }
    let argv: Vec<&str> = command.split_whitespace().collect();
    let first = *argv.first()?;
    if SHELL_WORDS.contains(&first) || (first.contains('/') && !first.starts_with('/')) {
        return None;
    }
    Some(argv)
}

/// The answer to an empty or blank `command`, in the words of Daytona's session route.
pub const EMPTY_COMMAND: &str = "command cannot be empty";

/// Default bound of `POST /process/execute` when the request has no `timeout` (or 0): the
/// 360 s Daytona's daemon has long applied. (`code-run` has no default, as in Daytona.)
pub const DEFAULT_EXECUTE_TIMEOUT: Duration = Duration::from_secs(360);
const READ_BYTES: usize = 64 * 1024;

/// Exit code and captured output of a finished process.
#[derive(Debug, Default)]
pub struct Output {
    pub exit_code: i32,
    /// stdout and stderr interleaved in arrival order, bounded by the capture's cap.
    pub log: OutputTail,
}

impl Output {
    /// An `Output` for a command that could not start: `message` as its stderr, exit code −1.
    fn failed(message: String) -> Self {
        let mut log = OutputTail::default();
        log.push(Stream::Stderr, message.as_bytes());
        Self { exit_code: -1, log }
    }
}

async fn read_some(
    reader: &mut Option<impl AsyncRead + Unpin>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match reader {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Reads both pipes to their end into one bounded buffer. Stdout is polled first (`biased`):
/// when both pipes hold data by the time the reader wakes (a loaded machine), what a command
/// wrote to stdout before stderr is not reordered at random; two pipes cannot order writes that
/// land between two reads exactly (Daytona's `result` has the same limit only per pipe buffer).
async fn capture(
    out: impl AsyncRead + Unpin,
    err: impl AsyncRead + Unpin,
    cap: usize,
) -> std::io::Result<OutputTail> {
    let mut log = OutputTail::new(cap);
    let (mut out, mut err) = (Some(out), Some(err));
    let (mut a, mut b) = (vec![0u8; READ_BYTES], vec![0u8; READ_BYTES]);
    while out.is_some() || err.is_some() {
        tokio::select! {
            biased;
            n = read_some(&mut out, &mut a) => match n? {
                0 => out = None,
                n => log.push(Stream::Stdout, &a[..n]),
            },
            n = read_some(&mut err, &mut b) => match n? {
                0 => err = None,
                n => log.push(Stream::Stderr, &b[..n]),
            },
        }
    }
    Ok(log)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn io_error(context: &'static str) -> impl Fn(std::io::Error) -> ToolboxError {
    move |source| ToolboxError::Io {
        context: context.into(),
        source,
    }
}

/// Runs `cmd` to completion (or kills its process group after `timeout`), keeping the last
/// `cap` bytes of its output.
pub async fn run(
    cmd: tokio::process::Command,
    timeout: Option<Duration>,
    cap: usize,
) -> Result<Output> {
    run_with_input(cmd, None, timeout, cap).await
}

/// [`run`] with `input` written to the command's stdin (then closed); without it stdin is
/// `/dev/null`. Used for secrets that must not appear in argv (`git credential approve`).
pub async fn run_with_input(
    mut cmd: tokio::process::Command,
    input: Option<Vec<u8>>,
    timeout: Option<Duration>,
    cap: usize,
) -> Result<Output> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(io_error("spawn"))?;
    let pid = child.id();
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ToolboxError::Internal("child pipes missing".into()));
    };
    let stdin = child.stdin.take();
    let work = async move {
        let feed = async move {
            if let (Some(mut stdin), Some(input)) = (stdin, input) {
                use tokio::io::AsyncWriteExt;
                // A command that exits without reading its input is not an error here.
                let _ = stdin.write_all(&input).await;
            }
        };
        let (log, status, ()) = tokio::join!(capture(out, err, cap), child.wait(), feed);
        let log = log.map_err(io_error("reading the output"))?;
        let status = status.map_err(io_error("wait"))?;
        Ok::<_, ToolboxError>(Output {
            exit_code: exit_code(status),
            log,
        })
    };
    let Some(t) = timeout else {
        return work.await;
    };
    match tokio::time::timeout(t, work).await {
        Ok(r) => r,
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            Err(ToolboxError::Timeout(t.as_secs()))
        }
    }
}

/// `program args` in `cwd`, with `POST /env`'s changes, then the request's own `envs`.
fn base_command(
    st: &AppState,
    program: &Path,
    args: &[&str],
    cwd: &Path,
    envs: Option<&BTreeMap<String, String>>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    st.env.apply(cmd.as_std_mut());
    cmd.args(args).current_dir(cwd);
    if let Some(envs) = envs {
        cmd.envs(envs);
    }
    cmd
}

fn timeout_of(secs: Option<u64>) -> Option<Duration> {
    secs.filter(|s| *s > 0).map(Duration::from_secs)
}

/// Outcome of a command line: a spawn failure becomes exit code −1 with the error as output.
fn started_or_failed(out: Result<Output>, program: &str) -> Result<Output> {
    match out {
        Err(ToolboxError::Io { source, .. }) => Ok(Output::failed(format!("{program}: {source}"))),
        other => other,
    }
}

/// Runs a command line: directly when it has no shell syntax, else via `shell -c`.
pub async fn run_command_line(
    st: &AppState,
    command: &str,
    cwd: &Path,
    envs: Option<&BTreeMap<String, String>>,
    timeout: Option<Duration>,
) -> Result<Output> {
    if let Some(argv) = direct_argv(command) {
        let cmd = base_command(st, Path::new(argv[0]), &argv[1..], cwd, envs);
        match run(cmd, timeout, TAIL_BYTES).await {
            // Not found: let the shell produce its usual 127 and message.
            Err(ToolboxError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && cwd.is_dir() => {}
            other => return other,
        }
    }
    let cmd = base_command(st, &st.shell, &["-c", command], cwd, envs);
    run(cmd, timeout, TAIL_BYTES).await
}

fn cwd_of(st: &AppState, cwd: Option<&str>) -> Result<PathBuf> {
    let dir = st.paths.resolve_or_work_dir(cwd)?;
    if !dir.is_dir() {
        return Err(ToolboxError::BadRequest(format!(
            "working directory does not exist: {}",
            cwd.unwrap_or_default()
        )));
    }
    Ok(dir)
}

/// `POST /process/execute`
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/process/execute",
    tag = "process",
    operation_id = "ExecuteCommand",
    summary = "Run a command and wait for it",
    request_body = ExecuteRequest,
    responses((status = 200, description = "Exit code and output (the last 4 MiB, after a marker if longer)", body = ExecuteResponse), DaemonErrors)
))]
pub async fn execute(
    State(st): State<Arc<AppState>>,
    JsonBody(req): JsonBody<ExecuteRequest>,
) -> Result<Json<ExecuteResponse>> {
    if req.command.trim().is_empty() {
        return Err(ToolboxError::BadRequest(EMPTY_COMMAND.into()));
    }
    let cwd = cwd_of(&st, req.cwd.as_deref())?;
    let _busy = crate::busy::Activity::begin(&st);
    let started = std::time::Instant::now();
    let timeout = timeout_of(req.timeout).unwrap_or(DEFAULT_EXECUTE_TIMEOUT);
    let out = run_command_line(&st, &req.command, &cwd, req.envs.as_ref(), Some(timeout)).await;
    let out = started_or_failed(out, &st.shell.to_string_lossy())?;
    tracing::debug!(
        exit_code = out.exit_code,
        output_bytes = out.log.total(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "process executed"
    );
    let text = out.log.render();
    Ok(Json(ExecuteResponse {
        exit_code: out.exit_code,
        result: text.combined,
        stdout: text.stdout,
        stderr: text.stderr,
    }))
}

/// `POST /process/code-run`: python (default), javascript or typescript source.
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/process/code-run",
    tag = "process",
    operation_id = "CodeRun",
    summary = "Run a snippet of code and wait for it",
    request_body = CodeRunRequest,
    responses((status = 200, description = "Exit code and output", body = CodeRunResponse), DaemonErrors)
))]
pub async fn code_run(
    State(st): State<Arc<AppState>>,
    JsonBody(req): JsonBody<CodeRunRequest>,
) -> Result<Json<CodeRunResponse>> {
    let language = req.language.as_deref().unwrap_or("python");
    let (program, mut args): (&str, Vec<&str>) = match language {
        "python" | "" => ("python3", vec!["-c", &req.code]),
        "javascript" => ("node", vec!["-e", &req.code, "--"]),
        // The default image has tsx on PATH; elsewhere npx fetches it (needs the npm registry).
        "typescript" if on_path("tsx") => ("tsx", vec!["-e", &req.code, "--"]),
        "typescript" => ("npx", vec!["--yes", "tsx", "-e", &req.code, "--"]),
        "sh" | "bash" | "shell" => (
            st.shell.to_str().unwrap_or("/bin/sh"),
            vec!["-c", &req.code, "sh"],
        ),
        other => {
            return Err(ToolboxError::BadRequest(format!(
                "unsupported language: {other}"
            )));
        }
    };
    let argv = req.argv.clone().unwrap_or_default();
    args.extend(argv.iter().map(String::as_str));
    let cwd = cwd_of(&st, None)?;
    let _busy = crate::busy::Activity::begin(&st);
    let cmd = base_command(&st, Path::new(program), &args, &cwd, req.envs.as_ref());
    let out = run(cmd, timeout_of(req.timeout), TAIL_BYTES).await;
    let out = started_or_failed(out, program)?;
    Ok(Json(CodeRunResponse {
        exit_code: out.exit_code,
        result: out.log.text(None),
        artifacts: CodeRunArtifacts::default(),
    }))
}

/// Whether an executable `name` is in one of `$PATH`'s directories.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_only() {
        assert!(on_path("sh"));
        assert!(!on_path("cove-no-such-program-on-path"));
    }

    #[test]
    fn direct_only_for_plain_commands() {
        assert_eq!(direct_argv("true"), Some(vec!["true"]));
        assert_eq!(direct_argv("ls  -la /tmp"), Some(vec!["ls", "-la", "/tmp"]));
        assert_eq!(direct_argv("echo $HOME"), None);
        assert_eq!(direct_argv("a | b"), None);
        assert_eq!(direct_argv("cd /tmp"), None);
        assert_eq!(direct_argv("FOO=1 env"), None);
        assert_eq!(direct_argv("   "), None);
    }
}
