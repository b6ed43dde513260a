//! A rate limit for log lines that clients (or sandboxes) can cause at will: a failing guest, a
//! full instance pool, timeouts, denied outbound calls, refused connections.
//!
//! Up to `burst` events per window are logged at their level; the rest of the window is counted
//! (and logged at DEBUG by the caller), and the count is reported as `suppressed` on the next
//! line that is logged, so nothing disappears without a trace.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The usual window and burst: five lines per ten seconds for each throttled event kind.
pub const WINDOW: Duration = Duration::from_secs(10);
pub const BURST: u32 = 5;

pub struct LogThrottle {
    window: Duration,
    burst: u32,
    state: Mutex<State>,
}

struct State {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new(WINDOW, BURST)
    }
}

impl LogThrottle {
    pub const fn new(window: Duration, burst: u32) -> Self {
        Self {
            window,
            burst,
            state: Mutex::new(State {
                window_start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when this event is to be logged at its level, `n` being how many were
    /// suppressed since the last one that was; `None` when it is to be demoted.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = s
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            s.window_start = Some(now);
            s.logged = 0;
        }
        if s.logged < self.burst {
            s.logged += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

/// Logs at `$level` when `$throttle` admits the event (with a `suppressed` count), at DEBUG
/// otherwise. The fields and message are those of `tracing::event!`.
#[macro_export]
macro_rules! throttled {
    ($throttle:expr, $level:expr, $($rest:tt)+) => {
        match $throttle.admit() {
            Some(suppressed) => ::tracing::event!($level, suppressed, $($rest)+),
            None => ::tracing::event!(::tracing::Level::DEBUG, throttled = true, $($rest)+),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_suppressed_then_reported() {
        let t = LogThrottle::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(t.admit_at(at(0)), Some(0));
        assert_eq!(t.admit_at(at(1)), Some(0));
        assert_eq!(t.admit_at(at(2)), Some(0));
        // A flood inside the window: demoted, counted.
        for ms in 3..1003 {
            assert_eq!(t.admit_at(at(ms)), None);
        }
        // The next window logs again and reports what was dropped, once.
        assert_eq!(t.admit_at(at(10_000)), Some(1000));
        assert_eq!(t.admit_at(at(10_001)), Some(0));
    }

    #[test]
    fn a_quiet_source_is_never_throttled() {
        let t = LogThrottle::new(Duration::from_secs(10), 1);
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(t.admit_at(t0 + Duration::from_secs(11 * i)), Some(0));
        }
    }
}
