//! Resource-usage history of the sandboxes (`GET /v1/sandboxes/{id}/metrics`,
//! `cove_runner_api::metrics`).
//!
//! [`run`] samples the toolbox daemon of every started sandbox (`GET /system/metrics` over its
//! socket, the verified connection of [`crate::toolbox`]) every `--metrics-interval-secs`, and
//! [`History`] keeps the samples in memory: a ring per sandbox of at most
//! [`MetricsSettings::capacity`] samples, none older than `--metrics-retention-secs`, for at
//! most [`MAX_SANDBOXES`] sandboxes. A sandbox's ring goes when it is destroyed.
//!
//! Sampling never piles up: one pass at a time (a pass that overruns the interval delays the
//! next tick instead of stacking), at most [`PARALLEL`] daemons asked at once, each call bounded
//! by [`CALL_TIMEOUT`]; a daemon that does not answer in time is skipped for that pass.
//!
//! The history is best effort: it lives in the agent's memory, so it is lost when the agent
//! restarts, and a stopped sandbox keeps its samples (queryable) but gets no new ones.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cove_runner_api::{MetricSample, MetricsQuery, SandboxMetrics};
use futures::StreamExt;

use crate::reconciler::Reconciler;

/// Default of `--metrics-interval-secs`.
pub const DEFAULT_INTERVAL_SECS: u64 = 15;
/// Default of `--metrics-retention-secs` (24 h).
pub const DEFAULT_RETENTION_SECS: u64 = 24 * 3600;
/// Most samples kept per sandbox, whatever the interval and retention: 24 h at the default
/// interval, about 400 KiB of memory per sandbox.
pub const MAX_SAMPLES: usize = 5760;
/// Most sandboxes with a history; samples of further sandboxes are dropped (with a warning).
pub const MAX_SANDBOXES: usize = 1024;
/// Deadline of one `GET /system/metrics` (the daemon measures CPU over 250 ms at worst).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Daemons asked at once in a pass.
pub const PARALLEL: usize = 8;

/// How often to sample and how long to keep samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Time between two passes (at least 1 s).
    pub interval: Duration,
    /// Samples older than this (relative to the newest of their sandbox) are dropped.
    pub retention: Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(DEFAULT_INTERVAL_SECS),
            retention: Duration::from_secs(DEFAULT_RETENTION_SECS),
        }
    }
}

impl MetricsSettings {
    /// From the flags: whole seconds, the interval at least 1 s, the retention at least one
    /// interval.
    pub fn from_secs(interval_secs: u64, retention_secs: u64) -> Self {
        let interval = interval_secs.max(1);
        Self {
            interval: Duration::from_secs(interval),
            retention: Duration::from_secs(retention_secs.max(interval)),
        }
    }

    /// Samples per sandbox: enough for the retention at the interval, at most [`MAX_SAMPLES`].
    pub fn capacity(&self) -> usize {
        let per = self
            .retention
            .as_secs()
            .div_ceil(self.interval.as_secs().max(1));
        usize::try_from(per)
            .unwrap_or(MAX_SAMPLES)
            .clamp(1, MAX_SAMPLES)
    }
}

/// The samples of every sandbox, in memory.
#[derive(Debug)]
pub struct History {
    settings: MetricsSettings,
    rings: std::sync::Mutex<HashMap<String, VecDeque<MetricSample>>>,
}

impl History {
    pub fn new(settings: MetricsSettings) -> Self {
        Self {
            settings,
            rings: std::sync::Mutex::default(),
        }
    }

    fn rings(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<MetricSample>>> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a sample of sandbox `id`, dropping the oldest beyond the capacity or the
    /// retention. A sample older than the sandbox's newest one is ignored (keeps rings ordered).
    pub fn record(&self, id: &str, sample: MetricSample) {
        let mut rings = self.rings();
        if !rings.contains_key(id) && rings.len() >= MAX_SANDBOXES {
            tracing::warn!(sandbox = %id, max = MAX_SANDBOXES, "metrics sample dropped: too many sandboxes with a history");
            return;
        }
        let ring = rings.entry(id.to_owned()).or_default();
        if ring
            .back()
            .is_some_and(|last| last.timestamp_ms > sample.timestamp_ms)
        {
            return;
        }
        let oldest_kept = sample
            .timestamp_ms
            .saturating_sub(i64::try_from(self.settings.retention.as_millis()).unwrap_or(i64::MAX));
        ring.push_back(sample);
        let capacity = self.settings.capacity();
        while ring.len() > capacity || ring.front().is_some_and(|s| s.timestamp_ms < oldest_kept) {
            ring.pop_front();
        }
    }

    /// The samples of `id` in `range`, oldest first (none for a sandbox without a history).
    pub fn range(&self, id: &str, range: MetricsQuery) -> SandboxMetrics {
        let samples = self
            .rings()
            .get(id)
            .map(|ring| {
                ring.iter()
                    .filter(|s| range.holds(s.timestamp_ms))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        SandboxMetrics {
            samples,
            interval_secs: u32::try_from(self.settings.interval.as_secs()).unwrap_or(u32::MAX),
            capacity: u32::try_from(self.settings.capacity()).unwrap_or(u32::MAX),
        }
    }

    /// Drops the history of `id` (the sandbox is destroyed).
    pub fn forget(&self, id: &str) {
        self.rings().remove(id);
    }

    /// Drops the histories of sandboxes `keep` says no.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.rings().retain(|id, _| keep(id));
    }
}

/// A started sandbox's daemon, as the sampler asks it.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub sandbox_id: String,
    pub socket: PathBuf,
    pub container_id: String,
}

/// The time now in unix milliseconds.
fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// One sample of `d`, `None` when its daemon did not answer (in time).
async fn sample(d: &Daemon) -> Option<MetricSample> {
    let call = crate::toolbox::system_metrics(&d.socket, &d.container_id);
    let m = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::debug!(sandbox = %d.sandbox_id, error = %e, "metrics not sampled");
            return None;
        }
        Err(_) => {
            tracing::debug!(sandbox = %d.sandbox_id, timeout_secs = CALL_TIMEOUT.as_secs(), "metrics not sampled: the daemon did not answer in time");
            return None;
        }
    };
    Some(MetricSample {
        timestamp_ms: now_ms(),
        cpu_count: m.cpu_count,
        cpu_used_pct: m.cpu_used_pct,
        mem_used: m.mem_used,
        mem_total: m.mem_total,
        mem_cache: m.mem_cache,
        disk_used: m.disk_used,
        disk_total: m.disk_total,
        disk_free: m.disk_free,
    })
}

/// One pass: every started sandbox's daemon, [`PARALLEL`] at a time.
async fn pass(rec: &Reconciler) {
    let known = rec.ids().await;
    rec.usage_history()
        .retain(|id| known.binary_search_by(|k| k.as_str().cmp(id)).is_ok());
    let daemons = rec.started_daemons().await;
    let history = rec.usage_history();
    futures::stream::iter(daemons)
        .map(|d| async move { (sample(&d).await, d.sandbox_id) })
        .buffer_unordered(PARALLEL)
        .for_each(|(s, id)| async move {
            if let Some(s) = s {
                history.record(&id, s);
            }
        })
        .await;
}

/// Samples every `--metrics-interval-secs` until the process ends.
pub async fn run(rec: Arc<Reconciler>) {
    let every = rec.config().metrics.interval;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        pass(&rec).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> MetricSample {
        MetricSample {
            timestamp_ms: ms,
            cpu_count: 1,
            cpu_used_pct: 1.0,
            mem_used: 1,
            mem_total: 2,
            mem_cache: 0,
            disk_used: 1,
            disk_total: 2,
            disk_free: 1,
        }
    }

    fn times(m: &SandboxMetrics) -> Vec<i64> {
        m.samples.iter().map(|s| s.timestamp_ms).collect()
    }

    #[test]
    fn capacity_follows_retention_and_interval() {
        assert_eq!(MetricsSettings::default().capacity(), MAX_SAMPLES);
        assert_eq!(MetricsSettings::from_secs(10, 60).capacity(), 6);
        assert_eq!(
            MetricsSettings::from_secs(1, 10 * 24 * 3600).capacity(),
            MAX_SAMPLES
        );
        // A zero interval is 1 s; a retention shorter than the interval is one interval.
        let s = MetricsSettings::from_secs(0, 0);
        assert_eq!((s.interval.as_secs(), s.capacity()), (1, 1));
    }

    #[test]
    fn rings_are_bounded_by_capacity_and_retention() {
        let h = History::new(MetricsSettings::from_secs(1, 3));
        for t in [0, 1000, 2000, 3000, 4000] {
            h.record("a", at(t));
        }
        assert_eq!(
            times(&h.range("a", MetricsQuery::default())),
            [2000, 3000, 4000]
        );
        // Older than the retention relative to the newest: dropped even below the capacity.
        h.record("a", at(60_000));
        assert_eq!(times(&h.range("a", MetricsQuery::default())), [60_000]);
        // Out of order: ignored.
        h.record("a", at(59_000));
        assert_eq!(times(&h.range("a", MetricsQuery::default())), [60_000]);
    }

    #[test]
    fn range_filters_and_forget_drops() {
        let h = History::new(MetricsSettings::from_secs(1, 100));
        for t in [1000, 2000, 3000] {
            h.record("a", at(t));
        }
        h.record("b", at(1500));
        let q = MetricsQuery {
            from: Some(1500),
            to: Some(3000),
        };
        let m = h.range("a", q);
        assert_eq!(times(&m), [2000, 3000]);
        assert_eq!((m.interval_secs, m.capacity), (1, 100));
        h.forget("a");
        assert!(h.range("a", MetricsQuery::default()).samples.is_empty());
        h.retain(|id| id != "b");
        assert!(h.range("b", MetricsQuery::default()).samples.is_empty());
    }

    #[test]
    fn sandboxes_are_capped() {
        let h = History::new(MetricsSettings::from_secs(1, 10));
        for i in 0..MAX_SANDBOXES {
            h.record(&format!("s{i}"), at(1));
        }
        h.record("one-too-many", at(1));
        assert!(
            h.range("one-too-many", MetricsQuery::default())
                .samples
                .is_empty()
        );
        // A sandbox that has a ring still records.
        h.record("s0", at(2));
        assert_eq!(times(&h.range("s0", MetricsQuery::default())), [1, 2]);
    }
}
