//! Scheduling: which runner gets a new (or restored) sandbox. Pure policy over the runner records
//! the store lists; no I/O here.

use crate::runners::RunnerRecord;
use time::OffsetDateTime;

/// Picks a runner for a sandbox of `snapshot` in `region`: ready and schedulable runners of the
/// region; among them those that already have `snapshot` if any; then the fewest assigned
/// sandboxes; ties broken at random (the platform's secure source, so that concurrent creates in
/// fresh instances spread).
pub fn pick_runner<'a>(
    runners: &'a [RunnerRecord],
    snapshot: &str,
    region: &str,
    now: OffsetDateTime,
) -> Option<&'a RunnerRecord> {
    let eligible: Vec<&RunnerRecord> = runners
        .iter()
        .filter(|r| r.region_id == region && r.is_schedulable(now))
        .collect();
    let with_snapshot: Vec<&RunnerRecord> = eligible
        .iter()
        .copied()
        .filter(|r| r.has_snapshot(snapshot))
        .collect();
    let pool = if with_snapshot.is_empty() {
        eligible
    } else {
        with_snapshot
    };
    let least = pool.iter().map(|r| r.assigned_sandboxes).min()?;
    let best: Vec<&RunnerRecord> = pool
        .into_iter()
        .filter(|r| r.assigned_sandboxes == least)
        .collect();
    let i = getrandom::u32().unwrap_or(0) as usize % best.len();
    best.get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runners::DEFAULT_REGION;
    use cove_api_types::runner::RunnerState;

    fn at(s: &str) -> OffsetDateTime {
        cove_api_types::time::parse_rfc3339(s).unwrap()
    }

    const NOW: &str = "2026-01-01T00:01:00.000Z";

    fn runner(name: &str, assigned: i64, snapshots: &[&str]) -> RunnerRecord {
        let mut r = RunnerRecord::new(name, DEFAULT_REGION, NOW).unwrap();
        r.state = RunnerState::Ready;
        r.last_checked = Some("2026-01-01T00:00:55.000Z".to_owned());
        r.assigned_sandboxes = assigned;
        r.snapshots = snapshots.iter().map(|s| (*s).to_owned()).collect();
        r
    }

    fn picked<'a>(rs: &'a [RunnerRecord], snapshot: &str, region: &str) -> Option<&'a str> {
        pick_runner(rs, snapshot, region, at(NOW)).map(|r| r.name.as_str())
    }

    #[test]
    fn prefers_runners_having_the_snapshot() {
        let rs = [runner("a", 0, &[]), runner("b", 7, &["img:1"])];
        assert_eq!(picked(&rs, "img:1", "us"), Some("b"));
        // Nobody has it: least loaded.
        assert_eq!(picked(&rs, "img:2", "us"), Some("a"));
    }

    #[test]
    fn prefers_least_assigned_and_spreads_ties() {
        let rs = [
            runner("a", 3, &["i"]),
            runner("b", 1, &["i"]),
            runner("c", 2, &["i"]),
        ];
        assert_eq!(picked(&rs, "i", "us"), Some("b"));
        let tie = [runner("a", 1, &["i"]), runner("b", 1, &["i"])];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.insert(picked(&tie, "i", "us").unwrap());
        }
        assert_eq!(seen.len(), 2, "ties are broken at random");
    }

    #[test]
    fn skips_runners_that_must_not_get_sandboxes() {
        let mut unsched = runner("unsched", 0, &["i"]);
        unsched.unschedulable = true;
        let mut draining = runner("draining", 0, &["i"]);
        draining.draining = true;
        let mut stale = runner("stale", 0, &["i"]);
        stale.last_checked = Some("2026-01-01T00:00:30.000Z".to_owned());
        let mut never = runner("never", 0, &["i"]);
        never.last_checked = None;
        let mut unresp = runner("unresp", 0, &["i"]);
        unresp.state = RunnerState::Unresponsive;
        let mut disabled = runner("disabled", 0, &["i"]);
        disabled.state = RunnerState::Disabled;
        let mut eu = runner("eu", 0, &["i"]);
        eu.region_id = "eu".to_owned();
        let all = vec![unsched, draining, stale, never, unresp, disabled, eu];
        assert_eq!(picked(&all, "i", "us"), None);
        assert_eq!(picked(&all, "i", "eu"), Some("eu"));
        let mut with_ok = all.clone();
        with_ok.push(runner("ok", 50, &[]));
        assert_eq!(picked(&with_ok, "i", "us"), Some("ok"));
    }
}
