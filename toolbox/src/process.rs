//! `POST /process/execute` and `POST /process/code-run`: one-shot commands.
//!
//! Simple commands (no shell syntax) are spawned directly, which keeps `true` at about a
//! millisecond; anything else goes through the shell with `-c`.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use cove_api_types::toolbox::{
    CodeRunArtifacts, CodeRunRequest, CodeRunResponse, ExecuteRequest, ExecuteResponse,
};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Result, ToolboxError};
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

/// Captured output of a finished process.
#[derive(Debug, Default)]
pub struct Output {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// stdout and stderr interleaved in arrival order.
    pub combined: Vec<u8>,
}

async fn pump(
    mut reader: impl AsyncRead + Unpin,
    own: &mut Vec<u8>,
    combined: &Mutex<Vec<u8>>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        own.extend_from_slice(&buf[..n]);
        if let Ok(mut c) = combined.lock() {
            c.extend_from_slice(&buf[..n]);
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Runs `cmd` to completion (or kills its process group after `timeout`).
pub async fn run(mut cmd: tokio::process::Command, timeout: Option<Duration>) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| ToolboxError::Io {
        context: "spawn".into(),
        source: e,
    })?;
    let pid = child.id();
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ToolboxError::Internal("child pipes missing".into()));
    };
    let work = async move {
        let combined = Mutex::new(Vec::new());
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let (a, b, status) = tokio::join!(
            pump(out, &mut stdout, &combined),
            pump(err, &mut stderr, &combined),
            child.wait()
        );
        let io = |context: &str| {
            let context = context.to_owned();
            move |source| ToolboxError::Io { context, source }
        };
        a.map_err(io("reading stdout"))?;
        b.map_err(io("reading stderr"))?;
        let status = status.map_err(io("wait"))?;
        Ok::<_, ToolboxError>(Output {
            exit_code: exit_code(status),
            stdout,
            stderr,
            combined: combined.into_inner().unwrap_or_default(),
        })
    };
    match timeout {
        None => work.await,
        Some(t) => match tokio::time::timeout(t, work).await {
            Ok(r) => r,
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                Err(ToolboxError::Timeout(t.as_secs()))
            }
        },
    }
}

fn base_command(
    program: &Path,
    args: &[&str],
    cwd: &Path,
    envs: Option<&BTreeMap<String, String>>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).current_dir(cwd);
    if let Some(envs) = envs {
        cmd.envs(envs);
    }
    cmd
}

fn timeout_of(secs: Option<u64>) -> Option<Duration> {
    secs.filter(|s| *s > 0).map(Duration::from_secs)
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
        let cmd = base_command(Path::new(argv[0]), &argv[1..], cwd, envs);
        match run(cmd, timeout).await {
            // Not found: let the shell produce its usual 127 and message.
            Err(ToolboxError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && cwd.is_dir() => {}
            other => return other,
        }
    }
    let cmd = base_command(&st.shell, &["-c", command], cwd, envs);
    run(cmd, timeout).await
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
pub async fn execute(
    State(st): State<Arc<AppState>>,
    JsonBody(req): JsonBody<ExecuteRequest>,
) -> Result<Json<ExecuteResponse>> {
    if req.command.trim().is_empty() {
        return Err(ToolboxError::BadRequest("command is empty".into()));
    }
    let cwd = cwd_of(&st, req.cwd.as_deref())?;
    let started = std::time::Instant::now();
    let out = run_command_line(
        &st,
        &req.command,
        &cwd,
        req.envs.as_ref(),
        timeout_of(req.timeout),
    )
    .await;
    let out = match out {
        Ok(o) => o,
        Err(ToolboxError::Io { source, .. }) => Output {
            exit_code: -1,
            combined: source.to_string().into_bytes(),
            stderr: source.to_string().into_bytes(),
            ..Output::default()
        },
        Err(e) => return Err(e),
    };
    tracing::debug!(
        exit_code = out.exit_code,
        elapsed_us = started.elapsed().as_micros() as u64,
        "process executed"
    );
    Ok(Json(ExecuteResponse {
        exit_code: out.exit_code,
        result: String::from_utf8_lossy(&out.combined).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }))
}

/// `POST /process/code-run`: python (default), javascript or typescript source.
pub async fn code_run(
    State(st): State<Arc<AppState>>,
    JsonBody(req): JsonBody<CodeRunRequest>,
) -> Result<Json<CodeRunResponse>> {
    let language = req.language.as_deref().unwrap_or("python");
    let (program, mut args): (&str, Vec<&str>) = match language {
        "python" | "" => ("python3", vec!["-c", &req.code]),
        "javascript" => ("node", vec!["-e", &req.code, "--"]),
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
    let cmd = base_command(Path::new(program), &args, &cwd, req.envs.as_ref());
    let out = match run(cmd, timeout_of(req.timeout)).await {
        Ok(o) => o,
        Err(ToolboxError::Io { source, .. }) => Output {
            exit_code: -1,
            combined: format!("{program}: {source}").into_bytes(),
            ..Output::default()
        },
        Err(e) => return Err(e),
    };
    Ok(Json(CodeRunResponse {
        exit_code: out.exit_code,
        result: String::from_utf8_lossy(&out.combined).into_owned(),
        artifacts: CodeRunArtifacts::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
