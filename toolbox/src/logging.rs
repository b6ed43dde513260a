//! Log output of the daemon: `tracing` to stderr, colours only on a terminal, and a rate limit
//! for lines that sandbox users can cause at will.
//!
//! Fields that carry user input (paths, commands, session ids, error messages) are logged with
//! `?` (Debug), which escapes control characters, so a path cannot inject ANSI sequences or
//! fake log lines.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Initializes `tracing` once (RUST_LOG, default `info`), logging to stderr; ANSI colours only
/// when stderr is a terminal (never in a container log or a file).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    admitted: u32,
    suppressed: u64,
}

/// Admits at most `burst` events per `window`; counts the others.
#[derive(Debug)]
pub struct RateLimit {
    window: Duration,
    burst: u32,
    state: Mutex<Window>,
}

impl RateLimit {
    pub const fn new(window: Duration, burst: u32) -> Self {
        Self {
            window,
            burst,
            state: Mutex::new(Window {
                started: None,
                admitted: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when an event at `now` may be logged, `n` being how many were suppressed since
    /// the last admitted one; `None` when it is suppressed.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().ok()?;
        let expired = w
            .started
            .is_none_or(|s| now.saturating_duration_since(s) >= self.window);
        if expired {
            w.started = Some(now);
            w.admitted = 0;
        }
        if w.admitted >= self.burst {
            w.suppressed += 1;
            return None;
        }
        w.admitted += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_burst_per_window_and_counts_the_rest() {
        let limit = RateLimit::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let admitted: Vec<_> = (0..10).map(|_| limit.admit(t0)).collect();
        assert_eq!(&admitted[..3], &[Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));
        assert_eq!(limit.admit(t0 + Duration::from_secs(59)), None);
        // The next window reports the 8 suppressed events with its first line.
        assert_eq!(limit.admit(t0 + Duration::from_secs(60)), Some(8));
        assert_eq!(limit.admit(t0 + Duration::from_secs(61)), Some(0));
    }
}
