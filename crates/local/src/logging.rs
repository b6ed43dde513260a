//! cove's own log lines: to stderr, filtered by `RUST_LOG`, coloured only on a terminal (a log
//! file or a pipe gets no ANSI escapes).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Used when `RUST_LOG` is unset; dynoxide logs every 4xx it answers (e.g. "table exists")
/// at WARN, which is noise here.
pub const DEFAULT_FILTER: &str = "info,dynoxide::server=error";

/// Whether log lines get ANSI colours: only when stderr is a terminal.
pub fn use_ansi() -> bool {
    std::io::stderr().is_terminal()
}

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_ansi())
        .init();
}
