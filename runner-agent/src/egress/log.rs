//! The decision log: the last [`PER_SANDBOX`] egress attempts of every sandbox, in memory (a
//! ring per sandbox, dropped with the sandbox's policy).

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};

pub use cove_runner_api::{EgressDecision as Decision, EgressVerdict as Verdict};

/// Attempts kept per sandbox.
pub const PER_SANDBOX: usize = 256;

/// Rings of decisions by sandbox id.
#[derive(Debug, Default)]
pub struct DecisionLog {
    rings: Mutex<HashMap<String, VecDeque<Decision>>>,
    cap: usize,
}

impl DecisionLog {
    pub fn new(cap: usize) -> Self {
        Self {
            rings: Mutex::default(),
            cap: cap.max(1),
        }
    }

    pub fn record(&self, sandbox: &str, d: Decision) {
        let mut g = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let ring = g.entry(sandbox.to_owned()).or_default();
        if ring.len() == self.cap {
            ring.pop_front();
        }
        ring.push_back(d);
    }

    /// Oldest first.
    pub fn recent(&self, sandbox: &str) -> Vec<Decision> {
        let g = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        g.get(sandbox)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn forget(&self, sandbox: &str) {
        self.rings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sandbox);
    }

    #[cfg(test)]
    fn held(&self, sandbox: &str) -> (usize, usize) {
        let g = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        g.get(sandbox).map_or((0, 0), |r| (r.len(), r.capacity()))
    }
}

/// The agent's log.
pub static LOG: LazyLock<DecisionLog> = LazyLock::new(|| DecisionLog::new(PER_SANDBOX));

/// The current time as RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(i: usize) -> Decision {
        Decision {
            time: now(),
            destination: format!("198.51.100.1:{}", i % 65536),
            domain: Some(format!("host{i}.test")),
            verdict: if i.is_multiple_of(2) {
                Verdict::Allowed
            } else {
                Verdict::Denied
            },
            reason: None,
            rule: None,
        }
    }

    #[test]
    fn stays_bounded_under_100000_attempts() {
        let log = DecisionLog::new(PER_SANDBOX);
        for i in 0..100_000 {
            log.record("a", attempt(i));
            if i.is_multiple_of(10) {
                log.record("b", attempt(i));
            }
        }
        let (len, capacity) = log.held("a");
        assert_eq!(len, PER_SANDBOX);
        assert!(capacity < 2 * PER_SANDBOX, "{capacity}");
        let recent = log.recent("a");
        assert_eq!(recent.len(), PER_SANDBOX);
        // The newest are kept, oldest first.
        assert_eq!(
            recent[PER_SANDBOX - 1].domain.as_deref(),
            Some("host99999.test")
        );
        assert_eq!(
            recent[0].domain,
            Some(format!("host{}.test", 100_000 - PER_SANDBOX))
        );
        assert_eq!(log.held("b").0, PER_SANDBOX);
        log.forget("a");
        assert!(log.recent("a").is_empty());
        assert_eq!(log.recent("b").len(), PER_SANDBOX);
    }
}
