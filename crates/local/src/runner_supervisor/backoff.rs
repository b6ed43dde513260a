//! The delay before restarting an agent that exited: 0.5 s, doubling up to 30 s; an agent that
//! ran for a healthy minute before it exited starts over at 0.5 s.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    healthy_after: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(
            Duration::from_millis(500),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, healthy_after: Duration) -> Self {
        Self {
            initial,
            max,
            healthy_after,
            next: initial,
        }
    }

    /// The delay before the next start, given how long the last run lasted (zero when the
    /// agent could not even be started).
    pub fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= self.healthy_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        let delays: Vec<u64> = (0..9)
            .map(|_| b.after_run(quick).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        // A minute of good health: back to the first step.
        assert_eq!(
            b.after_run(Duration::from_secs(60)),
            Duration::from_millis(500)
        );
        assert_eq!(b.after_run(quick), Duration::from_secs(1));
        // Failing to start counts as a run of no length.
        assert_eq!(b.after_run(Duration::ZERO), Duration::from_secs(2));
    }
}
