//! The one error type of the testkit's fixtures.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a fixture could not be set up. Its message carries what a failing test needs to show:
/// the command, what the process printed, its stderr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A process could not be started at all.
    #[error("cannot run {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A command (a build, a script) ran and failed.
    #[error("{what} failed ({status})")]
    Command { what: String, status: ExitStatus },
    /// A started process never printed its readiness line.
    #[error(
        "{what} did not print {want:?} ({why}); stdout: {stdout:?}\nstderr:\n{stderr}",
        why = if *.exited { "it exited".to_owned() } else { format!("waited {} s", .waited.as_secs()) }
    )]
    NotReady {
        what: &'static str,
        want: &'static str,
        exited: bool,
        waited: Duration,
        stdout: Vec<String>,
        stderr: String,
    },
    /// A process expected to fail at startup got ready.
    #[error("{what} started, but it should have failed")]
    Started { what: &'static str },
    /// A readiness line was printed but a value it should carry is missing or malformed.
    #[error("{what} printed no usable {line} line: {stdout:?}")]
    Output {
        what: &'static str,
        line: &'static str,
        stdout: Vec<String>,
    },
    /// A file the fixture needs is not there and cannot be built.
    #[error("{} is missing: {hint}", .path.display())]
    Missing { path: PathBuf, hint: String },
    /// A call through the public API did not answer as setting up requires.
    #[error("{what}: {status} {body}")]
    Api {
        what: String,
        status: u16,
        body: String,
    },
    /// A condition polled through the API did not come true in time.
    #[error("timed out after {} s waiting for {what}", .waited.as_secs())]
    Timeout { what: String, waited: Duration },
    /// Reading or writing a local file.
    #[error("{what} {}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing or reading the test's table directly.
    #[error("{what}")]
    Store {
        what: &'static str,
        #[source]
        source: cove_store::StoreError,
    },
    /// The operating system's random source failed.
    #[error("no random bytes for {what}: {reason}")]
    Random { what: &'static str, reason: String },
    /// An operation the fixture's mode does not offer (fault injection on a Docker agent).
    #[error("{0}")]
    Unsupported(&'static str),
}

/// The testkit's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
