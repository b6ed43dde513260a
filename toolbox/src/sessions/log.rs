//! [`CommandLog`]: the bounded output and the status of one session command (or the entrypoint),
//! shared by the process feeding it, readers and log followers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cove_api_types::toolbox::Command;
use tokio::sync::watch;

use crate::output::{OutputTail, Rendered, Since, Stream};

#[derive(Debug, Default)]
struct LogState {
    output: OutputTail,
    exit_code: Option<i32>,
}

/// Output (its last [`crate::output::TAIL_BYTES`]) and exit code of one command.
#[derive(Debug)]
pub struct CommandLog {
    pub id: String,
    pub command: String,
    state: Mutex<LogState>,
    changed: watch::Sender<u64>,
    /// The FIFO that feeds the command's stdin (`None`: it takes no input).
    pub(crate) stdin_fifo: Option<PathBuf>,
}

impl CommandLog {
    pub fn new(id: String, command: String, stdin_fifo: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            id,
            command,
            state: Mutex::new(LogState::default()),
            changed: watch::channel(0).0,
            stdin_fifo,
        })
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn push(&self, stream: Stream, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            s.output.push(stream, data);
        }
        self.bump();
    }

    pub fn finish(&self, code: i32) {
        if let Ok(mut s) = self.state.lock()
            && s.exit_code.is_none()
        {
            s.exit_code = Some(code);
        }
        self.bump();
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.state.lock().ok().and_then(|s| s.exit_code)
    }

    /// Output from absolute offset `from` on, and whether the command has finished.
    pub fn since(&self, from: u64) -> (Since, bool) {
        match self.state.lock() {
            Ok(s) => (s.output.since(from), s.exit_code.is_some()),
            Err(_) => (Since::default(), true),
        }
    }

    /// Combined, stdout and stderr texts (each with a marker if its head was dropped).
    pub fn outputs(&self) -> Rendered {
        self.state
            .lock()
            .map(|s| s.output.render())
            .unwrap_or_default()
    }

    /// A receiver that changes whenever output arrives or the command ends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Waits until the command has an exit code.
    pub async fn wait(&self) -> i32 {
        let mut rx = self.subscribe();
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            if rx.changed().await.is_err() {
                return self.exit_code().unwrap_or(-1);
            }
        }
    }

    pub fn dto(&self) -> Command {
        Command {
            id: self.id.clone(),
            command: self.command.clone(),
            exit_code: self.exit_code(),
        }
    }
}
